package authz

import (
	"errors"

	"github.com/leasegate/leasegate/policy"
)

// normalize turns a request into the one form route rules and storage rules
// both read (policy.Normalize), and checks its Destination and Source. A
// non-empty problem is the 400 invalid_request description; it is
// safe to show clients (it names headers, never echoes values).
//
// SPEC §1: "a path that cannot be decoded, or holds an encoded /, \, a raw
// \, a raw # or NUL, is refused with 400 before any route is chosen."
func normalize(r *Request) (policy.Request, string) {
	nr, err := policy.Normalize(r.Method, r.Host, r.Path)
	switch {
	case errors.Is(err, policy.ErrInvalidHost):
		return policy.Request{}, "request host is not acceptable"
	case err != nil:
		return policy.Request{}, "request path is not acceptable"
	}
	if problem := checkTargets(r.Headers); problem != "" {
		return policy.Request{}, problem
	}
	return nr, ""
}

// checkTargets refuses a Destination or Source value that is not a single
// absolute URI or path, or carries a fragment, userinfo or an unparseable
// authority (SPEC §5, policy.CheckTarget), on every request.
func checkTargets(h Headers) string {
	if h == nil {
		return ""
	}
	for _, f := range [...]struct{ name, label string }{{"destination", "Destination"}, {"source", "Source"}} {
		if v, n := h.Get(f.name); n > 0 && policy.CheckTarget(v) != nil {
			return f.label + " header is not acceptable"
		}
	}
	return ""
}
