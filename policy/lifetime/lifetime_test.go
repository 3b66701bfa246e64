package lifetime

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func limit(max time.Duration, src string) Limit { return Limit{Max: max, Source: src} }

func TestLifetimeJudge(t *testing.T) {
	const skew = 60 * time.Second
	hour := Policy{Limit: limit(time.Hour, "issuer hydra")}
	long := Policy{Limit: limit(time.Hour, "global"), RefuseLongLived: true}
	tests := []struct {
		name     string
		lt       Policy
		iat, exp time.Time // zero: absent
		now      time.Time
		want     string // "" accepted, else a part of the description
	}{
		{name: "no policy judges nothing, not even a missing iat", lt: Policy{}, exp: t0.Add(2 * time.Hour), now: t0.Add(90 * time.Minute)},
		{name: "no policy: an old token with a late exp", lt: Policy{}, iat: t0, exp: t0.Add(48 * time.Hour), now: t0.Add(40 * time.Hour)},
		{name: "young token", lt: hour, iat: t0, exp: t0.Add(24 * time.Hour), now: t0.Add(time.Minute)},
		{name: "1ns before iat+limit", lt: hour, iat: t0, exp: t0.Add(24 * time.Hour), now: t0.Add(time.Hour - 1)},
		{name: "exactly at iat+limit", lt: hour, iat: t0, exp: t0.Add(24 * time.Hour), now: t0.Add(time.Hour), want: "token older than the lifetime policy allows (issuer hydra: 1h)"},
		{name: "past iat+limit, exp far", lt: hour, iat: t0, exp: t0.Add(24 * time.Hour), now: t0.Add(3 * time.Hour), want: "older than"},
		{name: "past iat+limit, no exp", lt: hour, iat: t0, now: t0.Add(time.Hour), want: "older than"},
		{name: "no exp, young", lt: hour, iat: t0, now: t0.Add(time.Minute)},
		{name: "exp before iat+limit: 1ns before exp", lt: hour, iat: t0, exp: t0.Add(10 * time.Minute), now: t0.Add(10*time.Minute - 1)},
		{name: "exp before iat+limit: at exp", lt: hour, iat: t0, exp: t0.Add(10 * time.Minute), now: t0.Add(10 * time.Minute), want: "token expired"},
		{name: "exp equal to iat+limit: at it", lt: hour, iat: t0, exp: t0.Add(time.Hour), now: t0.Add(time.Hour), want: "token expired"},
		{name: "no iat under a policy", lt: hour, exp: t0.Add(time.Hour), now: t0, want: "token has no iat, which the lifetime policy (issuer hydra: 1h) requires"},
		{name: "no iat, no exp", lt: hour, now: t0, want: "no iat"},
		// clock_skew on the issuer's side: its clock ahead puts iat in
		// our future; up to skew is accepted, beyond it refused.
		{name: "iat in the future within skew", lt: hour, iat: t0.Add(skew), exp: t0.Add(time.Hour), now: t0},
		{name: "iat in the future beyond skew", lt: hour, iat: t0.Add(skew + 1), exp: t0.Add(time.Hour), now: t0, want: "token issued in the future"},
		{name: "iat far in the future", lt: hour, iat: t0.Add(24 * time.Hour), exp: t0.Add(25 * time.Hour), now: t0, want: "issued in the future"},
		{name: "iat ahead within skew: the deadline is still iat+limit", lt: hour, iat: t0.Add(30 * time.Second), exp: t0.Add(24 * time.Hour), now: t0.Add(time.Hour + 30*time.Second - 1)},
		{name: "iat ahead within skew: refused at iat+limit", lt: hour, iat: t0.Add(30 * time.Second), exp: t0.Add(24 * time.Hour), now: t0.Add(time.Hour + 30*time.Second), want: "older than"},
		// On our side: skew never extends the deadline, as it never
		// extends exp.
		{name: "skew does not extend iat+limit", lt: hour, iat: t0, exp: t0.Add(24 * time.Hour), now: t0.Add(time.Hour + skew/2), want: "older than"},
		{name: "refuse_long_lived: exp-iat over the limit, at once", lt: long, iat: t0, exp: t0.Add(time.Hour + time.Second), now: t0, want: "token lifetime is longer than the lifetime policy allows (global: 1h)"},
		{name: "refuse_long_lived: exp-iat exactly the limit", lt: long, iat: t0, exp: t0.Add(time.Hour), now: t0},
		{name: "refuse_long_lived: no exp is unbounded", lt: long, iat: t0, now: t0, want: "lifetime is longer"},
		{name: "refuse_long_lived: a never exp", lt: long, iat: t0, exp: time.Unix(9999999999, 0), now: t0, want: "lifetime is longer"},
		{name: "refuse_long_lived off: the same token accepted until iat+limit", lt: hour, iat: t0, exp: t0.Add(time.Hour + time.Second), now: t0.Add(time.Hour - 1)},
		{name: "refuse_long_lived off: refused at iat+limit, before exp", lt: hour, iat: t0, exp: t0.Add(time.Hour + time.Second), now: t0.Add(time.Hour), want: "older than"},
		{name: "iat from 1970 with a never exp", lt: hour, iat: time.Unix(0, 0), exp: time.Unix(9999999999, 0), now: t0, want: "older than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.lt.Judge(tc.iat, tc.exp, tc.now, skew)
			switch {
			case tc.want == "" && got != "":
				t.Fatalf("Judge = %q, want accepted", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Fatalf("Judge = %q, want it to say %q", got, tc.want)
			}
		})
	}
}

// TestLifetimeDeadline: the deadline is min(exp, iat + limit), and Judge
// accepts exactly before it, whatever the limit.
func TestLifetimeDeadline(t *testing.T) {
	lt := Policy{Limit: limit(time.Hour, "global")}
	tests := []struct {
		name     string
		lt       Policy
		iat, exp time.Time
		want     time.Time
	}{
		{"iat+limit first", lt, t0, t0.Add(2 * time.Hour), t0.Add(time.Hour)},
		{"exp first", lt, t0, t0.Add(time.Minute), t0.Add(time.Minute)},
		{"no exp", lt, t0, time.Time{}, t0.Add(time.Hour)},
		{"no limit: exp", Policy{}, t0, t0.Add(2 * time.Hour), t0.Add(2 * time.Hour)},
		{"no iat: exp", lt, time.Time{}, t0.Add(2 * time.Hour), t0.Add(2 * time.Hour)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.lt.Deadline(tc.iat, tc.exp)
			if !got.Equal(tc.want) {
				t.Fatalf("Deadline = %v, want %v", got, tc.want)
			}
			if tc.iat.IsZero() && tc.lt.Limit.Set() {
				return // refused for its missing iat, whatever the time
			}
			if d := tc.lt.Judge(tc.iat, tc.exp, got.Add(-1), 0); d != "" {
				t.Errorf("1ns before the deadline: %q", d)
			}
			if d := tc.lt.Judge(tc.iat, tc.exp, got, 0); d == "" && tc.lt.Limit.Set() {
				t.Errorf("at the deadline: accepted")
			}
		})
	}
}

func TestLimitMin(t *testing.T) {
	none := Limit{Source: SourceGlobal}
	g, is, rt := limit(3*time.Hour, "global"), limit(2*time.Hour, "issuer hydra"), limit(time.Hour, "route /data/")
	tests := []struct {
		name string
		got  Limit
		want string
	}{
		{"route below issuer below global", g.Min(is).Min(rt), "route /data/: 1h"},
		{"global below the others", limit(30*time.Minute, "global").Min(is).Min(rt), "global: 30m"},
		{"issuer below the others", g.Min(limit(10*time.Minute, "issuer hydra")).Min(rt), "issuer hydra: 10m"},
		{"unset global: the set one", none.Min(is), "issuer hydra: 2h"},
		{"unset other: kept", is.Min(Limit{Source: "route /x/"}), "issuer hydra: 2h"},
		{"nothing set", none.Min(Limit{Source: "issuer hydra"}), "none"},
		{"a tie names the broader", limit(time.Hour, "global").Min(rt), "global: 1h"},
	}
	for _, tc := range tests {
		if s := tc.got.String(); s != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, s, tc.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		12 * time.Hour: "12h", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s", 2 * time.Minute: "2m",
		time.Hour + 30*time.Second: "1h0m30s", time.Second: "1s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
