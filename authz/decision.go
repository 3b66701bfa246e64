package authz

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Reason is a machine-readable cause of a decision, for logs, spans and tests.
type Reason string

const (
	ReasonAllowed           Reason = "allowed"
	ReasonStale             Reason = "stale_if_error"
	ReasonNoToken           Reason = "no_token"
	ReasonMalformed         Reason = "malformed_request"
	ReasonUnknownIssuer     Reason = "unknown_issuer"
	ReasonInvalidToken      Reason = "invalid_token"
	ReasonInactive          Reason = "inactive"
	ReasonNegative          Reason = "negative_lease"
	ReasonExpired           Reason = "expired"
	ReasonAudience          Reason = "audience"
	ReasonNotAccessToken    Reason = "not_access_token"
	ReasonScope             Reason = "insufficient_scope"
	ReasonIssuerUnavailable Reason = "issuer_unavailable"
	ReasonCanceled          Reason = "canceled"
)

// LeaseOutcome says how the lease cache took part in a decision.
type LeaseOutcome string

const (
	LeaseNone     LeaseOutcome = "none" // decided before the cache (no or malformed token)
	LeaseHit      LeaseOutcome = "hit"
	LeaseMiss     LeaseOutcome = "miss"
	LeaseStale    LeaseOutcome = "stale"
	LeaseNegative LeaseOutcome = "negative"
)

// RFC 6750 §3.1 error codes.
const (
	ErrCodeInvalidRequest    = "invalid_request"
	ErrCodeInvalidToken      = "invalid_token"
	ErrCodeInsufficientScope = "insufficient_scope"
)

// Identity is what the issuer vouched for.
type Identity struct {
	Subject  string
	ClientID string
	Scope    string
	Issuer   string // the token's iss
}

// Header is one upstream header to set on an allowed request.
type Header struct{ Name, Value string }

// Decision is the engine's answer. A denial is a Decision, never an error.
type Decision struct {
	Allow bool
	// Status is the HTTP status for the client: 200 on allow, else 400,
	// 401, 403 or 503.
	Status      int
	Error       string // RFC 6750 error code, "" for none
	Description string // error_description, safe to show to clients
	Scope       string // scope hint for insufficient_scope
	// RetryAfter is set on 503.
	RetryAfter time.Duration
	// Challenge is the WWW-Authenticate value for 400/401/403.
	Challenge string

	Reason   Reason
	Tier     string
	Lease    LeaseOutcome
	Issuer   string // configured issuer name, "" when none was chosen
	Identity Identity
	// TokenID is the first 8 hex characters of the token's SHA-256, for
	// correlating logs; never the token.
	TokenID string

	// Headers are the upstream identity headers, one per configured name,
	// values empty when the issuer gave none (the adapter must still
	// overwrite or remove what the client sent under those names).
	Headers []Header
	// StripAuthorization asks the proxy to drop Authorization upstream.
	StripAuthorization bool
}

// Body is the JSON error body of a denial.
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

// RetryAfterSeconds renders RetryAfter for the Retry-After header (≥ 1).
func (d *Decision) RetryAfterSeconds() string {
	s := int((d.RetryAfter + time.Second - 1) / time.Second)
	return strconv.Itoa(max(1, s))
}

// challenge builds an RFC 6750 §3 WWW-Authenticate value.
func challenge(realm, code, desc, scope string) string {
	var b strings.Builder
	b.WriteString(`Bearer realm="`)
	b.WriteString(quoteSafe(realm))
	b.WriteByte('"')
	if code != "" {
		b.WriteString(`, error="`)
		b.WriteString(code)
		b.WriteByte('"')
	}
	if desc != "" {
		b.WriteString(`, error_description="`)
		b.WriteString(quoteSafe(desc))
		b.WriteByte('"')
	}
	if scope != "" {
		b.WriteString(`, scope="`)
		b.WriteString(quoteSafe(scope))
		b.WriteByte('"')
	}
	return b.String()
}

// quoteSafe keeps a value inside RFC 6750's allowed set for quoted
// attributes (%x20-21 / %x23-5B / %x5D-7E): no quote, backslash or controls.
func quoteSafe(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			b.WriteByte(c)
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}
