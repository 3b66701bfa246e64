package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/leasegate/leasegate/e2e/internal/hydra"
	"github.com/leasegate/leasegate/e2e/internal/leasegate"
)

// The demo's tier windows: short enough that the whole script runs in
// well under a minute, long enough to watch.
const (
	readWindow  = 10 * time.Second
	writeWindow = 3 * time.Second
	audience    = "https://storage.example.org"
	realm       = "leasegate-demo"
)

// demo is the running scenario.
type demo struct {
	out       *table
	h         *hydra.Server
	proxy     *hydra.CountingProxy
	leasegate *leasegate.Process
	client    *leasegate.Client
	base      int64 // introspections before the script (leasegate's readiness probe)
	step      int
	checks    int // expectations verified
}

// want is what one step must produce. calls is how many introspections the
// step makes at Hydra; lease "" means any.
type want struct {
	status int
	tier   string
	lease  string
	calls  int64
}

func run(ctx context.Context, o options) (err error) {
	began := time.Now()
	say := func(format string, a ...any) { fmt.Fprintf(o.out, format+"\n", a...) }
	say("leasegate demo: leases, revocation and the revocation bound against a real ORY Hydra,")
	say("then a grid job on a real storage element (XRootD behind nginx) with davix")
	say("")

	tmp, err := os.MkdirTemp("", "leasegate-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	lgBin := o.leasegate
	if lgBin == "" {
		say("building leasegate from this checkout… (or pass -leasegate PATH)")
		if lgBin, err = leasegate.Binary(ctx, tmp); err != nil {
			return err
		}
	} else if _, err := os.Stat(lgBin); err != nil {
		return fmt.Errorf("leasegate binary %s: %w (run `make build`)", lgBin, err)
	}
	if lgBin, err = filepath.Abs(lgBin); err != nil {
		return err
	}
	hBin := o.hydra
	if hBin == "" {
		if hBin, err = hydra.Binary(); err != nil {
			return fmt.Errorf("%w\n  build it with `make hydra` (bash e2e/build-hydra.sh)", err)
		}
	}

	say("starting ORY Hydra (in-memory database, opaque access tokens)…")
	h, err := hydra.Start(ctx, hydra.Options{Binary: hBin})
	if err != nil {
		return err
	}
	defer func() {
		say("stopping Hydra…")
		if serr := h.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	say("  Hydra public %s  admin %s  (iss %q)", h.PublicURL(), h.AdminURL(), h.Issuer())
	proxy, err := hydra.NewCountingProxy(h.AdminURL())
	if err != nil {
		return err
	}
	defer proxy.Close()

	say("registering an OAuth 2.0 client and obtaining tokens A, B, C (client_credentials)…")
	client, err := h.CreateClient(ctx, hydra.ClientOptions{Name: "leasegate-demo", Scopes: []string{"read", "write"}, Audience: []string{audience}})
	if err != nil {
		return err
	}
	tokens := map[string]string{}
	for _, name := range []string{"A", "B", "C"} {
		if tokens[name], err = h.Token(ctx, client, []string{"read", "write"}, []string{audience}); err != nil {
			return err
		}
	}

	say("starting leasegate (read window %v, write window %v, critical window 0)…", readWindow, writeWindow)
	cfg := leasegate.Config{
		Realm: realm,
		Issuers: []leasegate.Issuer{{
			Name:             "hydra",
			Issuer:           h.Issuer(),
			Mode:             "introspection",
			DefaultForOpaque: true,
			Introspection: &leasegate.Introspection{
				Endpoint: proxy.URL() + hydra.IntrospectPath, // counted on its way to Hydra's admin port
				Auth:     "none",
				Timeout:  leasegate.Duration(2 * time.Second),
			},
			Audiences: []string{audience},
		}},
		Tiers:       leasegate.StandardTiers(readWindow, writeWindow, 0, 30*time.Second),
		DefaultTier: "critical",
		Routes:      []leasegate.Route{{Prefix: "/admin/", Tier: "critical"}},
		Lease:       leasegate.Lease{Max: leasegate.Duration(time.Minute)},
		Log:         leasegate.Log{Level: "info"},
		Server:      leasegate.Server{StartGrace: leasegate.Duration(10 * time.Second)},
	}
	p, err := leasegate.Start(ctx, leasegate.Options{Binary: lgBin, Config: cfg, Dir: tmp, Log: o.log})
	if err != nil {
		return err
	}
	defer func() {
		say("stopping leasegate (SIGTERM, drain)…")
		if serr := p.Stop(); serr != nil && err == nil {
			err = serr
		}
		if err != nil && ctx.Err() == nil && o.log == nil {
			fmt.Fprintf(os.Stderr, "--- leasegate log (tail) ---\n%s\n", tail(p.Logs(), 3000))
		}
	}()
	c, err := leasegate.Dial(p.GRPCAddr())
	if err != nil {
		return err
	}
	defer c.Close()
	say("  leasegate ext_authz gRPC %s  metrics %s  admin %s", p.GRPCAddr(), p.MetricsURL(), p.AdminURL())
	bound, err := p.RevocationBound(ctx)
	if err != nil {
		return err
	}
	say("  revocation bound (GET /config): %v; %v with stale_if_error; admin revoke: %s", bound.Window, bound.WithStaleIfError, bound.AdminRevoke)
	if bound.Window != readWindow {
		return fmt.Errorf("GET /config reports a revocation bound of %v, want the read window %v", bound.Window, readWindow)
	}

	d := &demo{out: newTable(o.out), h: h, proxy: proxy, leasegate: p, client: c, base: proxy.Count(hydra.IntrospectPath)}
	if err := d.script(ctx, tokens, client, bound); err != nil {
		return err
	}

	if err := d.summary(ctx, bound); err != nil {
		return err
	}
	n, err := grid(ctx, o, d.out, h, proxy, lgBin, tmp)
	if err != nil {
		return fmt.Errorf("grid storage part: %w", err)
	}
	d.checks += n
	say("all %d expectations held; the script took %v", d.checks, time.Since(began).Round(100*time.Millisecond))
	if o.keep {
		say("")
		say("-keep: Hydra and leasegate keep running (config %s); try  curl %s/metrics  — Ctrl-C to stop", p.ConfigPath(), p.MetricsURL())
		<-ctx.Done()
	}
	return nil
}

// script is the scripted walk; each step checks its expectation.
func (d *demo) script(ctx context.Context, tok map[string]string, client hydra.Client, bound leasegate.Bound) error {
	A, B, C := tok["A"], tok["B"], tok["C"]
	d.out.section("1. Leases: each tier reuses a validation for its window")
	d.out.header()
	steps := []struct {
		r    leasegate.Request
		w    want
		note string
	}{
		{leasegate.Request{Method: "GET", Path: "/data/run42/events.root", Token: A}, want{200, "read", "miss", 1}, "first use: Hydra asked, lease stored"},
		{leasegate.Request{Method: "GET", Path: "/data/run42/events.root", Token: A}, want{200, "read", "hit", 0}, "read window open: no issuer call"},
		{leasegate.Request{Method: "HEAD", Path: "/data/run42/", Token: A, HeaderMap: true}, want{200, "read", "hit", 0}, "same lease, any read method"},
		{leasegate.Request{Method: "PUT", Path: "/data/run42/new.root", Token: A}, want{200, "write", "hit", 0}, "write window (3s) still open"},
		{leasegate.Request{Method: "DELETE", Path: "/data/run42/old.root", Token: A}, want{200, "critical", "miss", 1}, "window 0: always asks Hydra"},
		{leasegate.Request{Method: "DELETE", Path: "/data/run42/old2.root", Token: A}, want{200, "critical", "miss", 1}, "…every time"},
		{leasegate.Request{Method: "POST", Path: "/admin/reindex", Token: A}, want{200, "critical", "miss", 1}, "route /admin/ is critical"},
		{leasegate.Request{Method: "GET", Path: "/data/run42/events.root"}, want{401, "read", "none", 0}, "no token: Bearer challenge"},
	}
	for _, s := range steps {
		if _, err := d.do(ctx, s.r, "A", s.w, s.note); err != nil {
			return err
		}
	}
	d.out.note("waiting %v for the write window to close…", writeWindow)
	if err := sleep(ctx, writeWindow+200*time.Millisecond); err != nil {
		return err
	}
	if _, err := d.do(ctx, leasegate.Request{Method: "PUT", Path: "/data/run42/new.root", Token: A}, "A", want{200, "write", "miss", 1}, "write window over: re-validated"); err != nil {
		return err
	}
	if _, err := d.do(ctx, leasegate.Request{Method: "GET", Path: "/data/run42/events.root", Token: A}, "A", want{200, "read", "hit", 0}, "fresh validation restarts every window"); err != nil {
		return err
	}

	d.out.section("2. Revocation at Hydra: reads pass until the read window closes, DELETE is refused at once")
	d.out.header()
	for _, name := range []string{"B", "C"} {
		if _, err := d.do(ctx, leasegate.Request{Method: "GET", Path: "/data/run43/hits.root", Token: tok[name]}, name, want{200, "read", "miss", 1}, "lease stored"); err != nil {
			return err
		}
	}
	validatedB := time.Now() // B's lease was validated just before this
	for _, name := range []string{"B", "C"} {
		if err := d.h.Revoke(ctx, client, tok[name]); err != nil {
			return err
		}
	}
	revoked := time.Now()
	d.out.note("revoked tokens B and C at Hydra (POST %s)", hydra.RevokePath)
	if _, err := d.do(ctx, leasegate.Request{Method: "GET", Path: "/data/run43/hits.root", Token: B}, "B", want{200, "read", "hit", 0}, "revoked, but B's read lease is open"); err != nil {
		return err
	}
	if _, err := d.do(ctx, leasegate.Request{Method: "DELETE", Path: "/data/run43/hits.root", Token: C}, "C", want{401, "critical", "miss", 1}, "DELETE asks Hydra: refused at once"); err != nil {
		return err
	}
	if _, err := d.do(ctx, leasegate.Request{Method: "GET", Path: "/data/run43/hits.root", Token: C}, "C", want{401, "read", "negative", 0}, "the refusal ended C's lease in every tier"); err != nil {
		return err
	}
	d.out.note("reading with B until its read window (%v from validation) closes…", readWindow)
	lastShown := time.Now()
	for {
		if time.Since(validatedB) > readWindow+3*time.Second {
			return fmt.Errorf("revoked token B still allowed %v after its validation; read window is %v", time.Since(validatedB).Round(time.Millisecond), readWindow)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
		r := leasegate.Request{Method: "GET", Path: "/data/run43/hits.root", Token: B}
		before := d.calls()
		res, err := d.client.Check(ctx, r)
		if err != nil {
			return err
		}
		if res.Allowed() {
			if res.Lease() != "hit" || d.calls() != before {
				return fmt.Errorf("revoked token B allowed with lease %q and %d issuer calls; want a lease hit", res.Lease(), d.calls()-before)
			}
			if time.Since(lastShown) >= 2*time.Second {
				d.row(r, "B", res, fmt.Sprintf("%.1fs after revocation: still a hit", time.Since(revoked).Seconds()))
				lastShown = time.Now()
			}
			continue
		}
		lag := time.Since(revoked)
		if _, err := d.verify(r, "B", res, before, want{401, "read", "miss", 1},
			fmt.Sprintf("window closed: Hydra says inactive (%.1fs after revocation)", lag.Seconds())); err != nil {
			return err
		}
		if lag > bound.Window+time.Second {
			return fmt.Errorf("revoked token B refused %v after revocation; the reported bound is %v", lag.Round(time.Millisecond), bound.Window)
		}
		break
	}

	d.out.section("3. Admin revoke: POST /revoke evicts a lease at once")
	d.out.header()
	if _, err := d.do(ctx, leasegate.Request{Method: "DELETE", Path: "/data/run42/tmp.root", Token: A}, "A", want{200, "critical", "miss", 1}, "fresh validation of A"); err != nil {
		return err
	}
	if _, err := d.do(ctx, leasegate.Request{Method: "GET", Path: "/data/run42/events.root", Token: A}, "A", want{200, "read", "hit", 0}, "read lease open"); err != nil {
		return err
	}
	found, err := d.leasegate.AdminRevoke(ctx, A, "")
	if err != nil {
		return err
	}
	if !found {
		return errors.New("POST /revoke found no lease for token A")
	}
	d.out.note(`POST %s/revoke {"token": "<A>"} → lease evicted`, d.leasegate.AdminURL())
	_, err = d.do(ctx, leasegate.Request{Method: "GET", Path: "/data/run42/events.root", Token: A}, "A", want{200, "read", "miss", 1}, "next read goes to Hydra (A is still active)")
	return err
}

// do sends one request, prints its row and checks it.
func (d *demo) do(ctx context.Context, r leasegate.Request, label string, w want, note string) (leasegate.Result, error) {
	before := d.calls()
	res, err := d.client.Check(ctx, r)
	if err != nil {
		return res, err
	}
	return d.verify(r, label, res, before, w, note)
}

func (d *demo) verify(r leasegate.Request, label string, res leasegate.Result, before int64, w want, note string) (leasegate.Result, error) {
	d.row(r, label, res, note)
	var bad []string
	if res.HTTPStatus != w.status {
		bad = append(bad, fmt.Sprintf("HTTP %d, want %d", res.HTTPStatus, w.status))
	}
	if w.tier != "" && res.Tier() != w.tier {
		bad = append(bad, fmt.Sprintf("tier %q, want %q", res.Tier(), w.tier))
	}
	if w.lease != "" && res.Lease() != w.lease {
		bad = append(bad, fmt.Sprintf("lease %q, want %q", res.Lease(), w.lease))
	}
	if got := d.calls() - before; got != w.calls {
		bad = append(bad, fmt.Sprintf("%d issuer call(s), want %d", got, w.calls))
	}
	d.checks++
	if len(bad) > 0 {
		return res, fmt.Errorf("step %d (%s %s, token %s): %s", d.step, r.Method, r.Path, label, strings.Join(bad, "; "))
	}
	return res, nil
}

func (d *demo) row(r leasegate.Request, label string, res leasegate.Result, note string) {
	d.step++
	decision := fmt.Sprintf("%d allow", res.HTTPStatus)
	if !res.Allowed() {
		decision = fmt.Sprintf("%d %s", res.HTTPStatus, res.Metadata["reason"])
	}
	if label == "" || r.Token == "" {
		label = "-"
	}
	d.out.row(d.step, r.Method+" "+r.Path, label, res.Tier(), res.Lease(), decision, d.calls(), res.Latency, note)
}

// calls is how many introspections reached Hydra during the script.
func (d *demo) calls() int64 { return d.proxy.Count(hydra.IntrospectPath) - d.base }

// summary prints the metrics leasegate kept and where to find them.
func (d *demo) summary(ctx context.Context, bound leasegate.Bound) error {
	m, err := d.leasegate.Metrics(ctx)
	if err != nil {
		return err
	}
	d.out.section("4. What leasegate reports")
	w := d.out.w
	fmt.Fprintf(w, "  leasegate_decisions_total (tier / decision / lease; the read hits include the quiet polling of step 2):\n")
	type key struct{ tier, decision, lease string }
	counts := map[key]float64{}
	for _, s := range m["leasegate_decisions_total"] {
		if s.Value > 0 {
			counts[key{s.Labels["tier"], s.Labels["decision"], s.Labels["lease"]}] += s.Value
		}
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.tier != b.tier {
			return a.tier > b.tier // write, read, critical
		}
		if a.decision != b.decision {
			return a.decision < b.decision
		}
		return a.lease < b.lease
	})
	for _, k := range keys {
		fmt.Fprintf(w, "    %-9s %-12s %-9s %4.0f\n", k.tier, k.decision, k.lease, counts[k])
	}
	fmt.Fprintf(w, "  leasegate_issuer_requests_total{outcome=active}   %4.0f\n", m.Sum("leasegate_issuer_requests_total", map[string]string{"outcome": "active"}))
	fmt.Fprintf(w, "  leasegate_issuer_requests_total{outcome=inactive} %4.0f\n", m.Sum("leasegate_issuer_requests_total", map[string]string{"outcome": "inactive"}))
	fmt.Fprintf(w, "  introspections seen at Hydra during the script     %4d\n", d.calls())
	fmt.Fprintf(w, "\n  metrics:  GET %s/metrics\n", d.leasegate.MetricsURL())
	fmt.Fprintf(w, "  config:   GET %s/config   (revocation_bound: window %v, with stale_if_error %v, admin revoke %s)\n",
		d.leasegate.AdminURL(), bound.Window, bound.WithStaleIfError, bound.AdminRevoke)
	fmt.Fprintf(w, "  revoke:   POST %s/revoke  {\"token\": \"...\"}\n", d.leasegate.AdminURL())

	// The script's own count must match what leasegate says it asked.
	active := m.Sum("leasegate_issuer_requests_total", map[string]string{"outcome": "active"}) +
		m.Sum("leasegate_issuer_requests_total", map[string]string{"outcome": "inactive"})
	if int64(active) != d.calls() {
		return fmt.Errorf("leasegate_issuer_requests_total says %v validations, Hydra saw %d introspections", active, d.calls())
	}
	if code, _, err := d.leasegate.MetricsGet(ctx, "/readyz"); err != nil || code != http.StatusOK {
		return fmt.Errorf("GET /readyz: %d %v", code, err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
