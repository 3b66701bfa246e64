package authz

import (
	"errors"
	"strings"

	"github.com/leasegate/leasegate/policy"
)

// normalize turns a request into the one form route rules and storage rules
// both read (policy.Normalize), and checks the fields SPEC §3 allows only
// once. A non-empty problem is the 400 invalid_request description; it is
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
	if problem := singleFields(r.Headers); problem != "" {
		return policy.Request{}, problem
	}
	return nr, ""
}

// singleFields applies SPEC §3 to every request: "a request with more than
// one Destination, Source, Overwrite or If-None-Match field" is 400 (each is
// a single value; backends disagree on which copy wins). Besides the field
// count, it reads a value Envoy's headers map joined with "," as two:
//
//   - Overwrite is "T" or "F", so any ',' is two fields;
//   - If-None-Match "*" must stand alone, so "*" in a list is two fields
//     (a list of entity tags is one value in HTTP and stays allowed);
//   - Destination and Source are one absolute URI or path each, so a ','
//     followed by "/" or "scheme://" is two (policy.CheckTarget, which
//     also refuses a fragment, userinfo or an unparseable authority).
func singleFields(h Headers) string {
	if h == nil {
		return ""
	}
	for _, f := range [...]struct{ name, label string }{{"destination", "Destination"}, {"source", "Source"}} {
		v, n := h.Get(f.name)
		switch {
		case n > 1:
			return "more than one " + f.label + " header"
		case n == 1 && policy.CheckTarget(v) != nil:
			return f.label + " header is not acceptable"
		}
	}
	if v, n := h.Get("overwrite"); n > 1 || strings.IndexByte(v, ',') >= 0 {
		return "more than one Overwrite header"
	}
	if v, n := h.Get("if-none-match"); n > 1 || starInList(v) {
		return "more than one If-None-Match header"
	}
	return ""
}

// starInList reports whether "*" is one element of a list of several.
func starInList(v string) bool {
	if strings.IndexByte(v, ',') < 0 {
		return false
	}
	for e := range strings.SplitSeq(v, ",") {
		if strings.Trim(e, " \t") == "*" {
			return true
		}
	}
	return false
}
