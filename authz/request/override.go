package request

import (
	"net/url"
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
// method, or cannot be decoded. Names are read as PHP reads them:
// decoded, with " " and "." taken for "_".
func queryOverride(method, target string) bool {
	q := strings.IndexByte(target, '?')
	if q < 0 {
		return false
	}
	for pair := range strings.SplitSeq(target[q+1:], "&") {
		key, value, _ := strings.Cut(pair, "=")
		if !isMethodParam(key) {
			continue
		}
		v, err := url.QueryUnescape(value)
		if err != nil || v != method {
			return true
		}
	}
	return false
}

// isMethodParam reports whether a query key, as received, names _method.
func isMethodParam(key string) bool {
	if len(key) < len("_method") {
		return false
	}
	if strings.ContainsAny(key, "%+") {
		k, err := url.QueryUnescape(key)
		if err != nil {
			return false // PHP keeps a bad escape as text: not _method
		}
		key = k
	}
	const want = "_method"
	if len(key) != len(want) {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c == ' ' || c == '.' {
			c = '_'
		}
		if c != want[i] {
			return false
		}
	}
	return true
}
