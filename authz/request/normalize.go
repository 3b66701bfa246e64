// Package request reads a request as the engine decides on it, with no
// I/O: the one normal form of its path, host and WebDAV target fields
// that route and storage rules both read, the fields SPEC §3 allows only
// once, and the bearer token of its Authorization field (RFC 6750 §2.1);
// and how a span or log line may quote it. Every problem it reports is a
// 400 description safe to show clients.
package request

import (
	"errors"
	"strings"

	"github.com/leasegate/leasegate/policy"
)

// Headers gives read access to a request's headers (authz.Headers).
type Headers interface {
	// Get returns the value of the header with the given lower-case name
	// and how many fields of that name the request carried; with more than
	// one, their values joined with "," (as HTTP folds them).
	Get(name string) (value string, n int)
	// UnderscoreName returns the first field name that has a "_" and
	// satisfies match, or "". Backends that fold "_" into "-" read such
	// a name as another one (methodOverride).
	UnderscoreName(match func(name string) bool) string
}

// Normalized is a request as the route rules and the storage rules read it.
type Normalized struct {
	Req policy.Request
	// Destination and Source are the parsed Destination and Source
	// headers, zero when absent: their paths are part of the operation
	// (policy.AddTargets).
	Destination, Source policy.Target
}

// Normalize turns a request into the one form route rules and storage rules
// both read (policy.Normalize, policy.ParseTarget), checks the fields
// SPEC §3 allows only once, and refuses a method override (methodOverride).
// A non-empty problem is the 400 invalid_request description; it is safe to
// show clients (it names headers, never echoes values).
//
// SPEC §1: "a path that cannot be decoded, or holds an encoded /, \, a raw
// \, a raw # or NUL, is refused with 400 before any route is chosen."
func Normalize(method, host, path string, h Headers) (Normalized, string) {
	var n Normalized
	var err error
	n.Req, err = policy.Normalize(method, host, path)
	switch {
	case errors.Is(err, policy.ErrInvalidHost):
		return Normalized{}, "request host is not acceptable"
	case err != nil:
		return Normalized{}, "request path is not acceptable"
	}
	var problem string
	if n.Destination, n.Source, problem = singleFields(h); problem != "" {
		return Normalized{}, problem
	}
	if problem = methodOverride(method, path, h); problem != "" {
		return Normalized{}, problem
	}
	return n, ""
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
//     followed by "/" or "scheme://", or any raw ',' before the query, is
//     two (policy.ParseTarget, which also refuses a fragment, userinfo or
//     an unparseable authority).
//
// It returns the parsed Destination and Source, zero when absent.
func singleFields(h Headers) (dst, src policy.Target, problem string) {
	if h == nil {
		return dst, src, ""
	}
	if dst, problem = target(h, "destination", "Destination"); problem != "" {
		return dst, src, problem
	}
	if src, problem = target(h, "source", "Source"); problem != "" {
		return dst, src, problem
	}
	if v, n := h.Get("overwrite"); n > 1 || strings.IndexByte(v, ',') >= 0 {
		return dst, src, "more than one Overwrite header"
	}
	if v, n := h.Get("if-none-match"); n > 1 || starInList(v) {
		return dst, src, "more than one If-None-Match header"
	}
	return dst, src, ""
}

// target reads the single Destination or Source field called name.
func target(h Headers, name, label string) (policy.Target, string) {
	v, n := h.Get(name)
	switch {
	case n == 0:
		return policy.Target{}, ""
	case n > 1:
		return policy.Target{}, "more than one " + label + " header"
	}
	t, err := policy.ParseTarget(v)
	if err != nil {
		return policy.Target{}, label + " header is not acceptable"
	}
	return t, ""
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
