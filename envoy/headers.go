package envoy

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// MaxHeaderFields bounds how many header fields the adapter looks at. A
// request carrying more is refused as malformed (400 invalid_request), so a
// hostile header list cannot make every lookup scan without limit.
const MaxHeaderFields = 10_000

// headerView implements authz.Headers over a CheckRequest's headers without
// copying them into a new map.
//
// Envoy sends one of two shapes: the headers map (keys lower-cased,
// duplicates joined with ",") or, with encode_raw_headers, header_map, a list
// in which each field is its own entry with the value in raw_value. When
// header_map has entries it is the only source read: Envoy fills one or the
// other, and reading both could count a field twice.
type headerView struct {
	m    map[string]string
	list []*corev3.HeaderValue
	// mixedCase is set when some map key has upper-case letters (not an
	// Envoy-built request); lookups then scan instead of indexing.
	mixedCase bool
}

func newHeaderView(m map[string]string, hm *corev3.HeaderMap) (headerView, bool) {
	if list := hm.GetHeaders(); len(list) > 0 {
		if len(list) > MaxHeaderFields {
			return headerView{}, false
		}
		return headerView{list: list}, true
	}
	if len(m) > MaxHeaderFields {
		return headerView{}, false
	}
	h := headerView{m: m}
	for k := range m {
		if hasUpper(k) {
			h.mixedCase = true
			break
		}
	}
	return h, true
}

// Get returns the value of the field named name (lower-case) and how many
// fields of that name the request carried. Names match case-insensitively.
// With several fields the first value is returned; callers that care (the
// Authorization check) refuse n > 1 anyway.
func (h *headerView) Get(name string) (string, int) {
	if h.list != nil {
		var first *corev3.HeaderValue
		n := 0
		for _, hv := range h.list {
			if hv != nil && strings.EqualFold(hv.GetKey(), name) {
				if n == 0 {
					first = hv
				}
				n++
			}
		}
		if n == 0 {
			return "", 0
		}
		if raw := first.GetRawValue(); len(raw) > 0 {
			return string(raw), n
		}
		return first.GetValue(), n
	}
	if !h.mixedCase {
		v, ok := h.m[name]
		if !ok {
			return "", 0
		}
		return v, 1
	}
	// Keys that differ only in case are separate fields of the same name.
	var v string
	n := 0
	for k, val := range h.m {
		if strings.EqualFold(k, name) {
			if n == 0 {
				v = val
			}
			n++
		}
	}
	return v, n
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}
