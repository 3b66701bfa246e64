package request

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/leasegate/leasegate/authz/headertext"
)

// overrideFields are the headers with which web frameworks (Rack,
// Symfony and Laravel, Express's method-override, ASP.NET) let a request
// act as another method than its own.
var overrideFields = [...]string{"x-http-method-override", "x-http-method", "x-method-override"}

// methodOverride refuses a request that asks its backend to run another
// method than its own, by a header or a _method query parameter: tier and
// storage scopes are chosen by the method, and a backend honouring the
// override would run, say, a DELETE authorised as the POST it arrived as.
// Naming the request's own method is harmless. A header spelled with "_"
// (X_HTTP_Method_Override) is refused whatever it names: Rack and CGI read
// it as the header, and it has no other use.
func methodOverride(method, target string, h Headers) string {
	if queryOverride(method, target) {
		return "a _method query parameter names another method"
	}
	if h == nil {
		return ""
	}
	for _, name := range overrideFields {
		if v, n := h.Get(name); n > 1 || (n == 1 && v != method) {
			return "a method override header names another method"
		}
	}
	if h.UnderscoreName(isOverrideTwin) != "" {
		return "a method override header is spelled with an underscore"
	}
	return ""
}

// isOverrideTwin reports whether name is one of overrideFields spelled
// with "_" for "-".
func isOverrideTwin(name string) bool {
	for _, f := range overrideFields {
		if headertext.UnderscoreTwins(name, f) {
			return true
		}
	}
	return false
}

// queryOverride reports whether target's query has a _method parameter
// (Express's method-override, Symfony and Laravel) whose value is not
// method, or cannot be decoded. Pairs are split at "&" and ";" (PHP's
// arg_separator.input may name either), names read by isMethodParam.
func queryOverride(method, target string) bool {
	q := strings.IndexByte(target, '?')
	if q < 0 {
		return false
	}
	query := target[q+1:]
	// Without "method" or an escape, no name decodes to _method: the hit
	// path's usual query costs two scans.
	if !strings.Contains(query, "method") && strings.IndexByte(query, '%') < 0 {
		return false
	}
	start := 0
	for i := 0; i <= len(query); i++ {
		if i < len(query) && query[i] != '&' && query[i] != ';' {
			continue
		}
		key, value, _ := strings.Cut(query[start:i], "=")
		start = i + 1
		if !isMethodParam(key) {
			continue
		}
		if v, err := url.QueryUnescape(value); err != nil || v != method {
			return true
		}
	}
	return false
}

// isMethodParam reports whether a query name, as received, is _method to
// a framework, taking the widest reading of any: decoded, bad escapes
// kept as text; leading spaces dropped and cut at a NUL (PHP); "." and
// " " as "_" (PHP); "_method[…]" counted too (an array in PHP and qs).
func isMethodParam(key string) bool {
	if !strings.Contains(key, "method") && !strings.ContainsAny(key, "%+") {
		return false
	}
	k := lenientUnescape(key)
	k = strings.TrimLeft(k, " ")
	if i := strings.IndexByte(k, 0); i >= 0 {
		k = k[:i]
	}
	if i := strings.IndexByte(k, '['); i >= 0 {
		k = k[:i]
	}
	const want = "_method"
	if len(k) != len(want) {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c == ' ' || c == '.' {
			c = '_'
		}
		if c != want[i] {
			return false
		}
	}
	return true
}

// lenientUnescape decodes a query name as PHP's urldecode does: "+" is a
// space, a valid %XX its byte, any other "%" kept. url.QueryUnescape
// refuses a bad escape, which would hide "_method%00%zz" from
// isMethodParam.
func lenientUnescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b = append(b, byte(v))
				i += 2
				continue
			}
		}
		if c == '+' {
			c = ' '
		}
		b = append(b, c)
	}
	return string(b)
}
