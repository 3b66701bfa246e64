package denylog

import (
	"math"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		ok   bool
	}{
		{0, true}, {0.5, true}, {100, true}, {1e6, true},
		{-1, false}, {1e6 + 1, false}, {math.Inf(1), false}, {math.NaN(), false},
	} {
		ps := Config{PerSecond: tc.rate}.Validate()
		_, err := New(Config{PerSecond: tc.rate})
		if (len(ps) == 0) != tc.ok || (err == nil) != tc.ok {
			t.Errorf("PerSecond %v: problems %v, New error %v; want ok=%v", tc.rate, ps, err, tc.ok)
		}
		if !tc.ok && (len(ps) != 1 || ps[0].Field != "denials_per_second") {
			t.Errorf("PerSecond %v: problems %v, want one on denials_per_second", tc.rate, ps)
		}
	}
}
