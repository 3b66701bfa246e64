package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type loadOptions struct {
	target      string
	conns       int
	concurrency int
	rate        float64
	duration    time.Duration
	warmup      time.Duration
	tokens      int
	tokenBase   uint64
	dist        string
	zipfS       float64
	mix         string
	newFrac     float64
	prime       bool
	primeOnly   bool
	primeMethod string
	host, path  string
	seed        uint64
	label       string
	run         int
	json        bool
	serverPID   int
	tokenFile   string // tokens of the population, one per line (JWTs)
}

// Latencies are recorded in nanoseconds from 1 µs to 60 s with 3
// significant digits: any recorded value is within 0.1% of the true one.
const (
	histMin = 1_000
	histMax = 60_000_000_000
	histSig = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSig) }

// methodMix picks methods by integer weight.
type methodMix struct {
	methods []string
	cum     []uint64
}

func parseMix(s string) (methodMix, error) {
	var m methodMix
	var total uint64
	for part := range strings.SplitSeq(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" {
			return m, fmt.Errorf("mix %q: want METHOD=WEIGHT[,METHOD=WEIGHT]", s)
		}
		n, err := strconv.ParseUint(w, 10, 32)
		if err != nil || n == 0 {
			return m, fmt.Errorf("mix %q: weight of %s must be a positive integer", s, name)
		}
		total += n
		m.methods = append(m.methods, name)
		m.cum = append(m.cum, total)
	}
	if len(m.methods) == 0 {
		return m, fmt.Errorf("mix %q is empty", s)
	}
	return m, nil
}

func (m *methodMix) pick(r *rand.Rand) int {
	x := r.Uint64N(m.cum[len(m.cum)-1])
	for i, c := range m.cum {
		if x < c {
			return i
		}
	}
	return len(m.cum) - 1
}

// Latency is a percentile summary in microseconds.
type Latency struct {
	N    int64   `json:"n"`
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	Max  float64 `json:"max_us"`
}

func summarizeHist(h *hdrhistogram.Histogram) Latency {
	us := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1e3 }
	return Latency{N: h.TotalCount(), P50: us(50), P90: us(90), P99: us(99), P999: us(99.9), Max: float64(h.Max()) / 1e3}
}

// Result is one measurement, as printed with -json.
type Result struct {
	Label       string  `json:"label"`
	Run         int     `json:"run"`
	Target      string  `json:"target"`
	Conns       int     `json:"conns"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate,omitempty"` // open-loop target, requests/s
	DurationS   float64 `json:"duration_s"`
	Tokens      int     `json:"tokens"`
	Dist        string  `json:"dist"`
	Mix         string  `json:"mix"`
	NewFrac     float64 `json:"new_frac"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"` // gRPC errors
	Denied      int64   `json:"denied"` // CheckResponse status not OK
	RPS         float64 `json:"rps"`
	All         Latency `json:"all"`
	Known       Latency `json:"known"` // requests with population tokens
	New         Latency `json:"new"`   // requests with never-seen tokens
	// ClientCPUUs is loadgen's own CPU time per request, µs.
	ClientCPUUs float64 `json:"client_cpu_us_per_req"`
	// ServerCPUUs is the -server-pid process's CPU time per request, µs.
	ServerCPUUs float64 `json:"server_cpu_us_per_req,omitempty"`
	LoadAvg     string  `json:"loadavg"`
	FirstError  string  `json:"first_error,omitempty"`
}

type worker struct {
	id     int
	conn   *grpc.ClientConn
	rng    *rand.Rand
	zipf   *rand.Zipf
	known  *hdrhistogram.Histogram
	fresh  *hdrhistogram.Histogram
	reqs   int64
	errs   int64
	denied int64
	first  error
}

type load struct {
	o         loadOptions
	tmpls     []template
	mix       methodMix
	primeTmpl template
	freshBase uint64
	freshCtr  atomic.Uint64
	ridHi     uint64
}

func runLoad(ctx context.Context, o loadOptions) error {
	if o.conns < 1 || o.concurrency < 1 || o.tokens < 1 {
		return errors.New("-conns, -concurrency and -tokens must be at least 1")
	}
	if o.dist != "uniform" && o.dist != "zipf" {
		return fmt.Errorf("-dist %q: want uniform or zipf", o.dist)
	}
	if o.dist == "zipf" && o.zipfS <= 1 {
		return fmt.Errorf("-zipf-s %v: must be greater than 1", o.zipfS)
	}
	if o.newFrac < 0 || o.newFrac > 1 {
		return fmt.Errorf("-new-frac %v: want 0..1", o.newFrac)
	}
	mix, err := parseMix(o.mix)
	if err != nil {
		return err
	}
	var toks []string
	if o.tokenFile != "" {
		if toks, err = readTokens(o.tokenFile); err != nil {
			return err
		}
		if o.newFrac > 0 || o.tokens > len(toks) {
			return fmt.Errorf("-token-file %s has %d tokens: -tokens must be at most that, and -new-frac 0", o.tokenFile, len(toks))
		}
	}
	l := &load{o: o, mix: mix}
	for _, m := range mix.methods {
		t, err := newTokenTemplate(m, o.host, o.path, toks, o.tokenBase)
		if err != nil {
			return err
		}
		l.tmpls = append(l.tmpls, t)
	}
	if l.primeTmpl, err = newTokenTemplate(o.primeMethod, o.host, o.path, toks, o.tokenBase); err != nil {
		return err
	}
	seedRNG := rand.New(rand.NewPCG(o.seed, uint64(time.Now().UnixNano())))
	// Never-seen tokens come from a random range far above any population,
	// so repeated runs against one server do not reuse each other's.
	l.freshBase = 100_000_000_000 + seedRNG.Uint64N(800_000_000_000)
	l.ridHi = seedRNG.Uint64()

	conns := make([]*grpc.ClientConn, o.conns)
	for i := range conns {
		c, err := grpc.NewClient(o.target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			return fmt.Errorf("connect %s: %w", o.target, err)
		}
		defer c.Close()
		c.Connect()
		conns[i] = c
	}
	workers := make([]*worker, o.concurrency)
	for i := range workers {
		r := rand.New(rand.NewPCG(o.seed, uint64(i)+1))
		w := &worker{id: i, conn: conns[i%len(conns)], rng: r, known: newHist(), fresh: newHist()}
		if o.dist == "zipf" {
			w.zipf = rand.NewZipf(r, o.zipfS, 1, uint64(o.tokens-1))
		}
		workers[i] = w
	}

	if o.prime || o.primeOnly {
		if err := l.primeTokens(ctx, workers); err != nil {
			return err
		}
		if o.primeOnly {
			return nil
		}
	}

	start := time.Now()
	measureStart := start.Add(o.warmup)
	end := measureStart.Add(o.duration)
	runCtx, cancel := context.WithDeadline(ctx, end.Add(5*time.Second))
	defer cancel()

	var cpu0, srv0 time.Duration
	var cpuOnce sync.Once
	snap := func() {
		cpu0 = selfCPU()
		srv0 = procCPU(o.serverPID)
	}
	go func() {
		// Snapshot CPU counters when the measured window opens.
		select {
		case <-time.After(time.Until(measureStart)):
			cpuOnce.Do(snap)
		case <-runCtx.Done():
		}
	}()
	if o.warmup <= 0 {
		cpuOnce.Do(snap)
	}

	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { l.work(runCtx, w, measureStart, end) })
	}
	wg.Wait()
	cpu1, srv1 := selfCPU(), procCPU(o.serverPID)
	elapsed := time.Since(measureStart)
	if elapsed > o.duration {
		// Workers stop starting requests at end; the last ones finish a
		// little later. Throughput counts requests started in the window.
		elapsed = o.duration
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	res := Result{
		Label: o.label, Run: o.run, Target: o.target, Conns: o.conns, Concurrency: o.concurrency,
		Rate: o.rate, DurationS: o.duration.Seconds(), Tokens: o.tokens, Dist: o.dist, Mix: o.mix, NewFrac: o.newFrac,
		LoadAvg: loadAvg(),
	}
	known, fresh, all := newHist(), newHist(), newHist()
	for _, w := range workers {
		res.Requests += w.reqs
		res.Errors += w.errs
		res.Denied += w.denied
		if w.first != nil && res.FirstError == "" {
			res.FirstError = w.first.Error()
		}
		known.Merge(w.known)
		fresh.Merge(w.fresh)
	}
	all.Merge(known)
	all.Merge(fresh)
	res.RPS = float64(res.Requests) / elapsed.Seconds()
	res.All, res.Known, res.New = summarizeHist(all), summarizeHist(known), summarizeHist(fresh)
	if res.Requests > 0 {
		res.ClientCPUUs = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(res.Requests)
		if o.serverPID > 0 {
			res.ServerCPUUs = float64(srv1-srv0) / float64(time.Microsecond) / float64(res.Requests)
		}
	}
	printResult(os.Stderr, &res)
	if o.json {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
	}
	if res.Requests == 0 {
		return errors.New("no request completed")
	}
	return nil
}

func (l *load) work(ctx context.Context, w *worker, measureStart, end time.Time) {
	var in rawMsg
	var out rawMsg
	buf := make([]byte, 0, 2048)
	var ctr uint64
	// Open loop: each worker sends every interval, staggered so the
	// workers together send at -rate. Latency is still measured from the
	// actual send, so a late wake-up of this client is not charged to the
	// server; a server slower than the interval makes the worker fall
	// behind and the achieved rate drop, which the result shows.
	var interval time.Duration
	var next time.Time
	if l.o.rate > 0 {
		interval = time.Duration(float64(l.o.concurrency) / l.o.rate * float64(time.Second))
		next = time.Now().Add(interval * time.Duration(w.id) / time.Duration(l.o.concurrency))
	}
	for {
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(interval)
		}
		t0 := time.Now()
		if !t0.Before(end) || ctx.Err() != nil {
			return
		}
		t := &l.tmpls[l.mix.pick(w.rng)]
		isNew := l.o.newFrac > 0 && w.rng.Float64() < l.o.newFrac
		var n uint64
		switch {
		case isNew:
			n = l.freshBase + l.freshCtr.Add(1)
		case w.zipf != nil:
			n = l.o.tokenBase + w.zipf.Uint64()
		default:
			n = l.o.tokenBase + w.rng.Uint64N(uint64(l.o.tokens))
		}
		ctr++
		buf = buf[:len(t.b)]
		t.fill(buf, n, l.ridHi^uint64(w.id)<<40, ctr)
		in.b = buf
		t0 = time.Now()
		err := w.conn.Invoke(ctx, checkMethod, &in, &out)
		took := time.Since(t0)
		if t0.Before(measureStart) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return // the run is over; an interrupted call is not a fault
			}
			w.errs++
			if w.first == nil {
				w.first = err
			}
			// gRPC may still hold the buffer of a failed call.
			buf = make([]byte, 0, 2048)
			continue
		}
		w.reqs++
		if out.code != 0 {
			w.denied++
		}
		h := w.known
		if isNew {
			h = w.fresh
		}
		_ = h.RecordValue(max(int64(took), histMin))
	}
}

// primeTokens sends one request (GET by default) per population token so
// every token has a lease before the measurement.
func (l *load) primeTokens(ctx context.Context, workers []*worker) error {
	start := time.Now()
	var next atomic.Int64
	var errs, denied atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			var in, out rawMsg
			buf := make([]byte, len(l.primeTmpl.b))
			for ctx.Err() == nil {
				n := next.Add(1) - 1
				if n >= int64(l.o.tokens) {
					return
				}
				l.primeTmpl.fill(buf, l.o.tokenBase+uint64(n), l.ridHi, uint64(n))
				in.b = buf
				if err := w.conn.Invoke(ctx, checkMethod, &in, &out); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					buf = make([]byte, len(l.primeTmpl.b))
					continue
				}
				if out.code != 0 {
					denied.Add(1)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	fmt.Fprintf(os.Stderr, "primed %d tokens in %s (%.0f/s), %d errors, %d denied\n",
		l.o.tokens, took.Round(time.Millisecond), float64(l.o.tokens)/took.Seconds(), errs.Load(), denied.Load())
	if e, _ := firstErr.Load().(string); e != "" {
		fmt.Fprintln(os.Stderr, "first error:", e)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errs.Load() > 0 || denied.Load() > 0 {
		return errors.New("priming failed: not every token got a lease")
	}
	return nil
}

func printResult(f *os.File, r *Result) {
	if r.Rate > 0 {
		fmt.Fprintf(f, "open loop at %.0f/s; ", r.Rate)
	}
	fmt.Fprintf(f, "%s target=%s conns=%d concurrency=%d duration=%gs tokens=%d dist=%s mix=%s new-frac=%g\n",
		cmp.Or(r.Label, "-"), r.Target, r.Conns, r.Concurrency, r.DurationS, r.Tokens, r.Dist, r.Mix, r.NewFrac)
	fmt.Fprintf(f, "  requests %d  throughput %.0f/s  errors %d  denied %d  client cpu %.1f µs/req",
		r.Requests, r.RPS, r.Errors, r.Denied, r.ClientCPUUs)
	if r.ServerCPUUs > 0 {
		fmt.Fprintf(f, "  server cpu %.1f µs/req", r.ServerCPUUs)
	}
	fmt.Fprintf(f, "  loadavg %s\n", r.LoadAvg)
	line := func(name string, l Latency) {
		if l.N == 0 {
			return
		}
		fmt.Fprintf(f, "  %-6s n=%d  p50 %.1f µs  p90 %.1f µs  p99 %.1f µs  p999 %.1f µs  max %.1f µs\n",
			name, l.N, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	line("all", r.All)
	if r.New.N > 0 {
		line("known", r.Known)
		line("new", r.New)
	}
	if r.FirstError != "" {
		fmt.Fprintf(f, "  first error: %s\n", r.FirstError)
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU reads utime+stime of pid from /proc (Linux); 0 when unknown.
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields overall.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
