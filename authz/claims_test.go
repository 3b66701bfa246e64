package authz

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDateMember(t *testing.T) {
	// SPEC §1: "Any exp a token can carry works". Out-of-range values are
	// clamped (never refused, never overflowed), in the safe direction.
	year9999 := time.Unix(maxNumericDate, 0).UTC()
	tests := []struct {
		raw     string
		want    time.Time
		wantErr bool
	}{
		{raw: `1893456000`, want: time.Unix(1893456000, 0).UTC()},
		{raw: `1893456000.25`, want: time.Unix(1893456000, 250e6).UTC()},
		{raw: `9999999999`, want: time.Unix(9999999999, 0).UTC()}, // 2286, past UnixNano's 2262
		{raw: `253402300799`, want: year9999},
		{raw: `253402300800`, want: year9999},
		{raw: `1e15`, want: year9999},
		{raw: `1e400`, want: year9999}, // beyond float64
		{raw: `0`, want: time.Unix(0, 0).UTC()},
		{raw: `-1`, want: time.Unix(0, 0).UTC()},
		{raw: `-1e400`, want: time.Unix(0, 0).UTC()},
		{raw: `1e-400`, want: time.Unix(0, 0).UTC()},
		{raw: `"1893456000"`, wantErr: true},
		{raw: `true`, wantErr: true},
		{raw: `[1]`, wantErr: true},
		{raw: `{}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := dateMember(map[string]json.RawMessage{"exp": json.RawMessage(tc.raw)}, "exp")
			if tc.wantErr {
				if err == nil {
					t.Fatalf("dateMember(%s) = %s, want an error", tc.raw, got)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("dateMember(%s) = %s, %v; want %s", tc.raw, got, err, tc.want)
			}
		})
	}
	t.Run("null and absent are zero", func(t *testing.T) {
		for _, obj := range []map[string]json.RawMessage{{}, {"exp": json.RawMessage(`null`)}} {
			if got, err := dateMember(obj, "exp"); err != nil || !got.IsZero() {
				t.Fatalf("dateMember(%v) = %s, %v; want zero", obj, got, err)
			}
		}
	})
}

func TestExpiredRule(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		exp  time.Time
		want bool
	}{
		{time.Time{}, false}, // no exp: the lease window and lifetime policy bound it
		{now.Add(time.Nanosecond), false},
		{now, true},
		{now.Add(-time.Nanosecond), true},
		{now.Add(-30 * time.Second), true}, // inside clock_skew: still expired
	} {
		if got := expired(tc.exp, now); got != tc.want {
			t.Errorf("expired(%s, %s) = %v, want %v", tc.exp, now, got, tc.want)
		}
	}
}
