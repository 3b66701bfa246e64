package forwardauth

import (
	"net/http"

	"github.com/leasegate/leasegate/authz"
)

// hdrEnvoyRemove asks Envoy's http_service client to drop request headers
// before the upstream sees them (the HTTP form of
// OkHttpResponse.headers_to_remove).
const hdrEnvoyRemove = "X-Envoy-Auth-Headers-To-Remove"

// writeDecision renders d. Allow is exactly 200: Envoy's http_service takes
// anything else, 204 included, as a denial. A denial's challenge, body and
// Retry-After are authz's (the gRPC adapter sends the same ones).
func writeDecision(w http.ResponseWriter, conv convention, d *authz.Decision) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	if d.Allow {
		for _, x := range d.Headers {
			if x.Name != "" {
				hdr[http.CanonicalHeaderKey(x.Name)] = []string{x.Value}
			}
		}
		if d.StripAuthorization && conv.name == ModeEnvoy {
			hdr.Set(hdrEnvoyRemove, "authorization")
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if d.Status < 400 || d.Status > 599 {
		// A denial without a denial status is a bug upstream of here:
		// fail closed as unavailable, never as something a proxy allows.
		d.Status = http.StatusServiceUnavailable
	}
	if d.Challenge != "" {
		hdr.Set("WWW-Authenticate", d.Challenge)
	}
	if d.Status == http.StatusServiceUnavailable {
		hdr.Set("Retry-After", d.RetryAfterSeconds())
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(d.Status)
	_, _ = w.Write(d.Body())
}
