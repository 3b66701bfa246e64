package hydra

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// CountingProxy is a reverse proxy on a free loopback port that forwards to
// one target (typically Hydra's admin port) and counts requests per path,
// so tests can assert how often leasegate called the issuer. It can also
// answer every request with a fixed failure status to simulate an issuer
// outage without stopping Hydra.
type CountingProxy struct {
	srv    *http.Server
	ln     net.Listener
	counts sync.Map // path → *atomic.Int64
	total  atomic.Int64
	fail   atomic.Int32 // 0: forward; otherwise the status to answer with
	closed sync.Once
}

// NewCountingProxy starts a proxy in front of target, a base URL such as
// (*Server).AdminURL(). Close it when done.
func NewCountingProxy(target string) (*CountingProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("counting proxy: target %q: %w", target, err)
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("counting proxy: target %q is not an absolute URL", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("counting proxy: %w", err)
	}
	p := &CountingProxy{ln: ln}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.SetXForwarded()
		},
	}
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.counter(r.URL.Path).Add(1)
			p.total.Add(1)
			if code := p.fail.Load(); code != 0 {
				http.Error(w, "counting proxy: injected failure", int(code))
				return
			}
			rp.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's base URL, without trailing slash; append the path,
// e.g. p.URL() + IntrospectPath.
func (p *CountingProxy) URL() string { return "http://" + p.ln.Addr().String() }

// Count returns how many requests for path (exact, without query) arrived.
func (p *CountingProxy) Count(path string) int64 {
	if c, ok := p.counts.Load(path); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

// Total returns how many requests arrived for any path.
func (p *CountingProxy) Total() int64 { return p.total.Load() }

// Reset sets every count to zero.
func (p *CountingProxy) Reset() {
	p.counts.Range(func(_, c any) bool {
		c.(*atomic.Int64).Store(0)
		return true
	})
	p.total.Store(0)
}

// FailWith makes the proxy answer every request with status (still
// counting it) instead of forwarding; 0 restores forwarding.
func (p *CountingProxy) FailWith(status int) { p.fail.Store(int32(status)) }

// Close stops the proxy and closes its connections.
func (p *CountingProxy) Close() error {
	var err error
	p.closed.Do(func() {
		if err = p.srv.Close(); errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	})
	return err
}

func (p *CountingProxy) counter(path string) *atomic.Int64 {
	if c, ok := p.counts.Load(path); ok {
		return c.(*atomic.Int64)
	}
	c, _ := p.counts.LoadOrStore(path, new(atomic.Int64))
	return c.(*atomic.Int64)
}
