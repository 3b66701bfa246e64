package issuer

import (
	"cmp"
	"time"
)

// EffectiveClockSkew is the clock_skew the verifier applies: ClockSkew,
// or the 60s default when zero. The engine reads introspection answers'
// iat with the same leeway (the lifetime policy).
func (cfg JWTConfig) EffectiveClockSkew() time.Duration {
	return cmp.Or(cfg.ClockSkew, defaultClockSkew)
}
