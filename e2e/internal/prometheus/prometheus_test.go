package prometheus

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func need(t *testing.T) {
	t.Helper()
	if _, err := Binary(); err != nil {
		if errors.Is(err, ErrMissing) && os.Getenv("LEASEGATE_E2E_REQUIRE") == "" {
			t.Skipf("skipping: %v", err)
		}
		t.Fatal(err)
	}
}

// TestScrapeQueryAlert: a real Prometheus scrapes a test exporter every
// second, answers an instant query with the exported value, and fires an
// alert from a rule file once its for: has passed.
func TestScrapeQueryAlert(t *testing.T) {
	need(t)
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "harness_test_value", Help: "test"}, []string{"kind"})
	reg.MustRegister(g)
	g.WithLabelValues("a").Set(42)
	exp := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer exp.Close()

	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(`groups:
  - name: harness
    rules:
      - alert: HarnessValueHigh
        expr: harness_test_value > 40
        for: 2s
        labels: {severity: warning}
        annotations: {summary: "value {{ $value }}"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{
		Dir:       dir,
		Targets:   []Target{{Job: "harness", Addrs: []string{strings.TrimPrefix(exp.URL, "http://")}}},
		RuleFiles: []string{rules},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	}()

	var got []Sample
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got, err = s.Query(ctx, `harness_test_value{job="harness"}`); err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 {
			break
		}
	}
	if len(got) != 1 || got[0].Value != 42 || got[0].Metric["kind"] != "a" {
		t.Fatalf("query: %+v, want one sample kind=a value 42", got)
	}
	if sc, err := s.Query(ctx, `scalar(harness_test_value) * 2`); err != nil || len(sc) != 1 || sc[0].Value != 84 {
		t.Fatalf("scalar query: %+v, %v; want 84", sc, err)
	}
	if _, err := s.Query(ctx, `sum(`); err == nil {
		t.Fatal("a malformed query was answered")
	}
	ts, err := s.Targets(ctx)
	if err != nil || len(ts) != 1 || ts[0].Health != "up" {
		t.Fatalf("targets: %+v, %v; want one up", ts, err)
	}

	var firing *Alert
	for deadline := time.Now().Add(20 * time.Second); firing == nil && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		as, err := s.Alerts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, a := range as {
			if a.Labels["alertname"] == "HarnessValueHigh" && a.State == "firing" {
				firing = &as[i]
			}
		}
	}
	if firing == nil {
		t.Fatalf("HarnessValueHigh never fired; log:\n%s", s.Log())
	}
	if firing.Annotations["summary"] != "value 42" || firing.Labels["severity"] != "warning" {
		t.Fatalf("alert %+v", *firing)
	}
}
