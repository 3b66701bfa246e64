package authz

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// panicTransport stands in for a bug anywhere under a coalesced
// validation: it panics inside the issuer call, with a value that quotes
// the token, once release is closed. While healthy is set it answers as
// next does.
type panicTransport struct {
	release chan struct{}
	healthy atomic.Bool
	next    http.RoundTripper
}

func (p *panicTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if p.healthy.Load() {
		return p.next.RoundTrip(r)
	}
	<-p.release
	_ = r.ParseForm()
	panic("introspection blew up on token " + r.PostForm.Get("token"))
}

func TestEnginePanicInCoalescedValidation(t *testing.T) {
	// A panic inside a coalesced validation must not kill the process:
	// every caller of the flight gets 503, it is counted as an issuer
	// "error" and logged at error level with its type and stack, never
	// the token.
	const n = 20
	const tok = "opaque-PANICSECRET-0123456789"
	pt := &panicTransport{release: make(chan struct{}), next: http.DefaultTransport}
	env := newEngEnv(t, engOpts{issuer: func(ic *IssuerConfig) { ic.Introspection.Transport = pt }})
	env.iss.setAnswer(tok, env.active(nil))

	decisions := make([]Decision, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { decisions[i] = env.check("GET", "/f", tok) })
	}
	waitInValidate(t, n)
	close(pt.release)
	wg.Wait()

	for i, d := range decisions {
		if d.Allow || d.Status != http.StatusServiceUnavailable || d.Reason != ReasonIssuerUnavailable || d.RetryAfter < time.Second {
			t.Fatalf("caller %d: %+v, want 503 issuer_unavailable", i, d)
		}
	}
	if got := env.issuerRequests("error"); got != 1 {
		t.Fatalf("issuer_requests{error} = %v, want 1", got)
	}
	logs := env.logs.String()
	if strings.Contains(logs, "PANICSECRET") {
		t.Fatalf("the log carries the token:\n%s", logs)
	}
	var line string
	for l := range strings.SplitSeq(logs, "\n") {
		if strings.Contains(l, `"level":"ERROR"`) && strings.Contains(l, "panic") {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, `"panic_type":"string"`) || !strings.Contains(line, "panicTransport") ||
		!strings.Contains(line, `"token_id":"`+decisions[0].TokenID+`"`) {
		t.Fatalf("want an error line with the panic type, a stack and the token_id; logs:\n%s", logs)
	}

	// The engine keeps working: no lease was kept, the next request asks.
	pt.healthy.Store(true)
	if d := env.check("GET", "/f", tok); !d.Allow || d.Lease != LeaseMiss {
		t.Fatalf("after the panic: %+v, want a fresh allow", d)
	}
}

func TestEnginePanicEndsTheBreakerProbe(t *testing.T) {
	// A panic during the half-open probe counts as a failed call; were it
	// lost, the breaker would wait for the probe's outcome forever and
	// refuse every call from then on.
	pt := &panicTransport{release: make(chan struct{}), next: http.DefaultTransport}
	close(pt.release)
	pt.healthy.Store(true)
	env := newEngEnv(t, engOpts{issuer: func(ic *IssuerConfig) {
		ic.Introspection.Transport = pt
		ic.BreakerFailures, ic.BreakerOpenFor = 1, 5*time.Second
	}})
	const tok = "opaque-probe"
	env.iss.setAnswer(tok, env.active(nil))
	env.iss.setFault(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusBadGateway) })
	if d := env.check("DELETE", "/f", tok); d.Status != http.StatusServiceUnavailable {
		t.Fatalf("fault: %+v, want 503", d)
	}
	env.clock.Advance(5 * time.Second)
	pt.healthy.Store(false)
	if d := env.check("DELETE", "/f", tok); d.Status != http.StatusServiceUnavailable || env.issuerRequests("error") != 2 {
		t.Fatalf("half-open probe that panics: %+v, errors %v", d, env.issuerRequests("error"))
	}
	pt.healthy.Store(true)
	env.iss.setFault(nil)
	env.clock.Advance(5 * time.Second)
	if d := env.check("DELETE", "/f", tok); !d.Allow {
		t.Fatalf("next probe against a healthy issuer: %+v, want allow (breaker stuck half-open?)", d)
	}
}
