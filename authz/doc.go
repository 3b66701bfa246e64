// Package authz owns the access decision: which trusted issuer a token
// goes to, lease use, coalescing and failure handling, and the storage
// rules applied before an allow. Reading the request (normal form, single
// fields, bearer token) is authz/request; the trusted issuers (their
// config, clients and circuit breakers) are authz/trust; the steps of a
// lease miss that go through the fleet's store are authz/fleetmode; the
// clients that ask an issuer about a token live in authz/issuer. It knows
// nothing about Envoy.
//
// The engine is split by phase: engine.go builds it and holds the admin
// operations (Close, Ready, Probe, Revoke, RevokeSubject); check.go is a
// request's path to its Decision (normalise, classify, lease lookup, allow
// or deny); validate.go is a lease miss, one coalesced validation with the
// token's issuer; observe.go puts each decision on the request's span and
// in the log, and metrics.go counts it.
package authz
