// Package leasegate runs the built leasegate binary as a child process for the
// end-to-end tests and the demo: it writes the configuration, starts the
// process on free loopback ports (read back from its "listening" log line),
// waits for /readyz, and talks to it the way Envoy, Prometheus and an
// operator do: the ext_authz v3 gRPC Check (Client), the probes and
// metrics listener (/readyz, /metrics), and the admin API (/config,
// /revoke). It treats leasegate as a black box and imports none of its
// packages.
package leasegate

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults for the matching Options fields.
const (
	DefaultReadyTimeout = 20 * time.Second
	DefaultStopTimeout  = 15 * time.Second
)

// Options configures Start.
type Options struct {
	// Binary is the leasegate executable (see Binary).
	Binary string
	// Config is written to Dir/leasegate.yaml before the start.
	Config Config
	// ConfigYAML, when set, is written instead of Config, as is (a shipped
	// example with its addresses changed); its listen addresses should be
	// 127.0.0.1:0.
	ConfigYAML []byte
	// Dir holds the config file; it must exist.
	Dir string
	// Env holds KEY=VALUE entries added to a minimal environment (PATH,
	// HOME, TMPDIR, TZ). Nothing else is inherited, so a stray
	// OTEL_EXPORTER_OTLP_ENDPOINT in the caller's environment cannot leak in.
	Env []string
	// Log, when set, also receives the process's stdout and stderr.
	Log io.Writer
	// ReadyTimeout bounds the wait for the listening line and /readyz.
	ReadyTimeout time.Duration
}

// Addrs are the addresses leasegate reported in its "listening" log line.
type Addrs struct {
	GRPC    string `json:"grpc"`
	HTTP    string `json:"http"`
	Metrics string `json:"metrics"`
	Admin   string `json:"admin"`
	Push    string `json:"push"`
}

// Process is a running (or exited) leasegate. Methods are safe for
// concurrent use.
type Process struct {
	cmd        *exec.Cmd
	configPath string
	addrs      Addrs
	logs       *lineLog
	http       *http.Client
	done       chan struct{} // closed after cmd.Wait returned
	waitErr    error
	stopOnce   sync.Once
}

// Start writes the configuration and launches `leasegate -config FILE`,
// returning once it has logged its listening addresses and GET /readyz
// answers 200. ctx bounds only the start. On failure nothing is left
// running and the error carries the tail of leasegate's log.
func Start(ctx context.Context, o Options) (*Process, error) {
	if o.Binary == "" {
		return nil, errors.New("leasegate: Options.Binary is empty")
	}
	if o.Dir == "" {
		return nil, errors.New("leasegate: Options.Dir is empty")
	}
	cfg := o.Config
	cfg.Listen.GRPC = cmp.Or(cfg.Listen.GRPC, "127.0.0.1:0")
	cfg.Listen.Admin = cmp.Or(cfg.Listen.Admin, "127.0.0.1:0")
	cfg.Listen.Metrics = cmp.Or(cfg.Listen.Metrics, "127.0.0.1:0")
	p := &Process{
		configPath: filepath.Join(o.Dir, "leasegate.yaml"),
		logs:       newLineLog(),
		http:       &http.Client{Timeout: 10 * time.Second},
		done:       make(chan struct{}),
	}
	write := func() error { return p.WriteConfig(cfg) }
	if o.ConfigYAML != nil {
		write = func() error { return p.WriteConfigYAML(o.ConfigYAML) }
	}
	if err := write(); err != nil {
		return nil, err
	}

	p.cmd = exec.Command(o.Binary, "-config", p.configPath)
	p.cmd.Env = minimalEnv(o.Env)
	p.cmd.SysProcAttr = sysProcAttr()
	var sink io.Writer = p.logs
	if o.Log != nil {
		sink = io.MultiWriter(p.logs, o.Log)
	}
	p.cmd.Stdout = sink
	p.cmd.Stderr = sink
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("leasegate: start %s: %w", o.Binary, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()

	timeout := o.ReadyTimeout
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := p.waitReady(rctx); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("leasegate: %w\n--- leasegate log (tail) ---\n%s", err, tail(p.Logs(), 4096))
	}
	return p, nil
}

func (p *Process) waitReady(ctx context.Context) error {
	line, err := p.WaitLog(ctx, func(e LogEntry) bool { return e.Msg == "listening" })
	if err != nil {
		return fmt.Errorf("no listening line: %w", err)
	}
	if err := json.Unmarshal(line.Raw, &p.addrs); err != nil || p.addrs.GRPC == "" || p.addrs.Admin == "" || p.addrs.Metrics == "" {
		return fmt.Errorf("listening line %s lacks the grpc, metrics or admin address (%v)", line.Raw, err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		code, _, err := p.MetricsGet(ctx, "/readyz")
		if err == nil && code == http.StatusOK {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("/readyz never answered 200 (last: %d, %v): %w", code, err, ctx.Err())
		case <-p.done:
			return fmt.Errorf("exited before becoming ready: %v", p.waitErr)
		case <-tick.C:
		}
	}
}

// Addrs returns the bound listener addresses.
func (p *Process) Addrs() Addrs { return p.addrs }

// GRPCAddr is the ext_authz gRPC address, host:port.
func (p *Process) GRPCAddr() string { return p.addrs.GRPC }

// AdminURL is the admin listener's base URL, without trailing slash.
func (p *Process) AdminURL() string { return "http://" + p.addrs.Admin }

// MetricsURL is the probes and metrics listener's base URL, without
// trailing slash: what kubelet and Prometheus are pointed at.
func (p *Process) MetricsURL() string { return "http://" + p.addrs.Metrics }

// ConfigPath is the configuration file the process was started with.
func (p *Process) ConfigPath() string { return p.configPath }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// WriteConfig (re)writes the configuration file atomically; send SIGHUP
// (Reload) to make a running process read it. Listen addresses are written
// as given: on reload they must equal the running ones (see Reload).
func (p *Process) WriteConfig(c Config) error {
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	return p.WriteConfigYAML(b)
}

// WriteConfigYAML writes raw YAML as the configuration file, atomically.
func (p *Process) WriteConfigYAML(b []byte) error {
	tmp := p.configPath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("leasegate: write config: %w", err)
	}
	if err := os.Rename(tmp, p.configPath); err != nil {
		return fmt.Errorf("leasegate: write config: %w", err)
	}
	return nil
}

// Reload writes c (with the running listen addresses, so the reload does
// not ask for new listeners) and sends SIGHUP, then waits for leasegate to
// log that it reloaded or refused the new configuration. It returns an
// error wrapping ErrReloadRefused when the file was refused.
func (p *Process) Reload(ctx context.Context, c Config) error {
	c.Listen = Listen{GRPC: "127.0.0.1:0", Admin: "127.0.0.1:0", Metrics: "127.0.0.1:0", HTTP: c.Listen.HTTP, Push: c.Listen.Push}
	if err := p.WriteConfig(c); err != nil {
		return err
	}
	return p.SignalReload(ctx)
}

// ErrReloadRefused reports that leasegate kept its old configuration.
var ErrReloadRefused = errors.New("leasegate refused the new configuration")

// SignalReload sends SIGHUP and waits for the "configuration reloaded" or
// "reload refused" log line that follows it.
func (p *Process) SignalReload(ctx context.Context) error {
	mark := p.logs.Mark()
	if err := p.Signal(syscall.SIGHUP); err != nil {
		return err
	}
	e, err := p.WaitLogSince(ctx, mark, func(e LogEntry) bool {
		return e.Msg == "configuration reloaded" || strings.HasPrefix(e.Msg, "reload refused")
	})
	if err != nil {
		return fmt.Errorf("leasegate: no reload log line after SIGHUP: %w", err)
	}
	if e.Msg != "configuration reloaded" {
		return fmt.Errorf("%w: %s", ErrReloadRefused, e.Raw)
	}
	return nil
}

// Signal sends sig to the leasegate process.
func (p *Process) Signal(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("leasegate: signal %v: %w", sig, err)
	}
	return nil
}

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 when killed by a signal).
func (p *Process) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return 0, fmt.Errorf("leasegate: leasegate pid %d still running after %v", p.Pid(), timeout)
	}
	return p.cmd.ProcessState.ExitCode(), nil
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits for a drained exit and returns an error unless
// the exit code is 0. After DefaultStopTimeout it kills the process group.
// Stopping twice is a no-op.
func (p *Process) Stop() error {
	var err error
	p.stopOnce.Do(func() {
		if p.Exited() {
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				err = fmt.Errorf("leasegate: leasegate had exited with code %d", code)
			}
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		code, werr := p.Wait(DefaultStopTimeout)
		if werr != nil {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
			err = werr
			return
		}
		if code != 0 {
			err = fmt.Errorf("leasegate: leasegate exited with code %d after SIGTERM", code)
		}
	})
	return err
}

// Logs is everything the process wrote to stdout and stderr.
func (p *Process) Logs() string { return p.logs.String() }

// LogEntry is one JSON log line; Raw is the whole line.
type LogEntry struct {
	Msg   string          `json:"msg"`
	Level string          `json:"level"`
	Raw   json.RawMessage `json:"-"`
}

// WaitLog waits for a log line (written at any time) that match accepts.
func (p *Process) WaitLog(ctx context.Context, match func(LogEntry) bool) (LogEntry, error) {
	return p.WaitLogSince(ctx, 0, match)
}

// WaitLogSince is WaitLog for lines after mark (a LogMark result).
func (p *Process) WaitLogSince(ctx context.Context, mark int, match func(LogEntry) bool) (LogEntry, error) {
	for {
		lines, changed := p.logs.Since(mark)
		for _, l := range lines {
			mark++
			var e LogEntry
			if json.Unmarshal(l, &e) != nil {
				continue // not a JSON line (a panic trace, a -check message)
			}
			e.Raw = l
			if match(e) {
				return e, nil
			}
		}
		select {
		case <-ctx.Done():
			return LogEntry{}, ctx.Err()
		case <-p.done:
			// Read what the last writes added before giving up.
			if rest, _ := p.logs.Since(mark); len(rest) > 0 {
				continue
			}
			return LogEntry{}, fmt.Errorf("leasegate exited (%v)", p.waitErr)
		case <-changed:
		}
	}
}

// LogMark is the number of log lines so far, for WaitLogSince.
func (p *Process) LogMark() int { return p.logs.Mark() }

func minimalEnv(extra []string) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, extra...)
}

// lineLog keeps the process output as lines and wakes waiters on each one.
type lineLog struct {
	mu      sync.Mutex
	partial []byte
	lines   [][]byte
	changed chan struct{}
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, b...)
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, bytes.Clone(l.partial[:i]))
		l.partial = l.partial[i+1:]
		added = true
	}
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(b), nil
}

// Since returns the lines after the first mark ones and a channel closed
// when more arrive.
func (l *lineLog) Since(mark int) ([][]byte, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if mark > len(l.lines) {
		mark = len(l.lines)
	}
	return l.lines[mark:len(l.lines):len(l.lines)], l.changed
}

func (l *lineLog) Mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, line := range l.lines {
		b.Write(line)
		b.WriteByte('\n')
	}
	b.Write(l.partial)
	return b.String()
}

// RunCLI runs the binary with args to completion (for -version and -check)
// and returns its stdout, stderr and exit code.
func RunCLI(ctx context.Context, bin string, args ...string) (stdout, stderr string, code int, err error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = minimalEnv(nil)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errb.String(), ee.ExitCode(), nil
	}
	if err != nil {
		return out.String(), errb.String(), -1, fmt.Errorf("leasegate: run %s: %w", bin, err)
	}
	return out.String(), errb.String(), 0, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
