package push

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/leasegate/leasegate/authz/denylog"
)

// TestRefusalLogLimited: a flood of garbage pushes logs as many refusal
// lines as log.denials_per_second allows, the next line says how many
// were left out, and an accepted push is logged whatever the flood.
func TestRefusalLogLimited(t *testing.T) {
	e := newEnv(t)
	var logs bytes.Buffer
	lim, err := denylog.New(denylog.Config{PerSecond: 1, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := New(context.Background(), Config{
		Issuers: []IssuerConfig{{Name: "idp", Issuer: e.iss, JWKSURI: e.jwks.URL + "/jwks", ClientIDs: []string{testClientID}, Audience: testAudience}},
		Revoker: e.rec, Now: e.clock.Now, Logger: slog.New(slog.NewJSONHandler(&logs, nil)), RefusalLog: lim, Metrics: e.metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	e.rcv = rcv

	lines := func() (refused []map[string]any, accepted int) {
		dec := json.NewDecoder(bytes.NewReader(logs.Bytes()))
		for dec.More() {
			var l map[string]any
			if err := dec.Decode(&l); err != nil {
				t.Fatal(err)
			}
			switch l["msg"] {
			case "push signal refused":
				refused = append(refused, l)
			case "push revocation":
				accepted++
			}
		}
		return refused, accepted
	}
	for range 5 {
		if a := e.logout(t, "not.a.token"); a.status != 400 {
			t.Fatalf("garbage push: %d, want 400", a.status)
		}
	}
	if a := e.logout(t, e.key.sign(t, e.logoutClaims(nil), nil)); a.status != 200 {
		t.Fatalf("a valid logout token: %d", a.status)
	}
	refused, accepted := lines()
	if len(refused) != 1 || accepted != 1 {
		t.Fatalf("%d refusal lines and %d accepted, want 1 and 1 (a bucket of one a second):\n%s", len(refused), accepted, logs.String())
	}
	e.clock.Advance(time.Second)
	e.logout(t, "not.a.token")
	refused, _ = lines()
	if len(refused) != 2 || refused[1]["suppressed"] != float64(4) {
		t.Fatalf("after a second: %d lines, the last %v; want 2, suppressed 4", len(refused), refused[len(refused)-1])
	}
	if got := e.requests(SourceBackchannel, "invalid_request"); got != 6 {
		t.Errorf("refusals counted %v, want 6: the limit is on lines, not on the metric", got)
	}
}
