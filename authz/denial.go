package authz

// The denial vocabulary (SPEC §3), in one place for the engine and both
// adapters (envoy/ for gRPC, server/forwardauth for HTTP mode): the RFC 6750
// challenge, the JSON error body and Retry-After of a denial, the denials
// an adapter makes on its own, and the rules for what may be passed
// upstream as a header. An adapter renders a Decision in its protocol; it
// never spells a challenge or a body itself, so the two cannot drift apart.

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/leasegate/leasegate/authz/headertext"
	"github.com/leasegate/leasegate/authz/panics"
)

// MaxHeaderValueBytes bounds an upstream identity header's name and value
// (headertext.MaxValueBytes).
const MaxHeaderValueBytes = headertext.MaxValueBytes

// Descriptions of the denials adapters make on their own.
const (
	descUnpassable     = "token claims cannot be passed upstream"
	descUnderscoreTwin = "request carries an underscore spelling of an identity header"
)

// Body is the JSON error body of a denial: {"error", "error_description"},
// the error being the RFC 6750 code or, without one, unauthorized (401),
// temporarily_unavailable (503) or access_denied. An allow has none.
func (d *Decision) Body() []byte {
	if d.Allow {
		return nil
	}
	code := d.Error
	if code == "" {
		switch d.Status {
		case http.StatusUnauthorized:
			code = "unauthorized"
		case http.StatusServiceUnavailable:
			code = "temporarily_unavailable"
		default:
			code = "access_denied"
		}
	}
	b, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{code, d.Description})
	return b
}

// RetryAfterSeconds renders RetryAfter for the Retry-After header of a 503
// (whole seconds, rounded up, at least 1).
func (d *Decision) RetryAfterSeconds() string {
	s := int((d.RetryAfter + time.Second - 1) / time.Second)
	return strconv.Itoa(max(1, s))
}

// deny makes d a denial with the given status, reason, RFC 6750 code,
// description and scope hint, its challenge built from them and realm. A
// denial passes nothing upstream: no identity, no identity headers, no
// Authorization strip.
func (d *Decision) deny(realm string, status int, reason Reason, code, desc, scope string) {
	d.Allow = false
	d.Status = status
	d.Reason = reason
	d.Error = code
	d.Description = desc
	d.Scope = scope
	d.Realm = realm
	d.Challenge = headertext.Challenge(realm, code, desc, scope)
	d.Identity = Identity{}
	d.Headers = nil
	d.View = nil
	d.StripAuthorization = false
}

// SetDescription replaces the error_description of d, a denial, in its
// body and its challenge, which keeps d's realm, error and scope. The gRPC
// adapter uses it to say why it could not read a request the engine
// refused as malformed.
func (d *Decision) SetDescription(desc string) {
	d.Description = desc
	if d.Challenge != "" {
		d.Challenge = headertext.Challenge(d.Realm, d.Error, desc, d.Scope)
	}
}

// InvalidRequest is an adapter's own 400 invalid_request for a request it
// cannot read unambiguously (missing, repeated or conflicting proxy
// headers): desc says what is wrong and must be safe to show the client
// (name headers, never echo values); realm goes into the challenge.
func InvalidRequest(realm, desc string) Decision {
	var d Decision
	d.deny(realm, http.StatusBadRequest, ReasonMalformed, ErrCodeInvalidRequest, desc, "")
	return d
}

// Unavailable is an adapter's own 503 when it cannot decide at all (no
// engine, a panic): temporarily_unavailable with desc and Retry-After 1.
// It fails closed, passing nothing upstream.
func Unavailable(desc string) Decision {
	return Decision{Status: http.StatusServiceUnavailable, Description: desc, RetryAfter: time.Second}
}

// UnpassableHeader returns the name of the first upstream identity header
// of d that a proxy could not carry unchanged, or "": a name or value with
// NUL, CR or LF, longer than MaxHeaderValueBytes or not UTF-8. Envoy
// refuses or mangles such a header, and net/http turns CR and LF into
// spaces, so a subject "alice\r" would reach the backend as "alice". Both
// adapters apply it, so a token's identity passes through gRPC and HTTP
// mode alike or through neither.
func (d *Decision) UnpassableHeader() string {
	// Judged on every decision asked, a hit's shared headers too, so
	// nobody's write into them can slip past. (The gRPC adapter does not
	// ask for a hit its kept encoding answers: those headers passed here
	// and are compared with the encoding's on every hit.)
	for _, h := range d.Headers {
		if h.Name == "" {
			continue
		}
		if !headertext.Passable(h.Name) || !headertext.Passable(h.Value) {
			return h.Name
		}
	}
	return ""
}

// RefuseIdentity turns d, an allow whose UnpassableHeader is not "", into a
// 401 invalid_token that passes nothing upstream; realm goes into the
// challenge (none when empty).
func (d *Decision) RefuseIdentity(realm string) {
	d.deny(realm, http.StatusUnauthorized, ReasonInvalidToken, ErrCodeInvalidToken, descUnpassable, "")
}

// UnderscoreTwin returns the identity header of d (an allow) that the
// request header name spells with "_" for "-" or the other way round
// (x_auth_subject, X-Auth_Scope), or "". Proxies overwrite or remove
// identity headers by their exact name, so a client's twin reaches the
// backend untouched, and backends that fold "_" into "-" (CGI, PHP-FPM,
// WSGI, Rack) read it as the identity. Envoy can reject such names
// (headers_with_underscores_action) and nginx drops them by default, but
// Traefik and Caddy pass them on; both adapters refuse an allow whose
// request carries one (RefuseUnderscoreTwin).
func (d *Decision) UnderscoreTwin(name string) string {
	for _, h := range d.Headers {
		if h.Name != "" && headertext.UnderscoreTwins(name, h.Name) {
			return h.Name
		}
	}
	return ""
}

// RefuseUnderscoreTwin turns d, an allow whose request carries an
// UnderscoreTwin, into a 400 invalid_request that passes nothing upstream.
func (d *Decision) RefuseUnderscoreTwin(realm string) {
	d.deny(realm, http.StatusBadRequest, ReasonMalformed, ErrCodeInvalidRequest, descUnderscoreTwin, "")
}

// RefuseUnpassable is both adapters' last judgement of an allow, in one
// order so a request gets the same answer over either protocol: an
// identity a proxy could not pass exactly (UnpassableHeader) is refused
// with 401, then a request carrying twin (the adapter's first request
// header name that is an UnderscoreTwin of an identity header, "" for
// none) with 400; each is logged, never with a value.
func (d *Decision) RefuseUnpassable(ctx context.Context, log *slog.Logger, realm, twin string) {
	if !d.Allow {
		return
	}
	if bad := d.UnpassableHeader(); bad != "" {
		log.LogAttrs(ctx, slog.LevelWarn, "identity cannot be passed upstream",
			slog.String("header", bad), slog.String("issuer", d.Issuer), slog.String("token_id", d.TokenID))
		d.RefuseIdentity(realm)
		return
	}
	if twin != "" {
		log.LogAttrs(ctx, slog.LevelInfo, "denied: underscore spelling of an identity header",
			slog.String("header", twin), slog.String("issuer", d.Issuer), slog.String("token_id", d.TokenID))
		d.RefuseUnderscoreTwin(realm)
	}
}

// PanicAttrs is panics.Attrs, for the adapters, which import authz only.
var PanicAttrs = panics.Attrs
