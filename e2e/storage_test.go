package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasegate/leasegate/e2e/internal/hydra"
	"github.com/leasegate/leasegate/e2e/internal/leasegate"
	"github.com/leasegate/leasegate/e2e/internal/storage"
)

// storageReadWindow replaces the shipped read tier's 60s, so the
// revocation part can watch the window close; the write tier gets the same
// instead of its 5s, so a slow grid client (gfal's are Python processes)
// on a loaded machine still finds the read token's lease for its PUT.
const storageReadWindow = 10 * time.Second

// WLCG scopes the grid client may ask Hydra for, relative to leasegate's
// base_path /data (XRootD's export).
const (
	scopeRead   = "storage.read:/atlas"
	scopeModify = "storage.modify:/atlas"
	scopeCreate = "storage.create:/atlas"
)

// conditionalPrefix is the area the test marks conditional_create: true
// (the shipped config has none: XRootD ignores If-None-Match).
const conditionalPrefix = "/data/atlas/cc/"

func examplesDir(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "examples")
}

// TestStorageGateway moves real files through nginx and Caddy, each run
// from its shipped examples/storage config with leasegate's beside it,
// into a real XRootD, with davix and gfal2 and Hydra-minted WLCG JWTs.
// Every client operation is allowed or refused as SPEC §5 says, checked on
// XRootD's disk afterwards, and costs the issuer calls the tiers predict.
func TestStorageGateway(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 12*time.Minute)
	if err := storage.Ensure(ctx); err != nil {
		missing(t, "XRootD, nginx, Caddy, davix and gfal2", err)
	}
	bin := leasegateBin(t)
	s := newIssuerSide(t, testCtx(t, time.Minute), true)
	grid, err := s.hydra.CreateClient(ctx, hydra.ClientOptions{
		Name:     "grid-job",
		Scopes:   []string{scopeRead, scopeModify, scopeCreate},
		Audience: []string{audStorage},
	})
	if err != nil {
		t.Fatalf("register the grid client: %v", err)
	}
	var table storageTable
	for _, kind := range []string{"nginx", "caddy"} {
		t.Run(kind, func(t *testing.T) {
			g := newStorageGateway(t, s, bin, kind, grid, &table)
			g.scenario(t)
		})
	}
	t.Logf("client operations:\n%s", table.markdown())
	if p := os.Getenv("LEASEGATE_E2E_STORAGE_REPORT"); p != "" {
		if err := os.WriteFile(p, []byte(table.markdown()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// storageGateway is one proxy's stack: XRootD, leasegate, the proxy.
type storageGateway struct {
	s     *stack
	kind  string
	grid  hydra.Client
	xrd   *storage.XRootD
	lg    *leasegate.Process
	proxy *storage.Proxy
	home  string
	table *storageTable
}

func newStorageGateway(t *testing.T, s *stack, bin, kind string, grid hydra.Client, table *storageTable) *storageGateway {
	t.Helper()
	ctx := testCtx(t, 2*time.Minute)
	examples := examplesDir(t)
	g := &storageGateway{s: s, kind: kind, grid: grid, home: t.TempDir(), table: table}
	var err error
	if g.xrd, err = storage.StartXRootD(ctx, examples); err != nil {
		t.Fatalf("start XRootD: %v", err)
	}
	t.Cleanup(func() { _ = g.xrd.Stop() })
	cfg, err := storage.LeasegateConfig(storage.LeasegateOptions{
		Kind: kind, Examples: examples,
		Issuer: s.hydra.Issuer(), Introspection: s.gate.URL() + hydra.IntrospectPath,
		ReadWindow: storageReadWindow, WriteWindow: storageReadWindow, ConditionalPrefix: conditionalPrefix,
	})
	if err != nil {
		t.Fatal(err)
	}
	g.lg = s.startLeasegateOpts(t, ctx, leasegate.Options{Binary: bin, ConfigYAML: cfg, Dir: t.TempDir()})
	if g.proxy, err = storage.StartProxy(ctx, storage.ProxyOptions{
		Kind: kind, Examples: examples, Leasegate: g.lg.Addrs().HTTP, Upstream: g.xrd.HTTPAddr,
	}); err != nil {
		t.Fatalf("start %s: %v", kind, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", kind, g.proxy.Logs())
		}
		_ = g.proxy.Stop()
	})
	return g
}

// token mints a fresh access token with the given scopes, recorded for the
// no-token-in-logs check.
func (g *storageGateway) token(t *testing.T, scopes ...string) string {
	t.Helper()
	tok, err := g.s.hydra.Token(testCtx(t, 10*time.Second), g.grid, scopes, []string{audStorage})
	if err != nil {
		t.Fatalf("hydra token %v: %v", scopes, err)
	}
	g.s.mu.Lock()
	g.s.issued = append(g.s.issued, issuedToken{"storage access token", tok})
	g.s.mu.Unlock()
	return tok
}

func (g *storageGateway) client(tok string) storage.Client {
	return storage.Client{Token: tok, CertDir: g.proxy.CertDir, Home: g.home}
}

func (g *storageGateway) url(path string) string { return g.proxy.URL + path }

// local writes a local file for an upload and returns its path.
func (g *storageGateway) local(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(g.home, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// onDisk is the content of a file on XRootD's disk, "<absent>" when it is
// not there.
func (g *storageGateway) onDisk(t *testing.T, path string) string {
	t.Helper()
	b, ok, err := g.xrd.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return absentFile
	}
	return string(b)
}

const absentFile = "<absent>"

// seed puts a file on XRootD's disk, as data that was there before.
func (g *storageGateway) seed(t *testing.T, path, content string) {
	t.Helper()
	if err := g.xrd.Put(path, []byte(content)); err != nil {
		t.Fatal(err)
	}
}

// opWant is what one client operation must do.
type opWant struct {
	ok    bool   // the client's exit code is 0
	calls int64  // introspections it caused at Hydra
	path  string // a file to check on disk afterwards ("" for none)
	disk  string // its content then (absentFile for none)
}

// op runs one client operation, checks it and records its row.
func (g *storageGateway) op(t *testing.T, token, what, expect string, w opWant, run func() storage.Result) storage.Result {
	t.Helper()
	before := g.s.introspections()
	res := run()
	calls := g.s.introspections() - before
	var bad []string
	if res.OK() != w.ok {
		bad = append(bad, fmt.Sprintf("exit %d, want success=%v", res.Code, w.ok))
	}
	if calls != w.calls {
		bad = append(bad, fmt.Sprintf("%d issuer call(s), want %d", calls, w.calls))
	}
	disk := ""
	if w.path != "" {
		disk = g.onDisk(t, w.path)
		if disk != w.disk {
			bad = append(bad, fmt.Sprintf("disk %s = %q, want %q", w.path, disk, w.disk))
		}
	}
	if !g.xrd.Running() {
		bad = append(bad, "XRootD is not running")
	}
	observed := "allowed"
	if !res.OK() {
		observed = "refused"
	}
	if len(res.Statuses) > 0 {
		observed += fmt.Sprintf(" (HTTP %s)", joinInts(res.Statuses))
	}
	if w.path != "" {
		observed += "; on disk: " + diskSummary(disk)
	}
	g.table.add(storageRow{proxy: g.kind, token: token, op: what, expect: expect, observed: observed, calls: calls, failed: len(bad) > 0})
	if len(bad) > 0 {
		t.Errorf("%s [%s token]: %s\n  %s\n%s", what, token, strings.Join(bad, "; "), res, tailString(res.Output, 3000))
	}
	return res
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}

func diskSummary(content string) string {
	if content == absentFile {
		return "absent"
	}
	return fmt.Sprintf("%q", content)
}

// scenario is the whole client story on one proxy, in order.
func (g *storageGateway) scenario(t *testing.T) {
	ctx := testCtx(t, 8*time.Minute)
	g.seed(t, "/data/atlas/run1/input.root", "input v1")
	g.seed(t, "/data/atlasx/secret.root", "not for atlas")
	g.seed(t, "/data/atlas/user/existing.root", "existing v1")
	g.seed(t, conditionalPrefix+"existing.root", "cc existing v1")

	reader := func() storage.Client { return g.client(g.token(t, scopeRead)) }
	job := func() storage.Client { return g.client(g.token(t, scopeRead, scopeModify)) }
	creator := func() storage.Client { return g.client(g.token(t, scopeCreate)) }
	got := func(name string) string {
		b, err := os.ReadFile(filepath.Join(g.home, name))
		if err != nil {
			return absentFile
		}
		return string(b)
	}

	// Reading: a read token downloads, lists and stats; one issuer call per
	// fresh token, every further read a lease hit.
	r := reader()
	g.op(t, "read", "davix-get /data/atlas/run1/input.root", "allowed, bytes as on disk", opWant{ok: true, calls: 1}, func() storage.Result {
		return r.DavixGet(ctx, g.url("/data/atlas/run1/input.root"), filepath.Join(g.home, "in.root"))
	})
	if b := got("in.root"); b != "input v1" {
		t.Errorf("davix-get wrote %q, want the file's bytes", b)
	}
	res := g.op(t, "read", "davix-ls /data/atlas/run1/", "allowed (PROPFIND Depth: 1), lease hit", opWant{ok: true, calls: 0}, func() storage.Result {
		return r.DavixLs(ctx, g.url("/data/atlas/run1/"))
	})
	if !strings.Contains(res.Output, "input.root") {
		t.Errorf("davix-ls did not list input.root:\n%s", res.Output)
	}
	res = g.op(t, "read", "gfal-ls /data/atlas/run1", "allowed, lease hit", opWant{ok: true, calls: 0}, func() storage.Result {
		return r.GfalLs(ctx, g.url("/data/atlas/run1"))
	})
	if !strings.Contains(res.Output, "input.root") {
		t.Errorf("gfal-ls did not list input.root:\n%s", res.Output)
	}
	g.op(t, "read", "gfal-copy /data/atlas/run1/input.root → local", "allowed, lease hit", opWant{ok: true, calls: 0}, func() storage.Result {
		return r.GfalCopy(ctx, g.url("/data/atlas/run1/input.root"), "file://"+filepath.Join(g.home, "in2.root"))
	})
	if b := got("in2.root"); b != "input v1" {
		t.Errorf("gfal-copy wrote %q, want the file's bytes", b)
	}

	// A read token writes and deletes nothing.
	up := g.local(t, "reader.out", "reader's bytes")
	g.op(t, "read", "davix-put over /data/atlas/run1/input.root", "403, bytes kept", opWant{calls: 0, path: "/data/atlas/run1/input.root", disk: "input v1"}, func() storage.Result {
		return r.DavixPut(ctx, up, g.url("/data/atlas/run1/input.root"))
	})
	g.op(t, "read", "davix-rm /data/atlas/run1/input.root", "403 (DELETE asks Hydra), file kept", opWant{calls: 1, path: "/data/atlas/run1/input.root", disk: "input v1"}, func() storage.Result {
		return r.DavixRm(ctx, g.url("/data/atlas/run1/input.root"))
	})
	g.op(t, "read", "gfal-rm /data/atlas/run1/input.root", "403, file kept", opWant{calls: 1, path: "/data/atlas/run1/input.root", disk: "input v1"}, func() storage.Result {
		return r.GfalRm(ctx, g.url("/data/atlas/run1/input.root"))
	})

	// Sibling prefix and dot-dot: /atlas never covers /atlasx.
	g.op(t, "read", "davix-get /data/atlasx/secret.root", "403 (sibling prefix), nothing read", opWant{calls: 1}, func() storage.Result {
		return reader().DavixGet(ctx, g.url("/data/atlasx/secret.root"), filepath.Join(g.home, "sib.root"))
	})
	g.op(t, "read", "davix-get /data/atlas/%2e%2e/atlasx/secret.root", "403 (dot-dot resolved first), nothing read", opWant{calls: 1}, func() storage.Result {
		return reader().DavixGet(ctx, g.url("/data/atlas/%2e%2e/atlasx/secret.root"), filepath.Join(g.home, "dots.root"))
	})
	if got("sib.root") == "not for atlas" || got("dots.root") == "not for atlas" {
		t.Error("a refused download wrote the sibling's bytes")
	}

	// A job's token (read + modify): create, overwrite, mkdir, delete.
	j := job()
	out := g.local(t, "job.out", "job output v1")
	g.op(t, "read+modify", "davix-put /data/atlas/run2/job.out", "allowed, file created", opWant{ok: true, calls: 1, path: "/data/atlas/run2/job.out", disk: "job output v1"}, func() storage.Result {
		return j.DavixPut(ctx, out, g.url("/data/atlas/run2/job.out"))
	})
	out2 := g.local(t, "job2.out", "job output v2")
	g.op(t, "read+modify", "davix-put over /data/atlas/run2/job.out", "allowed, overwritten (write lease hit)", opWant{ok: true, calls: 0, path: "/data/atlas/run2/job.out", disk: "job output v2"}, func() storage.Result {
		return j.DavixPut(ctx, out2, g.url("/data/atlas/run2/job.out"))
	})
	g.op(t, "read+modify", "davix-mkdir /data/atlas/run3", "allowed (MKCOL)", opWant{ok: true, calls: 0}, func() storage.Result {
		return j.DavixMkdir(ctx, g.url("/data/atlas/run3"))
	})
	if fi, err := os.Stat(g.xrd.Path("/data/atlas/run3")); err != nil || !fi.IsDir() {
		t.Errorf("davix-mkdir: /data/atlas/run3 is not a directory on disk (%v)", err)
	}
	out3 := g.local(t, "job3.out", "job output v3")
	g.op(t, "read+modify", "gfal-copy -f local → /data/atlas/run2/job.out", "allowed: PROPFIND, DELETE (asks), PUT", opWant{ok: true, calls: 2, path: "/data/atlas/run2/job.out", disk: "job output v3"}, func() storage.Result {
		return job().GfalCopy(ctx, "file://"+out3, g.url("/data/atlas/run2/job.out"), "-f")
	})
	g.op(t, "read+modify", "davix-rm /data/atlas/run2/job.out", "allowed, DELETE asks Hydra", opWant{ok: true, calls: 1, path: "/data/atlas/run2/job.out", disk: absentFile}, func() storage.Result {
		return j.DavixRm(ctx, g.url("/data/atlas/run2/job.out"))
	})
	g.seed(t, "/data/atlas/run2/old.root", "old")
	g.op(t, "read+modify", "gfal-rm /data/atlas/run2/old.root", "allowed, DELETE asks Hydra again", opWant{ok: true, calls: 1, path: "/data/atlas/run2/old.root", disk: absentFile}, func() storage.Result {
		return j.GfalRm(ctx, g.url("/data/atlas/run2/old.root"))
	})

	g.createOnly(t, ctx, creator)

	// No token and a forged one: refused before the storage sees anything;
	// a forged JWT never reaches Hydra.
	g.op(t, "none", "davix-get /data/atlas/run1/input.root", "401 with a Bearer challenge", opWant{calls: 0}, func() storage.Result {
		return g.client("").DavixGet(ctx, g.url("/data/atlas/run1/input.root"), filepath.Join(g.home, "none.root"))
	})
	forged := forgeSignature(g.token(t, scopeRead, scopeModify))
	g.op(t, "forged", "davix-rm /data/atlas/run1/input.root", "401, no issuer call, file kept", opWant{calls: 0, path: "/data/atlas/run1/input.root", disk: "input v1"}, func() storage.Result {
		return g.client(forged).DavixRm(ctx, g.url("/data/atlas/run1/input.root"))
	})

	g.revocation(t, ctx)
}

// createOnly is storage.create as grid jobs use it: gfal-copy stats the
// destination (PROPFIND Depth: 0, HEAD) and sends a plain PUT.
func (g *storageGateway) createOnly(t *testing.T, ctx context.Context, creator func() storage.Client) {
	newFile := g.local(t, "new.out", "new bytes")
	// The shipped route (conditional_create off): a plain PUT is refused,
	// the stat before it is not.
	res := g.op(t, "create", "gfal-copy local → /data/atlas/user/new1.root", "refused at the PUT (403), nothing written", opWant{calls: 1, path: "/data/atlas/user/new1.root", disk: absentFile}, func() storage.Result {
		return creator().GfalCopy(ctx, "file://"+newFile, g.url("/data/atlas/user/new1.root"))
	})
	if len(res.Statuses) == 0 || res.Statuses[0] != 404 || res.Statuses[len(res.Statuses)-1] != 403 {
		t.Errorf("gfal-copy with a create token: statuses %v, want the stat's 404 first and the PUT's 403 last", res.Statuses)
	}
	g.op(t, "create", "davix-put -H 'If-None-Match: *' /data/atlas/user/new2.root", "allowed, file created", opWant{ok: true, calls: 1, path: "/data/atlas/user/new2.root", disk: "new bytes"}, func() storage.Result {
		return creator().DavixPut(ctx, newFile, g.url("/data/atlas/user/new2.root"), "If-None-Match: *")
	})
	over := g.local(t, "over.out", "overwritten")
	g.op(t, "create", "davix-put over /data/atlas/user/existing.root", "403, bytes kept", opWant{calls: 1, path: "/data/atlas/user/existing.root", disk: "existing v1"}, func() storage.Result {
		return creator().DavixPut(ctx, over, g.url("/data/atlas/user/existing.root"))
	})
	// The backend requirement, on the disk: XrdHttp 5.5 ignores
	// If-None-Match, so the conditional PUT leasegate allows overwrites.
	g.op(t, "create", "davix-put -H 'If-None-Match: *' over /data/atlas/user/existing.root", "leasegate allows (a create); XRootD ignores If-None-Match and OVERWRITES", opWant{ok: true, calls: 1, path: "/data/atlas/user/existing.root", disk: "overwritten"}, func() storage.Result {
		return creator().DavixPut(ctx, over, g.url("/data/atlas/user/existing.root"), "If-None-Match: *")
	})
	g.op(t, "create", "davix-rm /data/atlas/user/new2.root", "403, file kept", opWant{calls: 1, path: "/data/atlas/user/new2.root", disk: "new bytes"}, func() storage.Result {
		return creator().DavixRm(ctx, g.url("/data/atlas/user/new2.root"))
	})
	g.op(t, "create", "davix-mkdir /data/atlas/user/dir", "allowed (MKCOL is a create)", opWant{ok: true, calls: 1}, func() storage.Result {
		return creator().DavixMkdir(ctx, g.url("/data/atlas/user/dir"))
	})

	// A conditional_create route: the job case works, and the promise rests
	// on the backend.
	res = g.op(t, "create", "gfal-copy local → "+conditionalPrefix+"new.root", "allowed: PUT sent with If-None-Match: * added", opWant{ok: true, calls: 1, path: conditionalPrefix + "new.root", disk: "new bytes"}, func() storage.Result {
		return creator().GfalCopy(ctx, "file://"+newFile, g.url(conditionalPrefix+"new.root"))
	})
	g.op(t, "create", "gfal-copy local → "+conditionalPrefix+"existing.root", "refused by gfal-copy itself (exists, no -f), bytes kept", opWant{calls: 1, path: conditionalPrefix + "existing.root", disk: "cc existing v1"}, func() storage.Result {
		return creator().GfalCopy(ctx, "file://"+over, g.url(conditionalPrefix+"existing.root"))
	})
	g.op(t, "create", "gfal-copy -f local → "+conditionalPrefix+"existing.root", "refused at the DELETE (403), bytes kept", opWant{calls: 2, path: conditionalPrefix + "existing.root", disk: "cc existing v1"}, func() storage.Result {
		return creator().GfalCopy(ctx, "file://"+over, g.url(conditionalPrefix+"existing.root"), "-f")
	})
	g.op(t, "create", "davix-put over "+conditionalPrefix+"existing.root", "leasegate allows with If-None-Match: * added; XRootD ignores it and OVERWRITES", opWant{ok: true, calls: 1, path: conditionalPrefix + "existing.root", disk: "overwritten"}, func() storage.Result {
		return creator().DavixPut(ctx, over, g.url(conditionalPrefix+"existing.root"))
	})
}

// revocation: a token revoked at Hydra keeps reading within its read
// window (no issuer call), is refused at once for DELETE, and for reads
// once the window closes.
func (g *storageGateway) revocation(t *testing.T, ctx context.Context) {
	tok := g.token(t, scopeRead, scopeModify)
	c := g.client(tok)
	get := func(name string) func() storage.Result {
		return func() storage.Result {
			return c.DavixGet(ctx, g.url("/data/atlas/run1/input.root"), filepath.Join(g.home, name))
		}
	}
	g.op(t, "revoked", "davix-get (before the revocation)", "allowed, lease stored", opWant{ok: true, calls: 1}, get("rv1.root"))
	if err := g.s.hydra.Revoke(ctx, g.grid, tok); err != nil {
		t.Fatal(err)
	}
	g.op(t, "revoked", "davix-get after revocation at Hydra", "allowed: read lease hit inside the window", opWant{ok: true, calls: 0}, get("rv2.root"))
	g.op(t, "revoked", "davix-rm /data/atlas/run1/input.root", "401 at once (DELETE asks Hydra), file kept", opWant{calls: 1, path: "/data/atlas/run1/input.root", disk: "input v1"}, func() storage.Result {
		return c.DavixRm(ctx, g.url("/data/atlas/run1/input.root"))
	})
	g.op(t, "revoked", "davix-get after the refused DELETE", "401: the inactive answer ended the lease (negative lease, no call)", opWant{calls: 0}, get("rv3.root"))

	// A second revoked token that never DELETEs: its reads stop when the
	// read window closes, by themselves.
	tok2 := g.token(t, scopeRead)
	c2 := g.client(tok2)
	get2 := func() storage.Result {
		return c2.DavixGet(ctx, g.url("/data/atlas/run1/input.root"), filepath.Join(g.home, "rv4.root"))
	}
	g.op(t, "revoked (2)", "davix-get (before the revocation)", "allowed, lease stored", opWant{ok: true, calls: 1}, get2)
	validated := time.Now()
	if err := g.s.hydra.Revoke(ctx, g.grid, tok2); err != nil {
		t.Fatal(err)
	}
	g.op(t, "revoked (2)", "davix-get after revocation at Hydra", "allowed: read lease hit inside the window", opWant{ok: true, calls: 0}, get2)
	if err := sleepCtx(ctx, time.Until(validated.Add(storageReadWindow+200*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	g.op(t, "revoked (2)", fmt.Sprintf("davix-get after the %v read window", storageReadWindow), "401: window closed, Hydra says inactive", opWant{calls: 1}, get2)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// forgeSignature keeps a JWT's header and claims and changes its
// signature, as an attacker who edits a token would.
func forgeSignature(tok string) string {
	i := strings.LastIndexByte(tok, '.')
	sig := []byte(tok[i+1:])
	if sig[0] == 'A' {
		sig[0] = 'B'
	} else {
		sig[0] = 'A'
	}
	return tok[:i+1] + string(sig)
}

// storageRow is one client operation as the report shows it.
type storageRow struct {
	proxy, token, op, expect, observed string
	calls                              int64
	failed                             bool
}

type storageTable struct {
	mu   sync.Mutex
	rows []storageRow
}

func (tb *storageTable) add(r storageRow) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.rows = append(tb.rows, r)
}

func (tb *storageTable) markdown() string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var b bytes.Buffer
	b.WriteString("| proxy | token | client operation | expected | observed | issuer calls |\n|---|---|---|---|---|---|\n")
	for _, r := range tb.rows {
		mark := ""
		if r.failed {
			mark = " **(FAILED)**"
		}
		fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %s%s | %d |\n", r.proxy, r.token, r.op, r.expect, r.observed, mark, r.calls)
	}
	return b.String()
}
