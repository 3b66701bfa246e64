package issuer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// refreshLog records what OnRefresh is told.
type refreshLog struct {
	mu  sync.Mutex
	got []string
}

func (l *refreshLog) record(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.got = append(l.got, "error")
	} else {
		l.got = append(l.got, "ok")
	}
}

func (l *refreshLog) outcomes() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.got...)
}

// OnRefresh hears every JWKS refresh once, with its outcome: the start,
// an on-demand one for an unknown kid, none when the limiter skips one,
// and a failure when the issuer serves something that is not a key set or
// is down.
func TestJWTOnRefresh(t *testing.T) {
	k1 := newTestKey(t, jwa.ES256, "k1", 0)
	k2 := newTestKey(t, jwa.ES256, "k2", 0)
	k3 := newTestKey(t, jwa.ES256, "k3", 0)
	iss := newFakeJWKSIssuer(t, k1)
	log := &refreshLog{}
	env := newJWTEnv(t, iss, func(c *JWTConfig) { c.OnRefresh = log.record })
	waitReady(t, env.v)
	ctx := context.Background()
	want := func(step string, outcomes ...string) {
		t.Helper()
		got := log.outcomes()
		if len(got) != len(outcomes) {
			t.Fatalf("%s: OnRefresh heard %v, want %v", step, got, outcomes)
		}
		for i := range got {
			if got[i] != outcomes[i] {
				t.Fatalf("%s: OnRefresh heard %v, want %v", step, got, outcomes)
			}
		}
	}
	want("start", "ok")

	iss.setKeys(k2)
	if _, err := env.v.Verify(ctx, k2.sign(t, env.claims(nil), nil)); err != nil {
		t.Fatal(err)
	}
	want("unknown kid", "ok", "ok")

	iss.setKeys(k3)
	_, _ = env.v.Verify(ctx, k3.sign(t, env.claims(nil), nil))
	want("inside the refetch interval", "ok", "ok")

	iss.mu.Lock()
	iss.rawJWKS = []byte(`{"keys": "not a list"}`)
	iss.mu.Unlock()
	env.clock.Advance(31 * time.Second)
	_, _ = env.v.Verify(ctx, k3.sign(t, env.claims(nil), nil))
	want("a body that is no key set", "ok", "ok", "error")

	iss.down.Store(true)
	env.clock.Advance(31 * time.Second)
	_, _ = env.v.Verify(ctx, k3.sign(t, env.claims(nil), nil))
	want("issuer down", "ok", "ok", "error", "error")
}
