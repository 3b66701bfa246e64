package authz

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasegate/leasegate/authz/issuer"
)

// Close releases the engine's idle issuer connections: a reload replaces
// the engine, and the old one must not hold sockets to its issuers.
func TestCloseClosesIdleIssuerConnections(t *testing.T) {
	var open atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"active":false}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	env := newEngEnv(t, engOpts{issuer: func(ic *IssuerConfig) {
		ic.Introspection = issuer.IntrospectionConfig{Endpoint: srv.URL, Auth: issuer.AuthNone, Timeout: 2 * time.Second}
	}})
	if d := env.check("GET", "/f", "some-token"); d.Allow {
		t.Fatalf("an inactive token was allowed: %+v", d)
	}
	if open.Load() == 0 {
		t.Fatal("no keep-alive connection to the issuer to begin with")
	}
	env.eng.Close()
	deadline := time.Now().Add(5 * time.Second)
	for open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d issuer connections still open after Close", open.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
