package issuer

import (
	"errors"
	"slices"
)

// ErrAudience is the cause inside a TokenError for an audience not ours.
var ErrAudience = errors.New("no accepted audience in aud")

// WLCGAnyAudience is the WLCG Common JWT Profile audience meaning "any
// relying party"; accepted only when JWTConfig.AcceptWLCGAny is set.
const WLCGAnyAudience = "https://wlcg.cern.ch/jwt/v1/any"

// audienceRule is the one audience check (RFC 9068 §4, RFC 7519 §4.1.3),
// applied to signed JWT claims and to introspection answers alike, so an
// exception such as accept_wlcg_any_audience holds wherever aud is checked.
type audienceRule struct {
	audiences []string // empty: not checked
	wlcgAny   bool     // also accept WLCGAnyAudience
}

func newAudienceRule(audiences []string, wlcgAny bool) (audienceRule, error) {
	if slices.Contains(audiences, "") {
		return audienceRule{}, errors.New("audiences must not contain an empty string")
	}
	return audienceRule{audiences: slices.Clone(audiences), wlcgAny: wlcgAny}, nil
}

// accepts reports whether aud names one of the configured audiences.
func (r audienceRule) accepts(aud []string) bool {
	if len(r.audiences) == 0 {
		return true
	}
	for _, a := range aud {
		if slices.Contains(r.audiences, a) || (r.wlcgAny && a == WLCGAnyAudience) {
			return true
		}
	}
	return false
}
