package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/leasegate/leasegate/e2e/internal/hydra"
	"github.com/leasegate/leasegate/e2e/internal/leasegate"
	"github.com/leasegate/leasegate/e2e/internal/storage"
)

// gridReadWindow replaces the shipped storage config's 60s read window so
// the revocation can be watched taking effect.
const gridReadWindow = 10 * time.Second

// gridDemo is the storage element part: XRootD behind nginx with the
// shipped examples/storage/nginx configs, a grid job using davix.
type gridDemo struct {
	out   *table
	h     *hydra.Server
	count func() int64 // introspections at Hydra so far
	xrd   *storage.XRootD
	proxy *storage.Proxy
	job   hydra.Client
	home  string
	step  int
}

// examplesDir is the repository's examples/, found from this source file.
func examplesDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot find the examples directory")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "examples"), nil
}

// grid runs section 5: a job reads and writes a storage element through
// leasegate with davix, the issuer's introspection count beside each step.
// It returns how many steps it checked.
func grid(ctx context.Context, o options, out *table, h *hydra.Server, proxy *hydra.CountingProxy, lgBin, tmp string) (int, error) {
	out.section("5. A grid job on a storage element: davix → nginx → leasegate → XRootD (examples/storage/nginx)")
	if err := storage.Ensure(ctx); err != nil {
		return 0, err
	}
	examples, err := examplesDir()
	if err != nil {
		return 0, err
	}
	xrd, err := storage.StartXRootD(ctx, examples)
	if err != nil {
		return 0, err
	}
	defer xrd.Stop()
	cfg, err := storage.LeasegateConfig(storage.LeasegateOptions{
		Kind: "nginx", Examples: examples, Issuer: h.Issuer(),
		Introspection: proxy.URL() + hydra.IntrospectPath, ReadWindow: gridReadWindow,
	})
	if err != nil {
		return 0, err
	}
	dir := filepath.Join(tmp, "storage-leasegate")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	lg, err := leasegate.Start(ctx, leasegate.Options{Binary: lgBin, ConfigYAML: cfg, Dir: dir, Log: o.log})
	if err != nil {
		return 0, err
	}
	defer lg.Stop()
	px, err := storage.StartProxy(ctx, storage.ProxyOptions{Kind: "nginx", Examples: examples, Leasegate: lg.Addrs().HTTP, Upstream: xrd.HTTPAddr})
	if err != nil {
		return 0, err
	}
	defer px.Stop()
	job, err := h.CreateClient(ctx, hydra.ClientOptions{
		Name: "grid-job", Scopes: []string{"storage.read:/atlas", "storage.modify:/atlas/user/alice"},
		Audience: []string{audience}, AccessTokenStrategy: "jwt",
	})
	if err != nil {
		return 0, err
	}
	base := proxy.Count(hydra.IntrospectPath)
	g := &gridDemo{out: out, h: h, count: func() int64 { return proxy.Count(hydra.IntrospectPath) - base }, xrd: xrd, proxy: px, job: job, home: tmp}
	out.note("XRootD %s (XrdHttp %s), nginx %s, leasegate HTTP mode %s; tiers: read %v, write 5s, DELETE 0", xrd.Path("/data"), xrd.HTTPAddr, px.URL, lg.Addrs().HTTP, gridReadWindow)
	out.note("the job's JWT (Hydra): storage.read:/atlas storage.modify:/atlas/user/alice (base_path /data)")
	err = g.script(ctx)
	return g.step, err
}

// gridWant is one step's expectation: exit status and issuer calls.
type gridWant struct {
	ok    bool
	calls int64
}

func (g *gridDemo) script(ctx context.Context) error {
	if err := g.xrd.Put("/data/atlas/run42/events.root", []byte("events of run 42")); err != nil {
		return err
	}
	tok, err := g.h.Token(ctx, g.job, []string{"storage.read:/atlas", "storage.modify:/atlas/user/alice"}, []string{audience})
	if err != nil {
		return err
	}
	c := storage.Client{Token: tok, CertDir: g.proxy.CertDir, Home: g.home}
	url := func(p string) string { return g.proxy.URL + p }
	out := filepath.Join(g.home, "out.root")
	if err := os.WriteFile(out, []byte("histograms"), 0o644); err != nil {
		return err
	}
	g.out.gridHeader()
	steps := []struct {
		name string
		run  func() storage.Result
		want gridWant
		note func() string
	}{
		{"davix-get /data/atlas/run42/events.root", func() storage.Result {
			return c.DavixGet(ctx, url("/data/atlas/run42/events.root"), filepath.Join(g.home, "in.root"))
		},
			gridWant{true, 1}, func() string { return "first use: Hydra asked, lease stored" }},
		{"davix-ls /data/atlas/run42/", func() storage.Result { return c.DavixLs(ctx, url("/data/atlas/run42/")) },
			gridWant{true, 0}, func() string { return "read lease hit" }},
		{"davix-mkdir /data/atlas/user/alice/run42", func() storage.Result { return c.DavixMkdir(ctx, url("/data/atlas/user/alice/run42")) },
			gridWant{true, 0}, func() string { return "write window (5s) open: hit" }},
		{"davix-put out.root → …/alice/run42/out.root", func() storage.Result {
			return c.DavixPut(ctx, out, url("/data/atlas/user/alice/run42/out.root"))
		}, gridWant{true, 0}, func() string { return "on disk: " + g.disk("/data/atlas/user/alice/run42/out.root") }},
		{"davix-put out.root → /data/atlas/run42/out.root", func() storage.Result { return c.DavixPut(ctx, out, url("/data/atlas/run42/out.root")) },
			gridWant{false, 0}, func() string { return "403: no storage.modify there; on disk: " + g.disk("/data/atlas/run42/out.root") }},
		{"davix-get /data/atlasx/secret.root", func() storage.Result {
			return c.DavixGet(ctx, url("/data/atlasx/secret.root"), filepath.Join(g.home, "x.root"))
		},
			gridWant{false, 0}, func() string { return "403: /atlas never covers /atlasx" }},
		{"davix-rm …/alice/run42/out.root", func() storage.Result { return c.DavixRm(ctx, url("/data/atlas/user/alice/run42/out.root")) },
			gridWant{true, 1}, func() string {
				return "a DELETE always asks Hydra; on disk: " + g.disk("/data/atlas/user/alice/run42/out.root")
			}},
		{"davix-put out.root → …/alice/run42/out.root", func() storage.Result {
			return c.DavixPut(ctx, out, url("/data/atlas/user/alice/run42/out.root"))
		}, gridWant{true, 0}, func() string { return "the DELETE's validation restarted every window" }},
		{"davix-rm …/alice/run42/out.root", func() storage.Result { return c.DavixRm(ctx, url("/data/atlas/user/alice/run42/out.root")) },
			gridWant{true, 1}, func() string { return "…every time" }},
	}
	for _, s := range steps {
		if err := g.do(s.name, "job", s.run, s.want, s.note); err != nil {
			return err
		}
	}
	return g.revocation(ctx, c, tok, url)
}

// revocation: the job's token is revoked at Hydra; a DELETE is refused at
// once, reads end when the read window closes.
func (g *gridDemo) revocation(ctx context.Context, c storage.Client, tok string, url func(string) string) error {
	get := func() storage.Result {
		return c.DavixGet(ctx, url("/data/atlas/run42/events.root"), filepath.Join(g.home, "in2.root"))
	}
	if err := g.do("davix-get /data/atlas/run42/events.root", "job", get, gridWant{true, 0}, func() string { return "read lease hit" }); err != nil {
		return err
	}
	// A second token for the read-window part: the first one's DELETE ends
	// its lease at once.
	tok2, err := g.h.Token(ctx, g.job, []string{"storage.read:/atlas"}, []string{audience})
	if err != nil {
		return err
	}
	c2 := storage.Client{Token: tok2, CertDir: g.proxy.CertDir, Home: g.home}
	get2 := func() storage.Result {
		return c2.DavixGet(ctx, url("/data/atlas/run42/events.root"), filepath.Join(g.home, "in3.root"))
	}
	if err := g.do("davix-get /data/atlas/run42/events.root", "reader", get2, gridWant{true, 1}, func() string { return "a second token: lease stored" }); err != nil {
		return err
	}
	validated := time.Now()
	for _, t := range []string{tok, tok2} {
		if err := g.h.Revoke(ctx, g.job, t); err != nil {
			return err
		}
	}
	revoked := time.Now()
	g.out.note("revoked both tokens at Hydra (POST %s)", hydra.RevokePath)
	if err := g.do("davix-get /data/atlas/run42/events.root", "job", get, gridWant{true, 0}, func() string { return "revoked, but the read lease is open" }); err != nil {
		return err
	}
	if err := g.do("davix-rm /data/atlas/run42/events.root", "job", func() storage.Result { return c.DavixRm(ctx, url("/data/atlas/run42/events.root")) },
		gridWant{false, 1}, func() string {
			return "DELETE asks Hydra: 401 at once; on disk: " + g.disk("/data/atlas/run42/events.root")
		}); err != nil {
		return err
	}
	if err := g.do("davix-get /data/atlas/run42/events.root", "job", get, gridWant{false, 0}, func() string { return "the refusal ended the job token's lease" }); err != nil {
		return err
	}
	g.out.note("the reader token keeps reading until its read window (%v from validation) closes…", gridReadWindow)
	for {
		if time.Since(validated) > gridReadWindow+5*time.Second {
			return fmt.Errorf("revoked reader token still allowed %v after its validation; read window %v", time.Since(validated).Round(time.Millisecond), gridReadWindow)
		}
		before := g.count()
		res := get2()
		if res.OK() {
			if g.count() != before {
				return errors.New("revoked reader token allowed after an issuer call")
			}
			if err := sleep(ctx, time.Second); err != nil {
				return err
			}
			continue
		}
		lag := time.Since(revoked)
		g.row("davix-get /data/atlas/run42/events.root", "reader", res, g.count()-before,
			fmt.Sprintf("window closed: Hydra says inactive, %.1fs after the revocation", lag.Seconds()))
		if g.count()-before != 1 {
			return fmt.Errorf("the refused read made %d issuer calls, want 1", g.count()-before)
		}
		if lag > gridReadWindow+2*time.Second {
			return fmt.Errorf("revocation took effect %v after it, read window %v", lag.Round(time.Millisecond), gridReadWindow)
		}
		return nil
	}
}

func (g *gridDemo) do(name, token string, run func() storage.Result, w gridWant, note func() string) error {
	before := g.count()
	res := run()
	calls := g.count() - before
	g.row(name, token, res, calls, note())
	if res.OK() != w.ok || calls != w.calls {
		return fmt.Errorf("grid step %d (%s): exit %d with %d issuer call(s), want success=%v with %d\n%s", g.step, name, res.Code, calls, w.ok, w.calls, tail(res.Output, 2000))
	}
	return nil
}

func (g *gridDemo) row(name, token string, res storage.Result, calls int64, note string) {
	g.step++
	result := "ok"
	if !res.OK() {
		result = "refused"
	}
	if n := len(res.Statuses); n > 0 {
		result += fmt.Sprintf(" (%d)", res.Statuses[n-1])
	}
	g.out.gridRow(g.step, name, token, result, calls, g.count(), note)
}

// disk says what XRootD holds at a request path.
func (g *gridDemo) disk(p string) string {
	b, ok, err := g.xrd.Read(p)
	switch {
	case err != nil:
		return err.Error()
	case !ok:
		return "absent"
	}
	return fmt.Sprintf("%q", strings.TrimSpace(string(b)))
}
