// Package forwardauth is HTTP mode (SPEC §4): leasegate's decision answered
// over plain HTTP, for proxies whose external-auth call is itself an HTTP
// request — Envoy's ext_authz http_service, nginx auth_request, Traefik
// ForwardAuth and Caddy forward_auth.
//
// It owns what is particular to that protocol: where each proxy puts the
// original method, URI and host (Config.Mode), refusing missing, repeated
// or conflicting proxy headers, turning the request into an authz.Request,
// and rendering the engine's authz.Decision as an HTTP response (exactly
// 200 with identity headers, or the denial's status, challenge and body).
// The denial vocabulary itself is authz's, shared with envoy/, the gRPC
// twin of this package; the two adapters never import each other.
//
// It reads no flags, environment or files: package server decodes the
// configuration, builds the Handler and serves it.
package forwardauth
