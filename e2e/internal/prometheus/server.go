// Package prometheus runs a real Prometheus (Debian's prometheus package)
// for the end-to-end tests: one process on a free loopback port, scraping
// the given targets and evaluating the given rule files at a short
// interval, with a temp dir for its TSDB; and a client for the HTTP API
// calls the tests make (instant queries, alerts, targets).
package prometheus

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrMissing reports that prometheus is not installed.
var ErrMissing = errors.New("prometheus not found: apt-get install -y prometheus (make deps does it)")

// Binary returns the prometheus executable: $LEASEGATE_PROMETHEUS,
// prometheus on PATH, or /usr/bin/prometheus. The error wraps ErrMissing.
func Binary() (string, error) {
	if p := os.Getenv("LEASEGATE_PROMETHEUS"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus", nil
	}
	return "", ErrMissing
}

// Target is one scrape job with its host:port targets.
type Target struct {
	Job   string
	Addrs []string
	Path  string // default /metrics
}

// Options configures Start.
type Options struct {
	// Dir holds prometheus.yml and the TSDB; it must exist (a temp dir).
	Dir     string
	Targets []Target
	// RuleFiles are loaded as rule_files (absolute paths).
	RuleFiles []string
	// Interval is the scrape and rule evaluation interval; default 1s.
	Interval time.Duration
}

// Server is one prometheus process. Methods are safe for concurrent use.
type Server struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
	http *http.Client

	mu  sync.Mutex
	out bytes.Buffer

	stopOnce sync.Once
	stopErr  error
}

// listening is the line Prometheus logs with the address it bound.
var listening = regexp.MustCompile(`msg="Listening on" address=(\S+)`)

// Start writes the configuration, launches prometheus on 127.0.0.1:0 and
// returns once it has logged its address and answers /-/ready. On failure
// nothing is left running and the error carries its log.
func Start(ctx context.Context, o Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if o.Dir == "" {
		return nil, errors.New("prometheus: Options.Dir is empty")
	}
	cfgPath := filepath.Join(o.Dir, "prometheus.yml")
	if err := writeConfig(cfgPath, o); err != nil {
		return nil, err
	}
	s := &Server{done: make(chan struct{}), http: &http.Client{Timeout: 10 * time.Second}}
	s.cmd = exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(o.Dir, "data"),
		"--web.listen-address=127.0.0.1:0",
		"--log.level=info",
	)
	s.cmd.SysProcAttr = sysProcAttr()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	s.cmd.Stdout, s.cmd.Stderr = pw, pw
	if err := s.cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("prometheus: start %s: %w", bin, err)
	}
	pw.Close()
	addr := make(chan string, 1)
	go s.readLog(pr, addr)
	go func() { _ = s.cmd.Wait(); close(s.done) }()

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.waitReady(ctx, addr); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("prometheus: %w\n--- prometheus log ---\n%s", err, s.Log())
	}
	return s, nil
}

func (s *Server) readLog(r *os.File, addr chan<- string) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		s.mu.Lock()
		s.out.WriteString(line)
		s.out.WriteByte('\n')
		s.mu.Unlock()
		if m := listening.FindStringSubmatch(line); m != nil && !sent {
			addr <- m[1]
			sent = true
		}
	}
}

func (s *Server) waitReady(ctx context.Context, addr <-chan string) error {
	select {
	case a := <-addr:
		s.url = "http://" + a
	case <-s.done:
		return errors.New("exited at start")
	case <-ctx.Done():
		return fmt.Errorf("no listening line: %w", ctx.Err())
	}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/-/ready", nil)
		if resp, err := s.http.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return errors.New("exited before becoming ready")
		case <-ctx.Done():
			return fmt.Errorf("/-/ready never answered 200: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func writeConfig(path string, o Options) error {
	iv := o.Interval
	if iv <= 0 {
		iv = time.Second
	}
	type static struct {
		Targets []string `yaml:"targets"`
	}
	type job struct {
		Name          string   `yaml:"job_name"`
		Path          string   `yaml:"metrics_path,omitempty"`
		StaticConfigs []static `yaml:"static_configs"`
	}
	cfg := struct {
		Global struct {
			Scrape   string `yaml:"scrape_interval"`
			Evaluate string `yaml:"evaluation_interval"`
			Timeout  string `yaml:"scrape_timeout"`
		} `yaml:"global"`
		RuleFiles []string `yaml:"rule_files,omitempty"`
		Scrape    []job    `yaml:"scrape_configs"`
	}{RuleFiles: o.RuleFiles}
	cfg.Global.Scrape, cfg.Global.Evaluate, cfg.Global.Timeout = iv.String(), iv.String(), iv.String()
	for _, t := range o.Targets {
		cfg.Scrape = append(cfg.Scrape, job{Name: t.Job, Path: t.Path, StaticConfigs: []static{{t.Addrs}}})
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("prometheus: render config: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("prometheus: write config: %w", err)
	}
	return nil
}

// URL is the base URL of the HTTP API, without trailing slash.
func (s *Server) URL() string { return s.url }

// Log is everything prometheus wrote.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// Stop sends SIGTERM and waits for the exit; after 10 s it kills the
// process group. Stopping twice is a no-op.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
			s.stopErr = errors.New("prometheus: killed after 10 s without exiting on SIGTERM")
		}
	})
	return s.stopErr
}
