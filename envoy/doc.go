// Package envoy adapts Envoy's ext_authz v3 CheckRequest/CheckResponse to
// leasegate's decision engine (authz); it is the only package that imports
// go-control-plane's ext_authz types.
package envoy
