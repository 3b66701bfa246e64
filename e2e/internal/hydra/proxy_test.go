package hydra

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestCountingProxy(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path)
	}))
	t.Cleanup(backend.Close)
	proxy, err := NewCountingProxy(backend.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })

	get := func(t *testing.T, path string) (int, string) {
		t.Helper()
		resp, err := http.Get(proxy.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("forwards and counts per path, ignoring the query", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				resp, err := http.Post(proxy.URL()+IntrospectPath+"?x=1", "text/plain", strings.NewReader("token=x"))
				if err == nil {
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
		if code, body := get(t, "/other"); code != http.StatusOK || body != "GET /other" {
			t.Fatalf("GET /other via proxy = %d %q", code, body)
		}
		if got := proxy.Count(IntrospectPath); got != 10 {
			t.Errorf("Count(introspect) = %d, want 10", got)
		}
		if got := proxy.Count("/other"); got != 1 {
			t.Errorf("Count(/other) = %d, want 1", got)
		}
		if got := proxy.Count("/never"); got != 0 {
			t.Errorf("Count(/never) = %d, want 0", got)
		}
		if got := proxy.Total(); got != 11 {
			t.Errorf("Total() = %d, want 11", got)
		}
	})

	t.Run("reset", func(t *testing.T) {
		proxy.Reset()
		if proxy.Total() != 0 || proxy.Count(IntrospectPath) != 0 {
			t.Fatalf("after Reset: total %d, introspect %d", proxy.Total(), proxy.Count(IntrospectPath))
		}
	})

	t.Run("injected failure is counted and not forwarded", func(t *testing.T) {
		proxy.FailWith(http.StatusServiceUnavailable)
		code, body := get(t, "/x")
		proxy.FailWith(0)
		if code != http.StatusServiceUnavailable || strings.Contains(body, "GET /x") {
			t.Fatalf("with FailWith(503): %d %q", code, body)
		}
		if proxy.Count("/x") != 1 {
			t.Fatalf("Count(/x) = %d, want 1", proxy.Count("/x"))
		}
		if code, _ := get(t, "/x"); code != http.StatusOK {
			t.Fatalf("after FailWith(0): %d, want 200", code)
		}
	})
}

func TestNewCountingProxyRejectsBadTarget(t *testing.T) {
	for _, target := range []string{"", "127.0.0.1:4445", "::bad"} {
		t.Run(target, func(t *testing.T) {
			if p, err := NewCountingProxy(target); err == nil {
				_ = p.Close()
				t.Fatalf("NewCountingProxy(%q) succeeded", target)
			}
		})
	}
}
