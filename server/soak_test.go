package server

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

var soakFor = flag.Duration("soak", 0, "how long TestSoak runs (default 8s), e.g. -soak=5m")

type soakSample struct {
	at         time.Duration
	heapInuse  uint64
	goroutines int
}

func sampleNow(since time.Time) soakSample {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return soakSample{at: time.Since(since).Round(time.Millisecond), heapInuse: ms.HeapInuse, goroutines: runtime.NumGoroutine()}
}

// TestSoak runs sustained mixed load (lease hits, issuer calls, negative
// leases, denials) over real gRPC and shows heap and goroutine counts stay
// flat, and goroutines return to baseline when the load stops.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped under -short")
	}
	const (
		workers    = 12
		heapMargin = 4 << 20
	)
	dur := 8 * time.Second
	if *soakFor > 0 {
		dur = *soakFor
	}
	fi := newFaultIssuerOpts(t, issuerOpts{keepAlive: true, uncounted: true})
	goods := make([]string, 64)
	for i := range goods {
		goods[i] = fmt.Sprintf("soak-good-%d", i)
		fi.set(goods[i], true)
	}
	// Logs are encoded but not kept: a buffer would grow with the load.
	r := startConfiguredLog(t, faultConfig{endpoint: fi.URL, readWindow: time.Minute, negTTL: 2 * time.Second, memMB: 8, timeout: loadTolerantTimeout}.yaml(), nil, io.Discard)
	waitServing(t, r)
	baseline := baselineGoroutines()

	start := time.Now()
	stop := make(chan struct{})
	var (
		ops    atomic.Int64
		failed atomic.Int64
		first  sync.Once
		errMsg atomic.Value
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := ops.Add(1)
				var o outcome
				want := 200
				switch i % 10 {
				case 0, 1, 2, 3, 4, 5: // reads: lease hits after the first
					o = check(r, envoyRequest("GET", "/data/f", goods[int(n)%len(goods)]))
				case 6: // window 0: an issuer call every time
					o = check(r, envoyRequest("DELETE", "/data/f", goods[int(n)%len(goods)]))
				case 7: // a new garbage token: issuer call, then a negative lease
					o, want = check(r, envoyRequest("GET", "/data/f", fmt.Sprintf("soak-garbage-%d-%d", w, i))), 401
				case 8: // no token
					o, want = check(r, envoyRequest("GET", "/data/f", "")), 401
				case 9: // malformed
					o, want = check(r, envoyRequest("GET", "/data/f", "a b")), 400
				}
				if o.err != nil || o.httpStatus() != want || (want == 200 && o.code() != codes.OK) {
					failed.Add(1)
					first.Do(func() { errMsg.Store(fmt.Sprintf("want %d, got %v", want, o)) })
				}
			}
		})
	}

	var samples []soakSample
	tick := time.NewTicker(time.Second)
	for time.Since(start) < dur {
		<-tick.C
		samples = append(samples, sampleNow(start))
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	total := ops.Load()
	for _, s := range samples {
		t.Logf("t=%v heap_inuse=%.1f MiB goroutines=%d", s.at, float64(s.heapInuse)/(1<<20), s.goroutines)
	}
	t.Logf("%d checks in %v (%.0f/s), %d wrong", total, time.Since(start).Round(time.Millisecond),
		float64(total)/time.Since(start).Seconds(), failed.Load())
	if n := failed.Load(); n > 0 {
		t.Errorf("%d checks answered wrongly, first: %v", n, errMsg.Load())
	}
	if len(samples) < 3 {
		t.Fatalf("only %d samples", len(samples))
	}
	// The first sample is after a second of load: caches and pools are warm.
	firstS, last := samples[0], samples[len(samples)-1]
	if last.heapInuse > firstS.heapInuse*3/2+heapMargin {
		t.Errorf("heap grew under steady load: %.1f MiB → %.1f MiB", float64(firstS.heapInuse)/(1<<20), float64(last.heapInuse)/(1<<20))
	}
	if last.goroutines > firstS.goroutines+2*workers {
		t.Errorf("goroutines grew under steady load: %d → %d", firstS.goroutines, last.goroutines)
	}
	// Load stopped: what is left are at most max_conns (8) pooled issuer
	// connections (two goroutines each, and one at the issuer) …
	settleGoroutines(t, baseline, 6+3*8)
	// … and once those close, nothing.
	fi.dropConns()
	settleGoroutines(t, baseline, 6)
}
