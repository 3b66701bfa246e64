package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/leasegate/leasegate/e2e/internal/leasegate"
)

// specSeries are SPEC §6's series outside fleet mode.
var specSeries = []string{
	"leasegate_decisions_total", "leasegate_issuer_requests_total",
	"leasegate_issuer_request_duration_seconds_count", "leasegate_check_duration_seconds_count",
	"leasegate_leases", "leasegate_coalesced_total", "leasegate_build_info",
	"leasegate_lease_evictions_total", "leasegate_negative_leases", "leasegate_breaker_open",
	"leasegate_jwks_refreshes_total", "leasegate_config_reloads_total", "leasegate_revocation_bound_seconds",
}

// TestMetricsListener: the built binary serves its probes and every SPEC
// §6 series on listen.metrics without a secret, and nothing else there;
// leasegate_build_info says what -version says; a rotation of Hydra's
// keys shows as a JWKS refresh and the breaker of a reachable issuer is
// closed.
func TestMetricsListener(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{JWT: true, Mode: "jwt+introspection"})
	ctx := testCtx(t, time.Minute)
	tok := s.token(t)
	s.expect(t, leasegate.Request{Method: "GET", Path: "/data/m", Token: tok}, expectation{allowed: true, lease: "miss", calls: 1})
	s.check(t, leasegate.Request{Method: "GET", Path: "/data/m", Token: alterToken(tok)})

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/config": 404, "/revoke": 404} {
		code, _, err := s.leasegate.MetricsGet(ctx, path)
		if err != nil || code != want {
			t.Errorf("metrics listener GET %s = %d %v, want %d", path, code, err, want)
		}
	}
	if code, _, err := s.leasegate.AdminGet(ctx, "/metrics"); err != nil || code != http.StatusOK {
		t.Errorf("admin GET /metrics = %d %v, want 200 (SPEC §6 keeps it there too)", code, err)
	}

	m := s.metrics(t)
	for _, name := range specSeries {
		if len(m[name]) == 0 {
			t.Errorf("no %s on the metrics listener", name)
		}
	}
	out, _, _, err := leasegate.RunCLI(ctx, leasegateBin(t), "-version")
	if err != nil {
		t.Fatal(err)
	}
	bi := m["leasegate_build_info"]
	if len(bi) != 1 || bi[0].Value != 1 {
		t.Fatalf("leasegate_build_info = %v", bi)
	}
	l := bi[0].Labels
	if want := "leasegate " + l["version"] + " (revision " + l["revision"] + ", " + l["goversion"] + ")"; strings.TrimSpace(out) != want {
		t.Errorf("-version printed %q, build_info says %q", strings.TrimSpace(out), want)
	}
	if got := m.Sum("leasegate_jwks_refreshes_total", map[string]string{"issuer": issuerName, "outcome": "ok"}); got < 1 {
		t.Errorf("jwks_refreshes_total{outcome=ok} = %v, want the start's refresh at least", got)
	}
	if got := m.Sum("leasegate_breaker_open", map[string]string{"issuer": issuerName}); got != 0 || len(m["leasegate_breaker_open"]) != 1 {
		t.Errorf("breaker_open = %v (%v), want one issuer at 0", got, m["leasegate_breaker_open"])
	}
}
