package envoy

import (
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leasegate/leasegate/authz"
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
//
// Whatever the shape, Get reports every field of a name: its count, and the
// values joined with "," in the order received, never one of them picked.
// So the header_map shape gives the same value as Envoy's headers map for
// the same request, and the true count besides.
type headerView struct {
	m    map[string]string
	list []*corev3.HeaderValue
	// mixedCase is set when some map key has upper-case letters (not an
	// Envoy-built request); lookups then scan instead of indexing.
	mixedCase bool
	// underscore is set when some name has a "_": only then can a name be
	// an underscore twin of an identity header without "_" (underscoreTwin).
	underscore bool
	// names has nameBit(k) set for every map key k: a name whose bit is
	// clear is absent without a lookup (most of a hit's Gets).
	names uint64
}

// Problems newHeaderView reports; each becomes the error_description of a
// 400 invalid_request.
const (
	problemTooManyFields = "request has too many header fields"
	problemValueAndRaw   = "header_map entry has both value and raw_value"
)

// newHeaderView builds the view, or returns a non-empty problem when the
// headers cannot be read unambiguously: more than MaxHeaderFields, or a
// header_map entry whose value and raw_value both carry different text
// (config.core.v3.HeaderValue allows only one; reading either would be a
// guess at what the proxy forwards).
func newHeaderView(m map[string]string, hm *corev3.HeaderMap) (headerView, string) {
	if list := hm.GetHeaders(); len(list) > 0 {
		if len(list) > MaxHeaderFields {
			return headerView{}, problemTooManyFields
		}
		h := headerView{list: list}
		for _, hv := range list {
			if raw := hv.GetRawValue(); len(raw) > 0 && hv.GetValue() != "" && hv.GetValue() != string(raw) {
				return headerView{}, problemValueAndRaw
			}
			h.underscore = h.underscore || strings.IndexByte(hv.GetKey(), '_') >= 0
		}
		return h, ""
	}
	if len(m) > MaxHeaderFields {
		return headerView{}, problemTooManyFields
	}
	h := headerView{m: m}
	for k := range m {
		upper, underscore := nameBytes(k)
		h.mixedCase = h.mixedCase || upper
		h.underscore = h.underscore || underscore
		h.names |= nameBit(k)
	}
	return h, ""
}

// Get returns the value of the fields named name (lower-case) and how many
// fields of that name the request carried; names match ASCII
// case-insensitively.
// With several fields the value is all of them joined with "," (in
// header_map order; for map keys that differ only in case, in key order),
// so a caller that refuses n > 1 (Authorization, Destination, Source,
// Overwrite, If-None-Match) has the count, and one that does not still sees
// a list, never the first field alone. Envoy's own "," joining in the
// headers map arrives as one field (n == 1).
func (h *headerView) Get(name string) (string, int) {
	if h.list != nil {
		return h.getList(name)
	}
	if h.names&nameBit(name) == 0 {
		return "", 0
	}
	if !h.mixedCase {
		v, ok := h.m[name]
		if !ok {
			return "", 0
		}
		return v, 1
	}
	// Keys that differ only in case are separate fields of the same name.
	var keys []string
	for k := range h.m {
		if equalFoldASCII(k, name) {
			keys = append(keys, k)
		}
	}
	switch len(keys) {
	case 0:
		return "", 0
	case 1:
		return h.m[keys[0]], 1
	}
	slices.Sort(keys) // map order is random; the answer must not be
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = h.m[k]
	}
	return strings.Join(vals, ","), len(keys)
}

func (h *headerView) getList(name string) (string, int) {
	var first string
	var joined []byte // only built for a second field
	n := 0
	for _, hv := range h.list {
		if hv == nil || !equalFoldASCII(hv.GetKey(), name) {
			continue
		}
		n++
		switch n {
		case 1:
			first = entryValue(hv)
		case 2:
			joined = append(joined, first...)
			fallthrough
		default:
			joined = append(joined, ',')
			if raw := hv.GetRawValue(); len(raw) > 0 {
				joined = append(joined, raw...)
			} else {
				joined = append(joined, hv.GetValue()...)
			}
		}
	}
	if n > 1 {
		return string(joined), n
	}
	return first, n
}

// underscoreTwin returns the first request header name that is an
// underscore twin (authz.Decision.UnderscoreTwin) of one of d's identity
// headers, or "". It allocates nothing: it runs on every allow. Twins
// differ by a "_" against a "-", so when neither the request's names nor
// d's have a "_" (underscore: namesHaveUnderscore of d.Headers) there is
// none, and the names are not read again.
func (h *headerView) underscoreTwin(d *authz.Decision, underscore bool) string {
	if !h.underscore && !underscore {
		return ""
	}
	if h.list != nil {
		for _, hv := range h.list {
			if hv != nil && d.UnderscoreTwin(hv.GetKey()) != "" {
				return hv.GetKey()
			}
		}
		return ""
	}
	for k := range h.m {
		if d.UnderscoreTwin(k) != "" {
			return k
		}
	}
	return ""
}

// UnderscoreName returns the first name with a "_" that satisfies match,
// or "" (authz.Headers). Without a "_" in any name it reads none.
func (h *headerView) UnderscoreName(match func(string) bool) string {
	if !h.underscore {
		return ""
	}
	if h.list != nil {
		for _, hv := range h.list {
			if k := hv.GetKey(); strings.IndexByte(k, '_') >= 0 && match(k) {
				return k
			}
		}
		return ""
	}
	for k := range h.m {
		if strings.IndexByte(k, '_') >= 0 && match(k) {
			return k
		}
	}
	return ""
}

// entryValue is a header_map entry's value: raw_value (what Envoy sends with
// encode_raw_headers), else value. newHeaderView has refused entries where
// both are set and differ.
func entryValue(hv *corev3.HeaderValue) string {
	if raw := hv.GetRawValue(); len(raw) > 0 {
		return string(raw)
	}
	return hv.GetValue()
}

// equalFoldASCII compares header names as RFC 9110 does: ASCII letters
// case-insensitively, every other byte exactly. strings.EqualFold would also
// fold Unicode ("ſ" matches "s", "K" (Kelvin) matches "k"), making a name no
// HTTP parser accepts count as Destination or Authorization.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// nameBit is one of 64 bits, from a name's length and first and last
// bytes; names that match ASCII case-insensitively (equalFoldASCII) share
// it, as x|0x20 folds letters and maps other bytes one way.
func nameBit(name string) uint64 {
	n := len(name)
	if n == 0 {
		return 1
	}
	return 1 << ((uint(n) + 7*uint(name[0]|0x20) + 13*uint(name[n-1]|0x20)) % 64)
}

// nameBytes reports whether name has an upper-case ASCII letter and
// whether it has a "_", in one pass.
func nameBytes(name string) (upper, underscore bool) {
	var seen byte
	for i := 0; i < len(name); i++ {
		seen |= nameClass[name[i]]
	}
	return seen&classUpper != 0, seen&classUnderscore != 0
}

const (
	classUpper = 1 << iota
	classUnderscore
)

var nameClass = func() (t [256]byte) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = classUpper
	}
	t['_'] = classUnderscore
	return t
}()

func namesHaveUnderscore(hs []authz.Header) bool {
	for _, h := range hs {
		if strings.IndexByte(h.Name, '_') >= 0 {
			return true
		}
	}
	return false
}
