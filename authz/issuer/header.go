package issuer

import (
	"encoding/base64"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// maxJWSBytes bounds the compact JWS the JWT parser and PeekIssuer will
// look at, for callers that did not apply the engine's
// request.MaxBearerTokenBytes first; through the engine the lower limit holds.
const maxJWSBytes = 64 << 10

// allowedAlgs are the asymmetric JWS algorithms accepted. "none" and HS*
// are absent on purpose: HMAC with a public key as secret is the classic
// key-confusion forgery.
var allowedAlgs = map[string]jwa.SignatureAlgorithm{
	"RS256": jwa.RS256, "RS384": jwa.RS384, "RS512": jwa.RS512,
	"PS256": jwa.PS256, "PS384": jwa.PS384, "PS512": jwa.PS512,
	"ES256": jwa.ES256, "ES384": jwa.ES384, "ES512": jwa.ES512,
	"EdDSA": jwa.EdDSA,
}

type jwsHeader struct {
	alg jwa.SignatureAlgorithm
	kid string
}

// parseJWSHeader reads the protected header of a compact JWS and applies
// the checks that need no key (typ: typOK). It returns a non-empty reason
// (safe as an error_description) when the token must be refused.
func parseJWSHeader(token string, typOK func(string) bool) (jwsHeader, string) {
	if len(token) > maxJWSBytes {
		return jwsHeader{}, "token too large"
	}
	if strings.Count(token, ".") != 2 || !isBase64URLOrDot(token) {
		return jwsHeader{}, "malformed token"
	}
	h, rest, _ := strings.Cut(token, ".")
	p, sig, _ := strings.Cut(rest, ".")
	raw, err := b64url.DecodeString(h)
	if err != nil {
		return jwsHeader{}, "malformed token"
	}
	// Only canonical encodings: one token, one spelling (no padding, no
	// stray bits), so a verified token cannot be re-spelled by a third party.
	_, errP := b64url.DecodeString(p)
	if _, errS := b64url.DecodeString(sig); errP != nil || errS != nil {
		return jwsHeader{}, "malformed token"
	}
	obj, err := decodeObject(raw)
	if err != nil {
		return jwsHeader{}, "malformed token"
	}
	algName, err := stringMember(obj, "alg")
	if err != nil || algName == "" {
		return jwsHeader{}, "malformed token"
	}
	alg, ok := allowedAlgs[algName]
	if !ok {
		return jwsHeader{}, "algorithm not allowed"
	}
	// RFC 7515 §4.1.11: unknown critical extensions must be refused; we
	// understand none. b64=false (RFC 7797) changes what is signed.
	_, crit := obj["crit"]
	if _, b64 := obj["b64"]; crit || b64 {
		return jwsHeader{}, "unsupported critical header"
	}
	typ, err := stringMember(obj, "typ")
	if err != nil {
		return jwsHeader{}, "malformed token"
	}
	// SPEC §2: "A JWT whose typ says it is not an access token is refused".
	if typ != "" && !typOK(typ) {
		return jwsHeader{}, "token type not accepted"
	}
	kid, err := stringMember(obj, "kid")
	if err != nil {
		return jwsHeader{}, "malformed token"
	}
	return jwsHeader{alg: alg, kid: kid}, ""
}

// b64url decodes the unpadded base64url of compact JWS (RFC 7515 §2),
// refusing non-zero trailing bits.
var b64url = base64.RawURLEncoding.Strict()

// isBase64URLOrDot reports whether s uses only the base64url alphabet and
// dots. Go's decoders skip CR/LF, so the check comes before decoding.
func isBase64URLOrDot(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// PeekIssuer reads the unverified iss of a compact JWS. ok is false when the
// token is not a JWT (opaque): not three dot-separated parts, or a header
// that is not a JSON object with a string "alg", or a payload that is not a
// JSON object. ok with iss == "" means a JWT without a string iss. Cheap: no
// signature work; use it only to pick the issuer config.
func PeekIssuer(token string) (iss string, ok bool) {
	if len(token) > maxJWSBytes || strings.Count(token, ".") != 2 || !isBase64URLOrDot(token) {
		return "", false
	}
	h, rest, _ := strings.Cut(token, ".")
	p, _, _ := strings.Cut(rest, ".")
	hraw, err := b64url.DecodeString(h)
	if err != nil {
		return "", false
	}
	hdr, err := decodeObject(hraw)
	if err != nil {
		return "", false
	}
	if alg, err := stringMember(hdr, "alg"); err != nil || alg == "" {
		return "", false
	}
	praw, err := b64url.DecodeString(p)
	if err != nil {
		return "", false
	}
	claims, err := decodeObject(praw)
	if err != nil {
		return "", false
	}
	iss, err = stringMember(claims, "iss")
	if err != nil {
		return "", true
	}
	return iss, true
}
