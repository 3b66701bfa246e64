package issuer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Claims are the facts an issuer vouched for.
type Claims struct {
	Active   bool
	Issuer   string // iss
	Subject  string // sub
	ClientID string // client_id (JWT: client_id claim, else azp)
	// Scope is space-separated; JWT: "scope" string claim, or "scp" array
	// joined by spaces (an "scp" string is taken as is).
	Scope                       string
	Audience                    []string
	Expiry, IssuedAt, NotBefore time.Time // zero when absent
	WLCGVersion                 string    // "wlcg.ver" claim when present (JWT); the storage policy checks it
	SessionID, Email            string    // sid and email, which push revocation names tokens by (readClaims)
}

// Sentinel errors callers branch on with errors.Is. The issuer clients return
// them wrapped in *IssuerError and *TokenError, which add context.
var (
	// ErrIssuerUnavailable: network error, timeout, 5xx, 429, other non-2xx,
	// malformed or oversized answer, redirect, JWKS unreachable. An issuer
	// fault, never a verdict on the token.
	ErrIssuerUnavailable = errors.New("issuer unavailable")
	// ErrInvalidToken: the token itself is bad (bad signature, expired, nbf in
	// the future, wrong iss/aud, alg none/HS*, unparseable JWT, unknown kid
	// after a refresh).
	ErrInvalidToken = errors.New("invalid token")
)

// Causes inside a TokenError that a caller may tell apart with errors.Is,
// to report each with its own reason; ErrAudience (audience.go) is the third.
var (
	ErrExpired        = errors.New("exp is not in the future")
	ErrNotAccessToken = errors.New("token type is not an access token")
)

// IssuerError reports an issuer fault; errors.Is(err, ErrIssuerUnavailable)
// holds for it. Its text is safe to log: it never contains the token.
type IssuerError struct {
	Issuer string // configured issuer name
	Op     string // "introspect", "jwks" or "discovery"
	// Status is the HTTP status the issuer answered with, 0 when there was no
	// answer (network error, timeout).
	Status int
	// RetryAfter is the issuer's Retry-After (either form) on a 429 or
	// 503, zero when absent.
	RetryAfter time.Duration
	Reason     string // short and human-readable
	Err        error  // underlying cause, may be nil
}

func (e *IssuerError) Error() string {
	s := fmt.Sprintf("%s %s: %s", e.Op, e.Issuer, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap exposes both the sentinel and the cause, so errors.Is works for
// ErrIssuerUnavailable as well as for context.DeadlineExceeded and friends.
func (e *IssuerError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrIssuerUnavailable}
	}
	return []error{ErrIssuerUnavailable, e.Err}
}

// TokenError reports that the token itself is bad; errors.Is(err,
// ErrInvalidToken) holds for it.
type TokenError struct {
	Issuer string // configured issuer name
	// Reason is short, lower-case and free of token content, meant to be used
	// as-is as an RFC 6750 error_description ("token expired").
	Reason string
	Err    error // underlying cause, may be nil; for logs only
}

func (e *TokenError) Error() string {
	s := fmt.Sprintf("invalid token (issuer %s): %s", e.Issuer, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *TokenError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalidToken}
	}
	return []error{ErrInvalidToken, e.Err}
}

// maxNumericDate is the end of year 9999. NumericDates beyond it are read
// as it (and below 0 as 0), so the conversion to time.Time and any later
// arithmetic stay in range while every exp a token can carry still works
// (SPEC §1): clamping an exp down, or an nbf/iat to an instant that is
// still in the future or the past, never accepts a token the exact value
// would refuse.
const maxNumericDate = 253402300799

// The helpers below read one member of a JSON object that was decoded into
// map[string]json.RawMessage. Decoding into a map (not a struct) matters:
// encoding/json matches struct fields case-insensitively, so a struct would
// read "ACTIVE": true as active.

// jsonKind returns the first byte of a raw JSON value ('"', '{', '[', 't',
// 'f', 'n', or a digit/'-' for numbers), 0 for an empty value.
func jsonKind(raw json.RawMessage) byte {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}

// present reports whether key exists and is not JSON null.
func present(obj map[string]json.RawMessage, key string) bool {
	raw, ok := obj[key]
	return ok && jsonKind(raw) != 'n'
}

// stringMember reads an optional string member; null or absent → "".
func stringMember(obj map[string]json.RawMessage, key string) (string, error) {
	if !present(obj, key) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(obj[key], &s); err != nil {
		return "", fmt.Errorf("%q is not a string", key)
	}
	return s, nil
}

// boolMember reads a member that must be a JSON boolean.
func boolMember(obj map[string]json.RawMessage, key string) (value, ok bool) {
	raw, found := obj[key]
	if !found {
		return false, false
	}
	switch jsonKind(raw) {
	case 't', 'f':
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return false, false
		}
		return b, true
	}
	return false, false
}

// dateMember reads an optional NumericDate (RFC 7519 §2: seconds since the
// epoch, fractions allowed); null or absent → zero time. Values out of
// range are clamped to [0, maxNumericDate], never refused.
func dateMember(obj map[string]json.RawMessage, key string) (time.Time, error) {
	if !present(obj, key) {
		return time.Time{}, nil
	}
	raw := obj[key]
	if c := jsonKind(raw); c != '-' && (c < '0' || c > '9') {
		return time.Time{}, fmt.Errorf("%q is not a number", key)
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return time.Time{}, fmt.Errorf("%q is not a number", key)
	}
	// ParseFloat gives ±Inf for 1e400: clamped below like any large value.
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || math.IsNaN(f) {
		return time.Time{}, fmt.Errorf("%q is not a number", key)
	}
	f = min(max(f, 0), maxNumericDate)
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)).UTC(), nil
}

// Expired is the one exp rule, for JWTs, introspection answers and
// whatever a caller keeps of them alike: a token is accepted only while
// now < exp (RFC 7519 §4.1.4; SPEC §1 "never serve a cached answer past
// exp"). clock_skew is not added to exp, only to nbf and iat, which an
// issuer's clock ahead of ours can put slightly in the future.
func Expired(exp, now time.Time) bool {
	return !exp.IsZero() && !now.Before(exp)
}

// NotYetValid is the one nbf rule, for JWTs and introspection answers
// alike, and the JWT's iat rule (an introspection answer passes no iat:
// its iat is the lifetime policy's): "" when the token may be used at now,
// else why not (an error_description). skew (clock_skew) lets both lie
// that far in the future: the issuer's clock may run ahead of ours. Zero
// values are absent.
func NotYetValid(nbf, iat, now time.Time, skew time.Duration) string {
	switch {
	case !nbf.IsZero() && now.Add(skew).Before(nbf):
		return "token not yet valid"
	case !iat.IsZero() && iat.After(now.Add(skew)):
		return "token issued in the future"
	}
	return ""
}

// audienceMember reads aud: a string or an array of strings (RFC 7519 §4.1.3).
func audienceMember(obj map[string]json.RawMessage, key string) ([]string, error) {
	if !present(obj, key) {
		return nil, nil
	}
	raw := obj[key]
	switch jsonKind(raw) {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("%q is not a string or an array of strings", key)
		}
		return []string{s}, nil
	case '[':
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("%q is not a string or an array of strings", key)
		}
		return list, nil
	}
	return nil, fmt.Errorf("%q is not a string or an array of strings", key)
}

// scopeMember reads a scope that is either a space-separated string or an
// array of strings (JWT "scp"), returning the space-separated form.
func scopeMember(obj map[string]json.RawMessage, key string) (string, error) {
	if !present(obj, key) {
		return "", nil
	}
	raw := obj[key]
	if jsonKind(raw) == '[' {
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return "", fmt.Errorf("%q is not a string or an array of strings", key)
		}
		return strings.Join(list, " "), nil
	}
	return stringMember(obj, key)
}

// decodeObject decodes a JSON object into its members; anything else
// (array, string, null, trailing garbage) is an error.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	if jsonKind(data) != '{' {
		return nil, errors.New("not a JSON object")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, errors.New("not a JSON object")
	}
	return obj, nil
}

// readClaims reads the members RFC 7662 answers and JWT access tokens share
// (iss, sub, client_id, aud, exp, iat, nbf), returning every malformed one.
// refusal, when not "", is why the token must be refused although
// well-formed: it is not an access token (see notAccessToken).
func readClaims(obj map[string]json.RawMessage) (c Claims, refusal string, errs []error) {
	read := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var e error
	c.Issuer, e = stringMember(obj, "iss")
	read(e)
	c.Subject, e = stringMember(obj, "sub")
	read(e)
	c.ClientID, e = stringMember(obj, "client_id")
	read(e)
	c.Audience, e = audienceMember(obj, "aud")
	read(e)
	c.Expiry, e = dateMember(obj, "exp")
	read(e)
	c.IssuedAt, e = dateMember(obj, "iat")
	read(e)
	c.NotBefore, e = dateMember(obj, "nbf")
	read(e)
	refusal, e = notAccessToken(obj)
	read(e)
	// sid and email (push revocation): top-level or under ext, ORY Hydra's.
	ext, _ := decodeObject(obj["ext"])
	for _, m := range [...]map[string]json.RawMessage{ext, obj} { // obj wins; not a string: absent
		if s, err := stringMember(m, "sid"); err == nil && s != "" {
			c.SessionID = s
		}
		if s, err := stringMember(m, "email"); err == nil && s != "" {
			c.Email = s
		}
	}
	return c, refusal, errs
}

// tokenTypeMembers name what kind of token an answer or a JWT is: RFC 7662
// token_type, token_use (ORY Hydra, AWS Cognito) and the typ claim
// (Keycloak: "Bearer", "ID", "Refresh", "Logout").
var tokenTypeMembers = [...]string{"token_type", "token_use", "typ"}

// notAccessTokenClaims appear only in tokens that are not access tokens:
// at_hash, c_hash (OpenID Connect Core §3.1.3.6, §3.3.2.11) and s_hash
// (FAPI) in ID tokens, events in security event and logout tokens
// (RFC 8417, OpenID Connect Back-Channel Logout). ORY Hydra's ID tokens
// carry at_hash and typ JWT, like its access tokens.
var notAccessTokenClaims = [...]string{"at_hash", "c_hash", "s_hash", "events"}

const refusalNotAccessToken = "token is not an access token"

// notAccessToken applies SPEC §2, "Only access tokens pass": a token whose
// token_type, token_use or typ names anything but an access token (a
// refresh token: Hydra answers active with token_use "refresh_token"; an
// ID token), or that carries a claim only other tokens carry, is refused.
// An empty string names nothing and is read as absent.
func notAccessToken(obj map[string]json.RawMessage) (string, error) {
	var errs []error
	refusal := ""
	for _, m := range tokenTypeMembers {
		v, err := stringMember(obj, m)
		if err != nil {
			errs = append(errs, err)
		} else if v != "" && !isAccessTokenType(v) {
			refusal = refusalNotAccessToken
		}
	}
	for _, m := range notAccessTokenClaims {
		if present(obj, m) {
			refusal = refusalNotAccessToken
		}
	}
	return refusal, errors.Join(errs...)
}

// accessTokenTypes are the spellings that name an access token, compared
// case-insensitively after an optional "application/" (RFC 7515 §4.1.9):
// RFC 6750 Bearer and RFC 9449 DPoP (token_type); access_token (Hydra's
// token_use, and token_type of older Hydra and others); access (Cognito's
// token_use); RFC 8693's URI; and the JWS typ values JWT (RFC 7519 §5.1)
// and at+jwt (RFC 9068 §2.1). Anything else — refresh_token, id_token,
// ID, Refresh, N_A, logout+jwt, secevent+jwt, dpop+jwt — is refused.
var accessTokenTypes = [...]string{
	"bearer", "dpop", "access_token", "access",
	"urn:ietf:params:oauth:token-type:access_token",
	"jwt", "at+jwt",
}

func isAccessTokenType(v string) bool {
	const prefix = "application/"
	if len(v) > len(prefix) && strings.EqualFold(v[:len(prefix)], prefix) {
		v = v[len(prefix):]
	}
	for _, a := range accessTokenTypes {
		if strings.EqualFold(v, a) {
			return true
		}
	}
	return false
}
