package leasecache

import (
	"slices"
	"testing"
	"time"
)

func TestConfigWithDefaults(t *testing.T) {
	got := Config{NegativeTTL: time.Second}.WithDefaults()
	want := Config{MaxMemoryMB: DefaultMaxMemoryMB, NegativeTTL: time.Second, MaxAge: DefaultMaxAge}
	if got.MaxMemoryMB != want.MaxMemoryMB || got.NegativeTTL != want.NegativeTTL || got.MaxAge != want.MaxAge {
		t.Errorf("WithDefaults = %+v, want %+v", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []ConfigProblem
	}{
		{name: "zero is the defaults", cfg: Config{}},
		{name: "smallest", cfg: Config{MaxMemoryMB: 2}},
		{name: "too small", cfg: Config{MaxMemoryMB: 1}, want: []ConfigProblem{{"max_memory_mb", "1 is outside 2..1048576"}}},
		{name: "too large", cfg: Config{MaxMemoryMB: 1<<20 + 1}, want: []ConfigProblem{{"max_memory_mb", "1048577 is outside 2..1048576"}}},
		{name: "negative ttl", cfg: Config{NegativeTTL: -time.Second}, want: []ConfigProblem{{"negative_ttl", "must not be negative"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.Validate(); !slices.Equal(got, tc.want) {
				t.Errorf("Validate() = %q, want %q", got, tc.want)
			}
			// What Validate accepts, New builds.
			if len(tc.want) == 0 {
				c, err := New(tc.cfg)
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				c.Close()
			}
		})
	}
}
