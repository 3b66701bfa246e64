// Package authz owns the access decision: token extraction, the trusted
// issuers and which one a token goes to, lease use, coalescing, the circuit
// breaker and failure handling, and the storage rules applied before an
// allow. The clients that ask an issuer about a token live in authz/issuer.
// It knows nothing about Envoy.
package authz
