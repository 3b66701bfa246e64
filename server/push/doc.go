// Package push receives the revocation signals an issuer pushes (SPEC §9)
// and turns each verified one into revocations by name, handed to the
// Revoker the caller gives (the same revoke as POST /revoke, fleet-wide in
// fleet mode). Two receivers, twins of each other the way envoy/ and
// server/forwardauth are:
//
//   - POST /backchannel-logout (backchannel.go): OpenID Connect
//     Back-Channel Logout 1.0, a logout_token naming a user (sub) and/or a
//     session (sid); 200, or 400 with {"error", "error_description"}.
//   - POST /ssf/events (ssf.go): a Security Event Token pushed per RFC 8935
//     (OpenID Shared Signals: CAEP session-revoked and credential-change,
//     RISC account-disabled and credential-compromise), its subject in the
//     iss_sub, email or complex format; 202, or 400 with {"err",
//     "description"} (RFC 8935 §2.3).
//
// The signed token is the credential: no admin secret is asked for.
// Every token is checked against its issuer's JWKS with authz/issuer's
// key sets (JWTVerifier.VerifySigned), and refused when its signature,
// issuer, audience, age, type or claims are wrong, or its jti was seen
// while it could still be accepted (replay.go). A refused signal revokes
// nothing. A revocation only makes leases misses: the issuer stays the
// authority on whether a token is good.
//
// It never logs, traces or counts a token; the log line of a revocation
// names the receiver, the issuer and what was revoked (subject, session,
// email) and the token's jti.
package push
