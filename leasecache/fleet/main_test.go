//go:build unix

package fleet

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/leasegate/leasegate/leasecache"
)

// TestMain stops the shared servers, then checks that Close stopped every
// goroutine a Store started.
func TestMain(m *testing.M) {
	code := m.Run()
	shared.stop()
	if code == 0 {
		// rueidis closes a Cluster's replaced connections 5 s after a
		// topology refresh, from a goroutine Close does not wait for.
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// shared servers: one standalone and one Cluster for the tests that only
// read and write (each test under its own key prefix); tests that kill,
// stop or reconfigure a server start their own.
var shared sharedServers

type sharedServers struct {
	mu         sync.Mutex
	dir        string
	standalone *redisServer
	cluster    *redisCluster
	raws       []rueidis.Client
}

func (s *sharedServers) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.raws {
		c.Close()
	}
	if s.standalone != nil {
		s.standalone.kill()
	}
	if s.cluster != nil {
		s.cluster.kill()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

func sharedDir(t testing.TB) string {
	if shared.dir == "" {
		d, err := os.MkdirTemp("", "fleet-redis-")
		if err != nil {
			t.Fatal(err)
		}
		shared.dir = d
	}
	return shared.dir
}

// env is one topology under test with a key prefix of the test's own.
type env struct {
	name   string
	addrs  []string
	raw    rueidis.Client // the test's own client, beside the Stores
	prefix string
}

var prefixes atomic.Int64

func newEnv(t testing.TB, name string, addrs []string, raw rueidis.Client) *env {
	return &env{name: name, addrs: addrs, raw: raw, prefix: fmt.Sprintf("lgt%d:", prefixes.Add(1))}
}

func standaloneEnv(t testing.TB) *env {
	t.Helper()
	requireRedis(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.standalone == nil {
		dir, err := os.MkdirTemp(sharedDir(t), "standalone-")
		if err != nil {
			t.Fatal(err)
		}
		if shared.standalone, err = newRedis(dir, false); err != nil {
			t.Fatal(err)
		}
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{shared.standalone.addr()}, DisableCache: true})
		if err != nil {
			t.Fatal(err)
		}
		shared.raws = append(shared.raws, c)
	}
	return newEnv(t, "standalone", []string{shared.standalone.addr()}, shared.raws[0])
}

func clusterEnv(t testing.TB) *env {
	t.Helper()
	requireRedis(t)
	standaloneEnv(t) // raws[0] is the standalone's
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster == nil {
		dir, err := os.MkdirTemp(sharedDir(t), "cluster-")
		if err != nil {
			t.Fatal(err)
		}
		if shared.cluster, err = newCluster(dir); err != nil {
			t.Fatal(err)
		}
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: shared.cluster.addrs(), DisableCache: true})
		if err != nil {
			t.Fatal(err)
		}
		shared.raws = append(shared.raws, c)
	}
	return newEnv(t, "cluster", shared.cluster.addrs(), shared.raws[1])
}

// topologies runs f on a standalone server and on a three-node Cluster.
func topologies(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("standalone", func(t *testing.T) { f(t, standaloneEnv(t)) })
	t.Run("cluster", func(t *testing.T) { f(t, clusterEnv(t)) })
}

var testSecret = []byte("fleet-test-secret-0123456789abcdef")

// recorder keeps what a Store's hooks heard.
type recorder struct {
	mu   sync.Mutex
	revs []Revocation
	when []time.Time
	lost []string
	ups  []bool
	cond *sync.Cond
}

func newRecorder() *recorder {
	r := &recorder{}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *recorder) hooks() Hooks {
	return Hooks{
		Revoked: func(v Revocation) {
			r.mu.Lock()
			r.revs = append(r.revs, v)
			r.when = append(r.when, time.Now())
			r.mu.Unlock()
			r.cond.Broadcast()
		},
		Lost: func(why string) {
			r.mu.Lock()
			r.lost = append(r.lost, why)
			r.mu.Unlock()
			r.cond.Broadcast()
		},
		Health: func(up bool) {
			r.mu.Lock()
			r.ups = append(r.ups, up)
			r.mu.Unlock()
			r.cond.Broadcast()
		},
	}
}

// waitFor waits until cond (called under r.mu) holds, or fails after d.
func (r *recorder) waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	stop := time.AfterFunc(d, r.cond.Broadcast)
	defer stop.Stop()
	deadline := time.Now().Add(d)
	r.mu.Lock()
	defer r.mu.Unlock()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still waiting for %s", d, what)
		}
		r.cond.Wait()
	}
}

func (r *recorder) revocations() []Revocation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Revocation(nil), r.revs...)
}

func (r *recorder) lostCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lost)
}

func (e *env) config(mut func(*Config)) Config {
	cfg := Config{Addresses: e.addrs, KeyPrefix: e.prefix, Secret: testSecret}
	if mut != nil {
		mut(&cfg)
	}
	return cfg
}

// open opens a Store (one replica) on the env.
func (e *env) open(t testing.TB, mut func(*Config)) (*Store, *recorder) {
	t.Helper()
	rec := newRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, e.config(mut), rec.hooks())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	return s, rec
}

// keys lists every key under the env's prefix, on every node.
func (e *env) keys(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, n := range e.raw.Nodes() {
		var cursor uint64
		for {
			r, err := n.Do(context.Background(), n.B().Scan().Cursor(cursor).Match(e.prefix+"*").Count(1000).Build()).AsScanEntry()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r.Elements...)
			if cursor = r.Cursor; cursor == 0 {
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

var bg = context.Background()

func tokenKey(s *Store, token string) leasecache.Key { return s.KeyOf(leasecache.KeyOf(token)) }

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(bg, d)
}

// stampNow is the store's clock now, as Acquire would return it, and
// later than any stamp it returned before: so a test's Store calls on one
// key are ordered as written.
func stampNow(tb testing.TB, s *Store) Stamp {
	tb.Helper()
	t, err := s.c.Do(context.Background(), s.c.B().Time().Build()).AsIntSlice()
	if err != nil || len(t) != 2 {
		tb.Fatalf("TIME: %v %v", t, err)
	}
	now := Stamp(t[0]*1_000_000 + t[1])
	for {
		last := lastStamp.Load()
		next := max(int64(now), last+1)
		if lastStamp.CompareAndSwap(last, next) {
			return Stamp(next)
		}
	}
}

var lastStamp atomic.Int64

// stamped is a sealed value as the put script stores it, stamped st.
func stamped(st Stamp, sealed []byte) string {
	return fmt.Sprintf("%016d", st) + string(sealed)
}
