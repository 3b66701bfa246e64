package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/leasegate/leasegate/e2e/internal/leasegate"
	"github.com/leasegate/leasegate/e2e/internal/prometheus"
)

// The operator kit under test (issue 14), as operators install it.
const (
	dashboardFile = "../deploy/grafana/leasegate.json"
	alertsFile    = "../deploy/prometheus/alerts.yaml"
	promJob       = "leasegate"
)

// panelQuery is one query of one dashboard panel.
type panelQuery struct {
	Panel, Ref, Expr string
}

func (q panelQuery) String() string { return q.Panel + "/" + q.Ref }

// dashboardQueries reads every panel query of the shipped dashboard.
func dashboardQueries(t *testing.T) []panelQuery {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	}
	var d struct {
		Panels []struct {
			panel
			Panels []panel `json:"panels"` // a collapsed row's
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var out []panelQuery
	add := func(p panel) {
		for _, tg := range p.Targets {
			out = append(out, panelQuery{p.Title, tg.RefID, tg.Expr})
		}
	}
	for _, p := range d.Panels {
		add(p.panel)
		for _, np := range p.Panels {
			add(np)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no queries", dashboardFile)
	}
	return out
}

var (
	grafanaIntervalVar = regexp.MustCompile(`\$\{?__\w+\}?`)
	minutesRange       = regexp.MustCompile(`\[(\d+)m\]`)
)

// expandQuery fills in the dashboard's variables as Grafana would with
// job and every instance chosen, and the rate interval set to window.
func expandQuery(expr string, window time.Duration) string {
	expr = grafanaIntervalVar.ReplaceAllString(expr, fmt.Sprintf("%ds", int(window.Seconds())))
	return strings.NewReplacer(`"$job"`, `"`+promJob+`"`, `"$instance"`, `".*"`).Replace(expr)
}

// quickRules derives a test copy of the shipped alert rules: every for:
// becomes 2s and every [Nm] range selector N×15s, a quarter of its
// length (so [2m] is [30s]); offsets and thresholds are unchanged. The
// rules keep their shape and proportions, on a clock a test can wait for.
func quickRules(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	fors, ranges := 0, 0
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				switch k.Value {
				case "for":
					v.Value = "2s"
					fors++
				case "expr":
					v.Value = minutesRange.ReplaceAllStringFunc(v.Value, func(m string) string {
						ranges++
						n, _ := strconv.Atoi(minutesRange.FindStringSubmatch(m)[1])
						return fmt.Sprintf("[%ds]", n*15)
					})
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	if fors == 0 || ranges == 0 {
		t.Fatalf("%s: rewrote %d for: and %d ranges; the rule file's shape changed", alertsFile, fors, ranges)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "alerts.yaml")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// metricsAddr is where replica p serves /metrics: listen.metrics when
// its "listening" line names one, else the admin listener.
func metricsAddr(t *testing.T, p *leasegate.Process) string {
	t.Helper()
	e, err := p.WaitLog(testCtx(t, 5*time.Second), func(e leasegate.LogEntry) bool { return e.Msg == "listening" })
	if err != nil {
		t.Fatal(err)
	}
	var addrs map[string]string
	if err := json.Unmarshal(e.Raw, &addrs); err != nil {
		t.Fatal(err)
	}
	if a := addrs["metrics"]; a != "" {
		return a
	}
	return p.Addrs().Admin
}

// observed is one Prometheus with the rules, scraping a fleet.
type observed struct {
	*fleet
	prom    *prometheus.Server
	targets []string // replica i's scrape address, the instance label
}

// TestDashboardAndAlertsOnPrometheus runs the shipped dashboard and alert
// rules (deploy/) on a real Prometheus scraping two leasegate replicas
// (fleet mode, real Hydra and Redis) every second: after a scripted
// scenario every panel's query returns data, and in fault runs the
// issuer-down, breaker and store-down alerts fire.
func TestDashboardAndAlertsOnPrometheus(t *testing.T) {
	if _, err := prometheus.Binary(); err != nil {
		missing(t, "prometheus", err)
	}
	redisAvailable(t)
	bin := leasegateBin(t)
	ctx := testCtx(t, 4*time.Minute)
	s := newIssuerSide(t, ctx, false)
	f := startFleet(t, ctx, s, bin, fleetOptions{
		Replicas: 2,
		Proxied:  true, // replica 0's link to Redis can be cut
		Tiers:    leasegate.StandardTiers(2*time.Second, time.Second, 0, 5*time.Minute),
		Timeout:  time.Second,
	})
	o := &observed{fleet: f}
	for _, p := range f.replicas {
		o.targets = append(o.targets, metricsAddr(t, p))
	}
	dir := t.TempDir()
	var err error
	o.prom, err = prometheus.Start(ctx, prometheus.Options{
		Dir:       dir,
		Targets:   []prometheus.Target{{Job: promJob, Addrs: o.targets}},
		RuleFiles: []string{quickRules(t, dir)},
		Interval:  time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := o.prom.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("prometheus log tail:\n%s", tailString(o.prom.Log(), 4096))
		}
	})
	o.waitTargetsUp(t)

	start := time.Now()
	// Two rounds, each scraped before the next: a counter child leasegate
	// creates on its first increment enters Prometheus with that count,
	// which rate() cannot see; the second round's increments it can.
	for round := range 2 {
		o.scenario(t, round)
		o.waitScraped(t)
	}
	window := time.Since(start) + 5*time.Second
	o.logCounted(t, time.Since(start))
	o.checkPanels(t, window)
	o.checkAlertsBeforeFaults(t)
	o.issuerDown(t)
	o.storeDown(t)
}

func (o *observed) waitTargetsUp(t *testing.T) {
	t.Helper()
	var last []prometheus.TargetHealth
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ts, err := o.prom.Targets(testCtx(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		last = ts
		up := 0
		for _, tg := range ts {
			if tg.Health == "up" {
				up++
			}
		}
		if up == len(o.targets) {
			return
		}
	}
	t.Fatalf("Prometheus never scraped every replica: %+v", last)
}

// waitScraped waits until Prometheus holds every decision the replicas
// have counted: the scenario so far is in its TSDB.
func (o *observed) waitScraped(t *testing.T) {
	t.Helper()
	var direct float64
	for i := range o.replicas {
		direct += o.metricsOf(t, i).Sum("leasegate_decisions_total", nil)
	}
	var got float64
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		r, err := o.prom.Query(testCtx(t, 5*time.Second), `sum(leasegate_decisions_total{job="`+promJob+`"})`)
		if err != nil {
			t.Fatal(err)
		}
		if len(r) == 1 {
			if got = r[0].Value; got == direct {
				return
			}
		}
	}
	t.Fatalf("Prometheus holds %v decisions, the replicas counted %v", got, direct)
}

func garbageToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "lg-e2e-garbage-" + hex.EncodeToString(b)
}

// scenario drives one round of the traffic the dashboard shows: reads
// that hit (locally and through the shared store), writes, deletes, an
// unknown token (negative lease), requests without or with a malformed
// token, coalesced misses, an admin revoke reaching the other replica,
// stale serving while the issuer hangs, and an applied and a refused
// reload.
func (o *observed) scenario(t *testing.T, round int) {
	t.Helper()
	toks := o.tokens(t, 3)
	read := func(i int, tok string) leasegate.Result {
		return o.on(t, i, leasegate.Request{Method: "GET", Path: "/data/file", Token: tok})
	}
	want := func(what string, res leasegate.Result, allowed bool, lease string) {
		t.Helper()
		if res.Allowed() != allowed || (lease != "" && res.Lease() != lease) {
			t.Errorf("round %d, %s: %v (lease %q), want allowed=%v lease %q", round, what, res, res.Lease(), allowed, lease)
		}
	}

	// The stale step needs a lease older than the read window (2s): take it first.
	want("first read of the stale token", read(0, toks[2]), true, "miss")
	staleFrom := time.Now().Add(2*time.Second + 100*time.Millisecond)

	want("first read", read(0, toks[0]), true, "miss")
	for range 20 {
		want("repeated read", read(0, toks[0]), true, "hit")
	}
	want("read on the other replica", read(1, toks[0]), true, "hit") // from the shared store
	for range 9 {
		want("repeated read on the other replica", read(1, toks[0]), true, "hit")
	}
	for range 3 {
		want("write", o.on(t, 0, leasegate.Request{Method: "PUT", Path: "/data/file", Token: toks[0]}), true, "")
	}
	for range 2 {
		want("delete", o.on(t, 0, leasegate.Request{Method: "DELETE", Path: "/data/file", Token: toks[0]}), true, "miss")
	}
	bad := garbageToken()
	want("unknown token", read(0, bad), false, "miss")
	for range 4 {
		want("unknown token again", read(0, bad), false, "negative")
	}
	want("no token", read(0, ""), false, "none")
	want("malformed authorization", o.on(t, 1, leasegate.Request{Method: "GET", Path: "/data/file",
		Headers: map[string]string{"authorization": "Bearer a b"}}), false, "none")

	o.coalesce(t, toks[1])

	if _, err := o.replicas[0].AdminRevoke(testCtx(t, 10*time.Second), toks[0], ""); err != nil {
		t.Fatalf("round %d: revoke: %v", round, err)
	}
	o.waitApplied(t, 1, float64(round+1))
	want("read after revoke", read(1, toks[0]), true, "miss")

	time.Sleep(time.Until(staleFrom))
	o.gate.SetHang(true)
	for range 2 {
		want("read while the issuer hangs", read(0, toks[2]), true, "stale")
	}
	o.gate.SetHang(false)

	if err := o.replicas[0].Reload(testCtx(t, 10*time.Second), o.cfgs[0]); err != nil {
		t.Fatalf("round %d: reload: %v", round, err)
	}
	if err := o.replicas[1].WriteConfigYAML([]byte("listen: [\n")); err != nil {
		t.Fatal(err)
	}
	if err := o.replicas[1].SignalReload(testCtx(t, 10*time.Second)); !errors.Is(err, leasegate.ErrReloadRefused) {
		t.Fatalf("round %d: a broken configuration file: %v, want refused", round, err)
	}
}

// coalesce sends five concurrent reads of one new token to replica 0
// while the issuer holds the first call: one issuer call, four coalesced.
func (o *observed) coalesce(t *testing.T, tok string) {
	t.Helper()
	release := o.gate.Hold()
	defer release()
	var wg sync.WaitGroup
	res := make([]leasegate.Result, 5)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := o.clients[0].Check(testCtx(t, 10*time.Second), leasegate.Request{Method: "GET", Path: "/data/hot", Token: tok})
			if err != nil {
				t.Errorf("coalesced read: %v", err)
			}
			res[i] = r
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); o.gate.Held() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the other four join the flight
	release()
	wg.Wait()
	for _, r := range res {
		if !r.Allowed() {
			t.Errorf("coalesced read refused: %v", r)
		}
	}
}

// waitApplied waits until replica i has applied n revocations from others.
func (o *observed) waitApplied(t *testing.T, i int, n float64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if o.metricsOf(t, i).Sum("leasegate_fleet_revocations_total", nil) >= n {
			return
		}
	}
	t.Fatalf("replica %d never applied revocation %v", i, n)
}

// zeroIsData are panels whose honest value after the scenario is 0: no
// breaker opened (the issuer hang stayed under its 5 failures) and no
// lease was evicted.
var zeroIsData = map[string]bool{"Breaker state": true, "Lease evictions": true}

// checkPanels runs every dashboard query on Prometheus as Grafana would,
// with the rate interval spanning the scenario, and wants data: a
// sample that is a number, above 0 unless zeroIsData says otherwise.
func (o *observed) checkPanels(t *testing.T, window time.Duration) {
	t.Helper()
	var noData []string
	for _, q := range dashboardQueries(t) {
		expr := expandQuery(q.Expr, window)
		res, err := o.prom.Query(testCtx(t, 10*time.Second), expr)
		if err != nil {
			t.Errorf("panel %s: %v", q, err)
			continue
		}
		var vals []string
		peak := math.Inf(-1)
		for _, s := range res {
			if !math.IsNaN(s.Value) {
				peak = max(peak, s.Value)
			}
			vals = append(vals, fmt.Sprintf("%s=%.4g", labelString(s.Metric), s.Value))
		}
		slices.Sort(vals)
		t.Logf("panel %-40s %s", q, strings.Join(vals, " "))
		switch {
		case len(res) == 0:
			noData = append(noData, q.String())
			t.Errorf("panel %s: no data for %s", q, expr)
		case math.IsInf(peak, -1):
			noData = append(noData, q.String())
			t.Errorf("panel %s: only NaN for %s", q, expr)
		case peak <= 0 && !zeroIsData[q.Panel]:
			t.Errorf("panel %s: %v, want above 0 after the scenario (%s)", q, vals, expr)
		}
	}
	if len(noData) > 0 {
		t.Logf("panels without data: %s", strings.Join(noData, ", "))
	}
}

func labelString(m map[string]string) string {
	var ls []string
	for k, v := range m {
		ls = append(ls, k+":"+v)
	}
	slices.Sort(ls)
	return "{" + strings.Join(ls, ",") + "}"
}

// alerts returns the active alerts named name.
func (o *observed) alerts(t *testing.T, name string) []prometheus.Alert {
	t.Helper()
	as, err := o.prom.Alerts(testCtx(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var out []prometheus.Alert
	for _, a := range as {
		if a.Labels["alertname"] == name {
			out = append(out, a)
		}
	}
	return out
}

// waitFiring polls /api/v1/alerts until name fires for instance (any
// when ""), and returns the alert and how long that took.
func (o *observed) waitFiring(t *testing.T, name, instance string, within time.Duration, load func()) (prometheus.Alert, time.Duration) {
	t.Helper()
	start := time.Now()
	var last []prometheus.Alert
	for deadline := start.Add(within); time.Now().Before(deadline); {
		if load != nil {
			load()
		} else {
			time.Sleep(200 * time.Millisecond)
		}
		last = o.alerts(t, name)
		for _, a := range last {
			if a.State == "firing" && (instance == "" || a.Labels["instance"] == instance) {
				return a, time.Since(start)
			}
		}
	}
	t.Errorf("%s never fired for %q within %v (last: %+v)", name, instance, within, last)
	return prometheus.Alert{}, 0
}

// everFired reports whether the ALERTS series shows name firing during
// the test (alerts whose cause has passed are resolved by now).
func (o *observed) everFired(t *testing.T, name string) bool {
	t.Helper()
	r, err := o.prom.Query(testCtx(t, 5*time.Second), `max_over_time(ALERTS{alertname="`+name+`",alertstate="firing"}[10m])`)
	if err != nil {
		t.Fatal(err)
	}
	return len(r) > 0
}

// checkAlertsBeforeFaults: the scenario's stale allows and refused
// reloads fired their alerts; nothing said the issuer or the store was down.
func (o *observed) checkAlertsBeforeFaults(t *testing.T) {
	t.Helper()
	a, took := o.waitFiring(t, "LeasegateConfigReloadFailed", o.targets[1], 20*time.Second, nil)
	t.Logf("LeasegateConfigReloadFailed firing for %s after %v more: %s", a.Labels["instance"], took.Round(time.Millisecond), a.Annotations["summary"])
	for deadline := time.Now().Add(20 * time.Second); !o.everFired(t, "LeasegateServingStale"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("LeasegateServingStale never fired after the stale allows")
			break
		}
	}
	for _, name := range []string{"LeasegateIssuerUnavailable", "LeasegateBreakerOpen", "LeasegateFleetStoreDown"} {
		r, err := o.prom.Query(testCtx(t, 5*time.Second), `ALERTS{alertname="`+name+`"}`)
		if err != nil {
			t.Fatal(err)
		}
		if len(r) > 0 || o.everFired(t, name) {
			t.Errorf("%s was active before any fault: %+v", name, r)
		}
	}
}

// issuerDown stops Hydra and sends unknown tokens (each a miss that needs
// the issuer) to both replicas until LeasegateIssuerUnavailable fires;
// then the breaker alert.
func (o *observed) issuerDown(t *testing.T) {
	t.Helper()
	if err := o.hydra.Stop(); err != nil {
		t.Fatalf("stop hydra: %v", err)
	}
	load := func() {
		for i := range o.clients {
			res := o.on(t, i, leasegate.Request{Method: "GET", Path: "/data/file", Token: garbageToken()})
			if res.Allowed() || res.HTTPStatus != 503 {
				t.Errorf("replica %d with its issuer down: %v, want 503", i, res)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	a, took := o.waitFiring(t, "LeasegateIssuerUnavailable", "", 60*time.Second, load)
	if a.State == "firing" {
		t.Logf("LeasegateIssuerUnavailable firing %v after Hydra stopped: %v, value %s: %s", took.Round(time.Millisecond), a.Labels, a.Value, a.Annotations["summary"])
		if a.Labels["issuer"] != issuerName || a.Labels["severity"] != "critical" || a.Labels["job"] != promJob || !slices.Contains(o.targets, a.Labels["instance"]) {
			t.Errorf("LeasegateIssuerUnavailable labels %v", a.Labels)
		}
	}
	o.logFigures(t, "issuer down", 15*time.Second)
	b, took := o.waitFiring(t, "LeasegateBreakerOpen", "", 60*time.Second, load)
	if b.State == "firing" {
		t.Logf("LeasegateBreakerOpen firing %v later: %v", took.Round(time.Millisecond), b.Labels)
	}
}

// storeDown black-holes replica 0's link to Redis: LeasegateFleetStoreDown
// fires for replica 0 and not for replica 1.
func (o *observed) storeDown(t *testing.T) {
	t.Helper()
	o.proxy.BlackHole()
	defer o.proxy.Heal()
	a, took := o.waitFiring(t, "LeasegateFleetStoreDown", o.targets[0], 30*time.Second, nil)
	if a.State == "firing" {
		t.Logf("LeasegateFleetStoreDown firing for %s %v after the link was cut", a.Labels["instance"], took.Round(time.Millisecond))
	}
	for _, a := range o.alerts(t, "LeasegateFleetStoreDown") {
		if a.Labels["instance"] != o.targets[0] {
			t.Errorf("LeasegateFleetStoreDown for %s, whose store link is fine", a.Labels["instance"])
		}
	}
}

// logCounted logs the scenario's figures from the replicas' own counters,
// to set beside what the dashboard reads.
func (o *observed) logCounted(t *testing.T, took time.Duration) {
	t.Helper()
	lease := map[string]float64{}
	var calls float64
	for i := range o.replicas {
		m := o.metricsOf(t, i)
		for _, l := range []string{"hit", "negative", "miss", "stale", "none"} {
			lease[l] += m.Sum("leasegate_decisions_total", map[string]string{"lease": l})
		}
		calls += m.Sum("leasegate_issuer_requests_total", nil)
	}
	looked := lease["hit"] + lease["negative"] + lease["miss"] + lease["stale"]
	t.Logf("scenario counted in %v: decisions by lease %v; hit ratio %.4f; %v issuer calls (%.3g/s)",
		took.Round(time.Millisecond), lease, (lease["hit"]+lease["negative"])/looked, calls, calls/took.Seconds())
}

// logFigures logs what the dashboard's headline stats read now.
func (o *observed) logFigures(t *testing.T, when string, window time.Duration) {
	t.Helper()
	for _, q := range dashboardQueries(t) {
		if q.Panel != "Hit ratio" && q.Panel != "Issuer calls/s" && q.Panel != "Decisions/s" {
			continue
		}
		r, err := o.prom.Query(testCtx(t, 5*time.Second), expandQuery(q.Expr, window))
		if err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		for _, s := range r {
			t.Logf("%s: %s = %.4g (rate interval %v)", when, q.Panel, s.Value, window)
		}
	}
}
