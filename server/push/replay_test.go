package push

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestReplayBounded(t *testing.T) {
	r := NewReplay(3)
	now := time.Unix(1_900_000_000, 0)
	for i, h := range []time.Duration{30 * time.Second, 10 * time.Second, 20 * time.Second} {
		if !r.remember(SourceSSF, "idp", fmt.Sprint("j", i), now.Add(h), now) {
			t.Fatalf("j%d refused as a replay", i)
		}
	}
	if r.remember(SourceSSF, "idp", "j0", now.Add(time.Minute), now) {
		t.Fatal("j0 again was not a replay")
	}
	// The same jti from another receiver or issuer is another token.
	if !r.remember(SourceBackchannel, "idp", "j0", now.Add(time.Minute), now) {
		t.Fatal("j0 of the other receiver refused")
	}
	// Full: j1, the one closest to its horizon, made room.
	if r.held() != 3 || !r.remember(SourceSSF, "idp", "j1", now.Add(time.Minute), now) {
		t.Fatalf("len %d; j1 still held after it was evicted", r.held())
	}
	// Past their horizons entries go on the next call.
	later := now.Add(2 * time.Minute)
	r.remember(SourceSSF, "idp", "last", later.Add(time.Second), later)
	if r.held() != 1 {
		t.Fatalf("len %d after every horizon passed, want 1", r.held())
	}
	r.forget(SourceSSF, "idp", "last")
	r.forget(SourceSSF, "idp", "never held")
	if r.held() != 0 || !r.remember(SourceSSF, "idp", "last", later.Add(time.Second), later) {
		t.Fatal("forget did not forget")
	}
}

func TestValidate(t *testing.T) {
	ps := Validate([]IssuerConfig{
		{Name: "ok", Issuer: "https://idp.example.org", ClientIDs: []string{"portal"}},
		{Name: "silent", Issuer: "not a url"}, // pushes nothing: not checked
		{Name: "bad", Issuer: "not a url", ClientIDs: []string{""}, ClockSkew: -time.Second},
		{Name: "badjwks", Issuer: "https://idp.example.org", JWKSURI: "ftp://x/jwks", Audience: "https://lg"},
	})
	var got []string
	for _, p := range ps {
		got = append(got, p.Error())
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{"issuers[2].backchannel_logout.client_ids", "issuers[2].issuer", "issuers[2].clock_skew", "issuers[3].jwks_uri"} {
		if !strings.Contains(joined, want) {
			t.Errorf("problems lack %s:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "issuers[0]") || strings.Contains(joined, "issuers[1]") {
		t.Errorf("problems for a good or silent issuer:\n%s", joined)
	}
	if _, err := New(t.Context(), Config{Issuers: []IssuerConfig{{Name: "bad", Issuer: "x", ClientIDs: []string{"c"}}}, Revoker: &recorder{}}); err == nil {
		t.Error("New accepted what Validate refuses")
	}
	if _, err := New(t.Context(), Config{}); err == nil {
		t.Error("New without a Revoker")
	}
}

func TestReady(t *testing.T) {
	e := newEnv(t)
	deadline := time.Now().Add(5 * time.Second)
	for !e.rcv.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("key set never fetched")
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.jwks.Close()
	rcv, err := New(t.Context(), Config{Issuers: []IssuerConfig{{Name: "idp", Issuer: e.iss, JWKSURI: e.jwks.URL + "/jwks", Audience: testAudience}},
		Revoker: e.rec, Logger: e.rcv.log})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	time.Sleep(50 * time.Millisecond)
	if rcv.Ready() {
		t.Fatal("ready without its key set")
	}
}
