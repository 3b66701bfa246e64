package push

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/leasegate/leasegate/authz/issuer"
)

// token is a push token whose signature, iss, aud, iat, exp and jti
// passed; its other claims are the receiver's to read.
type token struct {
	is  *trusted
	obj map[string]json.RawMessage
	iat time.Time
	exp time.Time // zero: none
	jti string
}

// readBody reads the request body, refusing a body over MaxBodyBytes and
// a Content-Type other than want (parameters aside).
func readBody(req *http.Request, want string) ([]byte, *refusal) {
	mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || !strings.EqualFold(mt, want) {
		return nil, refuse(codeInvalidRequest, "Content-Type must be "+want)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, refuse(codeInvalidRequest, "request body could not be read")
	}
	if len(body) > MaxBodyBytes {
		return nil, refuse(codeInvalidRequest, "request body exceeds "+strconv.Itoa(MaxBodyBytes)+" bytes")
	}
	return body, nil
}

// verify picks raw's issuer among byIss by its unverified iss, checks its
// signature against that issuer's keys (typ by typOK), and its claims
// every push token has: iss exact, aud naming one of audiences(issuer),
// iat (not further ahead than the skew), exp when present, and a jti.
// The error codes are RFC 8935's.
func (r *Receivers) verify(ctx context.Context, byIss map[string]*trusted, raw string, typOK func(string) bool, audiences func(*trusted) []string) (*token, *refusal) {
	iss, ok := issuer.PeekIssuer(raw)
	if !ok {
		return nil, refuse(codeInvalidRequest, "not a signed JWT")
	}
	is := byIss[iss]
	if is == nil {
		return nil, refuse(codeInvalidIssuer, "the token's issuer is not configured to push here")
	}
	payload, err := is.keys.VerifySigned(ctx, raw, typOK)
	var te *issuer.TokenError
	switch {
	case errors.As(err, &te) && keyReasons[te.Reason]:
		return nil, refuse(codeInvalidKey, te.Reason)
	case errors.As(err, &te):
		return nil, refuse(codeInvalidRequest, te.Reason)
	case err != nil:
		return nil, unavailable("the issuer's signing keys could not be fetched")
	}
	obj, ok := object(payload)
	if !ok {
		return nil, refuse(codeInvalidRequest, "claims are not a JSON object")
	}
	t := &token{is: is, obj: obj}
	if s, _ := stringClaim(obj, "iss"); s != is.cfg.Issuer {
		return nil, refuse(codeInvalidIssuer, "iss does not match the issuer")
	}
	if aud, ok := audienceClaim(obj); !ok || !slices.ContainsFunc(audiences(is), func(a string) bool { return slices.Contains(aud, a) }) {
		return nil, refuse(codeInvalidAudience, "aud does not name this receiver")
	}
	now, skew := r.cfg.Now(), is.cfg.ClockSkew
	if t.iat, ok = dateClaim(obj, "iat"); !ok {
		return nil, refuse(codeInvalidRequest, "iat is missing or not a number")
	}
	if t.iat.After(now.Add(skew)) {
		return nil, refuse(codeInvalidRequest, "issued in the future (iat beyond clock_skew)")
	}
	if _, present := obj["exp"]; present {
		if t.exp, ok = dateClaim(obj, "exp"); !ok || issuer.Expired(t.exp, now) {
			return nil, refuse(codeInvalidRequest, "expired (exp)")
		}
	}
	if t.jti, ok = stringClaim(obj, "jti"); !ok || t.jti == "" || len(t.jti) > maxJTIBytes {
		return nil, refuse(codeInvalidRequest, "jti is missing, not a string or longer than "+strconv.Itoa(maxJTIBytes)+" bytes")
	}
	return t, nil
}

// keyReasons are the issuer package's refusals that blame the key: RFC
// 8935's invalid_key. Every other refusal is a malformed request.
var keyReasons = map[string]bool{
	"signature invalid":                      true,
	"unknown signing key":                    true,
	"signing key does not fit the algorithm": true,
	"algorithm not allowed":                  true,
}

// horizon is until when t could be accepted again: acceptFor after its
// iat, and never past its exp.
func (t *token) horizon(acceptFor time.Duration) time.Time {
	h := t.iat.Add(acceptFor)
	if !t.exp.IsZero() && t.exp.Before(h) {
		h = t.exp
	}
	return h
}

// typIs accepts a typ header naming want, case-insensitively and with an
// optional "application/" (RFC 7515 §4.1.9).
func typIs(typ string, want ...string) bool {
	typ = strings.ToLower(typ)
	typ = strings.TrimPrefix(typ, "application/")
	return slices.Contains(want, typ)
}

// headerTyp is the typ of raw's protected header, "" when it has none or
// does not parse (VerifySigned then refuses it).
func headerTyp(raw string) string {
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return ""
	}
	obj, ok := object(b)
	if !ok {
		return ""
	}
	s, _ := stringClaim(obj, "typ")
	return s
}

// The claim readers take a decoded object and one member; a member of the
// wrong type reads as not ok, never as a zero value.

func object(b []byte) (map[string]json.RawMessage, bool) {
	var obj map[string]json.RawMessage
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &obj) != nil {
		return nil, false
	}
	return obj, true
}

func stringClaim(obj map[string]json.RawMessage, key string) (string, bool) {
	raw, ok := obj[key]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func objectClaim(obj map[string]json.RawMessage, key string) (map[string]json.RawMessage, bool) {
	raw, ok := obj[key]
	if !ok {
		return nil, false
	}
	return object(raw)
}

// audienceClaim reads aud: a string or an array of strings.
func audienceClaim(obj map[string]json.RawMessage) ([]string, bool) {
	if s, ok := stringClaim(obj, "aud"); ok {
		return []string{s}, true
	}
	var list []string
	if raw, ok := obj["aud"]; ok && json.Unmarshal(raw, &list) == nil {
		return list, true
	}
	return nil, false
}

// maxNumericDate is the end of year 9999, as far as a NumericDate is read.
const maxNumericDate = 253402300799

// dateClaim reads a NumericDate (seconds since the epoch, fractions
// allowed), clamped to [0, year 9999].
func dateClaim(obj map[string]json.RawMessage, key string) (time.Time, bool) {
	var n json.Number
	raw, ok := obj[key]
	raw = []byte(strings.TrimSpace(string(raw)))
	// A JSON string would decode into a json.Number too: refused first.
	if !ok || len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) || json.Unmarshal(raw, &n) != nil {
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || math.IsNaN(f) {
		return time.Time{}, false
	}
	f = min(max(f, 0), maxNumericDate)
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)), true
}
