// Package issuer owns the clients that ask a token's issuer about it: RFC
// 7662 introspection (Introspector) and local JWT/JWS verification against
// the issuer's JWKS (JWTVerifier; the key set itself, its refresh, refetch
// limit and OIDC discovery, is authz/issuer/jwks); the claims both read and the rules
// they share (exp, audience, "only access tokens pass"); the typed errors
// callers branch on (IssuerError, TokenError and the sentinels); PeekIssuer,
// which picks an issuer by a JWT's unverified iss; each client's
// configuration and its checks; and the HTTP transports issuer calls use.
//
// It knows nothing of leases, tiers, routes or the engine that calls it:
// it answers "what does the issuer vouch for in this token", and the caller
// decides what that allows.
package issuer
