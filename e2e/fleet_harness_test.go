package e2e

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasegate/leasegate/e2e/internal/leasegate"
	"github.com/leasegate/leasegate/e2e/internal/redis"
)

// fleetOptions describes one fleet: Redis (standalone or a three-node
// Cluster) and leasegate replicas sharing it (SPEC §8).
type fleetOptions struct {
	Cluster  bool
	Replicas int // default 3
	// Proxied puts replica 0 behind a TCP proxy to Redis that the test
	// can black-hole (standalone only: a Cluster client learns the nodes'
	// own addresses from the topology).
	Proxied     bool
	OnStoreLoss string // default: leasegate's (standalone)
	Tiers       map[string]leasegate.Tier
	Timeout     time.Duration // issuer timeout; default 2s
	// StoreTimeout is fleet.timeout (default here 1s: on a loaded machine
	// the 100ms default can fail a health ping and take the store "down");
	// HealthInterval fleet.health_interval.
	StoreTimeout, HealthInterval time.Duration
	LeaseMax                     time.Duration // default 10m
	// Issuer, when set, changes every replica's issuer entry.
	Issuer func(*leasegate.Issuer)
}

// fleet is one Hydra side (the embedded stack: Hydra, counting proxy,
// gate, token helpers; its own leasegate fields are unused) and replicas
// of leasegate sharing one Redis.
type fleet struct {
	*stack
	redis    *redis.Server  // standalone, or nil
	cluster  *redis.Cluster // or nil
	proxy    *redis.Proxy   // in front of redis for replica 0 when Proxied
	replicas []*leasegate.Process
	clients  []*leasegate.Client
	next     atomic.Uint64
	cfgs     []leasegate.Config
}

func redisAvailable(t *testing.T) {
	t.Helper()
	if _, err := redis.Binary(); err != nil {
		missing(t, "redis-server", err)
	}
	if _, err := redis.CLI(); err != nil {
		missing(t, "redis-cli", err)
	}
}

// newFleet starts Hydra and a fleet on it.
func newFleet(t *testing.T, o fleetOptions) *fleet {
	t.Helper()
	redisAvailable(t)
	bin := leasegateBin(t)
	ctx := testCtx(t, time.Minute)
	return startFleet(t, ctx, newIssuerSide(t, ctx, false), bin, o)
}

// startFleet starts Redis and the replicas on an existing issuer side, all
// stopped at t's cleanup. Before Redis goes, the cleanup scans every key
// and value for the tokens s handed out (checkNoTokens).
func startFleet(t *testing.T, ctx context.Context, s *stack, bin string, o fleetOptions) *fleet {
	t.Helper()
	f := &fleet{stack: s}
	dir := t.TempDir()
	var addrs []string
	if o.Cluster {
		c, err := redis.StartCluster(ctx, filepath.Join(dir, "cluster"), 3)
		if err != nil {
			t.Fatalf("start redis cluster: %v", err)
		}
		t.Cleanup(c.Close)
		f.cluster, addrs = c, c.Addrs()
	} else {
		rdir := filepath.Join(dir, "redis")
		if err := os.Mkdir(rdir, 0o755); err != nil {
			t.Fatal(err)
		}
		r, err := redis.Start(ctx, redis.Options{Dir: rdir})
		if err != nil {
			t.Fatalf("start redis: %v", err)
		}
		t.Cleanup(r.Close)
		f.redis, addrs = r, []string{r.Addr()}
		if o.Proxied {
			if f.proxy, err = redis.NewProxy(r.Addr()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.proxy.Close() })
		}
	}
	t.Cleanup(func() { f.checkNoTokens(t) })

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	secretFile := filepath.Join(dir, "fleet.key")
	if err := os.WriteFile(secretFile, []byte(hex.EncodeToString(secret)), 0o600); err != nil {
		t.Fatal(err)
	}
	n := o.Replicas
	if n == 0 {
		n = 3
	}
	tiers := o.Tiers
	if tiers == nil {
		tiers = defaultTiers()
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	leaseMax := o.LeaseMax
	if leaseMax == 0 {
		leaseMax = 10 * time.Minute
	}
	f.replicas = make([]*leasegate.Process, n)
	f.clients = make([]*leasegate.Client, n)
	f.cfgs = make([]leasegate.Config, n)
	for i := range n {
		iss := s.issuerConfig("introspection", timeout, nil)
		if o.Issuer != nil {
			o.Issuer(&iss)
		}
		cfg := s.baseConfig(iss, tiers)
		cfg.Lease.Max = leasegate.Duration(leaseMax)
		ra := addrs
		if i == 0 && f.proxy != nil {
			ra = []string{f.proxy.Addr()}
		}
		cfg.Fleet = &leasegate.Fleet{
			Redis:          leasegate.FleetRedis{Addresses: ra},
			KeyPrefix:      "lg-e2e:",
			SecretFile:     secretFile,
			OnStoreLoss:    o.OnStoreLoss,
			Timeout:        leasegate.Duration(cmp.Or(o.StoreTimeout, time.Second)),
			HealthInterval: leasegate.Duration(o.HealthInterval),
		}
		f.cfgs[i] = cfg
	}
	// Start the replicas side by side: each waits for its own /readyz.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.replicas[i], errs[i] = f.startReplica(t, ctx, bin, f.cfgs[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	for i, p := range f.replicas {
		c, err := leasegate.Dial(p.GRPCAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		f.clients[i] = c
	}
	return f
}

// startReplica is startLeasegate returning its failure instead of calling
// t.Fatal from a goroutine.
func (f *fleet) startReplica(t *testing.T, ctx context.Context, bin string, cfg leasegate.Config) (*leasegate.Process, error) {
	var logw *testLogWriter
	if os.Getenv("LEASEGATE_E2E_VERBOSE") != "" {
		logw = &testLogWriter{t: t}
	}
	opts := leasegate.Options{Binary: bin, Config: cfg, Dir: t.TempDir()}
	if logw != nil {
		opts.Log = logw
	}
	p, err := leasegate.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stop replica: %v", err)
		}
		logs := p.Logs()
		f.mu.Lock()
		for _, it := range f.issued {
			if strings.Contains(logs, it.tok) || strings.Contains(logs, tokenCore(it.tok)) {
				t.Errorf("a replica's log contains a raw %s", it.kind)
			}
		}
		f.mu.Unlock()
		if t.Failed() {
			t.Logf("replica %s log tail:\n%s", p.AdminURL(), tailString(logs, 6144))
		}
	})
	return p, nil
}

// on sends r to replica i with a 10 s deadline; a transport error fails t.
func (f *fleet) on(t *testing.T, i int, r leasegate.Request) leasegate.Result {
	t.Helper()
	res, err := f.clients[i].Check(testCtx(t, 10*time.Second), r)
	if err != nil {
		t.Fatalf("replica %d: %s %s: %v", i, r.Method, r.Path, err)
	}
	return res
}

// rr sends r to the next replica, round-robin, as Envoy's ext_authz
// cluster would.
func (f *fleet) rr(ctx context.Context, r leasegate.Request) (leasegate.Result, error) {
	i := int(f.next.Add(1)-1) % len(f.clients)
	return f.clients[i].Check(ctx, r)
}

// tokens fetches n fresh tokens, four at a time.
func (f *fleet) tokens(t *testing.T, n int) []string {
	t.Helper()
	out := make([]string, n)
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		mu   sync.Mutex
		errs []error
	)
	ctx := testCtx(t, time.Minute)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				tok, err := f.hydra.Token(ctx, f.oauth, []string{"read", "write"}, []string{audStorage})
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				out[i] = tok
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("hydra tokens: %v", errors.Join(errs...))
	}
	f.mu.Lock()
	for _, tok := range out {
		f.issued = append(f.issued, issuedToken{"client_credentials access token", tok})
	}
	f.mu.Unlock()
	return out
}

// metricsOf scrapes replica i.
func (f *fleet) metricsOf(t *testing.T, i int) leasegate.Metrics {
	t.Helper()
	m, err := f.replicas[i].Metrics(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatalf("replica %d metrics: %v", i, err)
	}
	return m
}

// waitStoreUp polls replica i's leasegate_fleet_store_up until it is up
// (1) or down (0), and returns how long that took.
func (f *fleet) waitStoreUp(t *testing.T, i int, up bool, within time.Duration) time.Duration {
	t.Helper()
	want := 0.0
	if up {
		want = 1
	}
	start := time.Now()
	var last leasegate.Metrics
	for deadline := start.Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		m, err := f.replicas[i].Metrics(testCtx(t, 5*time.Second))
		if err != nil {
			continue
		}
		last = m
		if len(m["leasegate_fleet_store_up"]) > 0 && m.Sum("leasegate_fleet_store_up", nil) == want {
			return time.Since(start)
		}
	}
	t.Fatalf("replica %d: leasegate_fleet_store_up never became %v within %v (last %v)", i, want, within, last["leasegate_fleet_store_up"])
	return 0
}

// scan reads every key and value of the fleet's Redis.
func (f *fleet) scan(ctx context.Context) ([]redis.Entry, error) {
	if f.cluster != nil {
		return f.cluster.Scan(ctx)
	}
	return redis.Scan(ctx, f.redis.Addr())
}

// tokenForms are the strings that would identify tok to a reader of
// Redis: the token, its core (opaque part or JWT signature), and its
// plain SHA-256 as hex (both cases), base64 (std, url, raw) and raw bytes.
func tokenForms(tok string) []string {
	sum := sha256.Sum256([]byte(tok))
	h := hex.EncodeToString(sum[:])
	return []string{
		tok, tokenCore(tok), h, strings.ToUpper(h), string(sum[:]),
		base64.StdEncoding.EncodeToString(sum[:]), base64.URLEncoding.EncodeToString(sum[:]),
		base64.RawStdEncoding.EncodeToString(sum[:]), base64.RawURLEncoding.EncodeToString(sum[:]),
	}
}

// checkNoTokens scans every key and value in Redis (SCAN + TYPE + DUMP +
// the type's read) and fails t if any holds a token s handed out, or a
// plain SHA-256 of one (SPEC §8: the store is not trusted with secrets).
// A Redis that is down (a test's last fault) is reported, not scanned.
func (f *fleet) checkNoTokens(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	es, err := f.scan(ctx)
	if err != nil {
		t.Logf("leak scan skipped: %v", err)
		return
	}
	f.mu.Lock()
	issued := slices.Clone(f.issued)
	f.mu.Unlock()
	types := map[string]int{}
	for _, e := range es {
		types[e.Type]++
	}
	found := 0
	for _, it := range issued {
		forms := tokenForms(it.tok)
		for _, e := range es {
			for fi, form := range forms {
				if e.Contains(form) {
					found++
					t.Errorf("Redis key %q (%s) holds form %d of a %s", e.Key, e.Type, fi, it.kind)
				}
			}
		}
	}
	t.Logf("leak scan: %d keys %v, %d tokens × %d forms each: %d found", len(es), types, len(issued), len(tokenForms("x")), found)
}

// percentile is the p-th percentile (0–100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// TestFleetLeakScanFinds checks the leak scan itself, without leasegate:
// each form of a token written to Redis (in a string, a hash and a
// stream) is found, and an HMAC of it is not.
func TestFleetLeakScanFinds(t *testing.T) {
	t.Parallel()
	redisAvailable(t)
	ctx := testCtx(t, 20*time.Second)
	r, err := redis.Start(ctx, redis.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const tok = "ory_at_abcdefghijklmnopqrstuvwxyz0123456789.sig-part-ABCDEFG"
	forms := tokenForms(tok)
	for i, form := range forms {
		var cmd []string
		switch i % 3 {
		case 0:
			cmd = []string{"SET", fmt.Sprintf("k%d", i), "x" + form + "y"}
		case 1:
			cmd = []string{"HSET", fmt.Sprintf("h%d", i), "f", form}
		default:
			cmd = []string{"XADD", fmt.Sprintf("s%d", i), "*", "v", form}
		}
		if _, err := r.Do(ctx, cmd...); err != nil {
			t.Fatal(err)
		}
	}
	es, err := redis.Scan(ctx, r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	for i, form := range forms {
		found := false
		for _, e := range es {
			found = found || e.Contains(form)
		}
		if !found {
			t.Errorf("form %d not found by the scan", i)
		}
	}
}
