package leasecache

import (
	"cmp"
	"fmt"
	"time"
)

// Defaults for Config's zero values (SPEC §7 lease.*).
const (
	DefaultMaxMemoryMB = 256
	DefaultNegativeTTL = 10 * time.Second
	DefaultMaxAge      = 10 * time.Minute
)

// maxMemoryMB is the largest MaxMemoryMB Validate accepts (1 TiB).
const maxMemoryMB = 1 << 20

// WithDefaults is c with each zero field set to its default, as New reads
// it; a caller shows the effective values with it.
func (c Config) WithDefaults() Config {
	c.MaxMemoryMB = cmp.Or(c.MaxMemoryMB, DefaultMaxMemoryMB)
	c.NegativeTTL = cmp.Or(c.NegativeTTL, DefaultNegativeTTL)
	c.MaxAge = cmp.Or(c.MaxAge, DefaultMaxAge)
	return c
}

// ConfigProblem is one reason Validate refuses a Config. Field is the key
// as SPEC §7 spells it inside lease: "max_memory_mb", "negative_ttl".
type ConfigProblem struct {
	Field string
	Msg   string
}

func (p ConfigProblem) Error() string { return p.Field + ": " + p.Msg }

// Validate reports every problem in c, zero values read as their defaults.
// It refuses all that New refuses, and also a negative NegativeTTL and a
// memory bound above 1 TiB. MaxAge is lease.max, whose rules are the
// policy's (policy.Config.Validate).
func (c Config) Validate() []ConfigProblem {
	var out []ConfigProblem
	c = c.WithDefaults()
	if c.MaxMemoryMB < 2 || c.MaxMemoryMB > maxMemoryMB {
		out = append(out, ConfigProblem{"max_memory_mb", fmt.Sprintf("%d is outside 2..%d", c.MaxMemoryMB, maxMemoryMB)})
	}
	if c.NegativeTTL < 0 {
		out = append(out, ConfigProblem{"negative_ttl", "must not be negative"})
	}
	return out
}
