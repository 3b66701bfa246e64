package authz

import "time"

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
	ReasonLifetime          Reason = "token_lifetime" // the lifetime policy refused it (SPEC §2)
	ReasonScope             Reason = "insufficient_scope"
	ReasonIssuerUnavailable Reason = "issuer_unavailable"
	ReasonCanceled          Reason = "canceled"
	// ReasonFleetUnavailable: on_store_loss is deny and the fleet's store
	// is down.
	ReasonFleetUnavailable Reason = "fleet_store_unavailable"
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
	// Challenge is the WWW-Authenticate value for 400/401/403, built from
	// Realm, Error, Description and Scope (see denial.go).
	Challenge string
	// Realm is the realm in Challenge ("" for none), kept so an adapter
	// that changes the description can rebuild it (SetDescription).
	Realm string

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
	// overwrite or remove what the client sent under those names). On a
	// storage route (require:) one more follows: HeaderIfNoneMatch, "*"
	// when the allow holds only for a PUT that cannot overwrite, else the
	// client's own value; adapters render it like the others.
	Headers []Header
	// StripAuthorization asks the proxy to drop Authorization upstream.
	StripAuthorization bool
	// View is set on a lease hit: what every hit of the lease shares
	// (Identity and Headers are the view's; Headers may not be written
	// in place, only appended to, which copies). Nil otherwise; a denial
	// clears it.
	View *LeaseView
}
