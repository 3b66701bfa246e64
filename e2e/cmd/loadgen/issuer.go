package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

type issuerOptions struct {
	addr     string
	delay    time.Duration
	iss      string
	addrFile string
}

// fakeIssuer is an RFC 7662 introspection endpoint for load tests: tokens
// tok-<digits> are active for an hour from now, anything else is inactive.
// It counts introspection calls; GET /calls returns the count.
type fakeIssuer struct {
	delay time.Duration
	iss   string
	calls atomic.Int64
}

func (f *fakeIssuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/calls" {
		fmt.Fprintln(w, f.calls.Load())
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST an RFC 7662 introspection request", http.StatusMethodNotAllowed)
		return
	}
	f.calls.Add(1)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	tok := r.PostForm.Get("token")
	n, ok := strings.CutPrefix(tok, "tok-")
	if !ok || n == "" || strings.Trim(n, "0123456789") != "" {
		_, _ = w.Write([]byte(`{"active":false}`))
		return
	}
	// Sizes like a real grid token's claims: a 32-byte subject, a 36-byte
	// client id, a 43-byte scope.
	b := make([]byte, 0, 320)
	b = append(b, `{"active":true,"token_type":"Bearer","sub":"subject-`...)
	b = append(b, n...)
	b = append(b, `@example.org","client_id":"leasegate-bench-client-000000000001","scope":"openid storage.read:/ storage.modify:/atlas","exp":`...)
	b = strconv.AppendInt(b, time.Now().Add(time.Hour).Unix(), 10)
	if f.iss != "" {
		b = append(b, `,"iss":`...)
		b = strconv.AppendQuote(b, f.iss)
	}
	b = append(b, '}')
	_, _ = w.Write(b)
}

func serveIssuer(ctx context.Context, o issuerOptions) error {
	lis, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.addr, err)
	}
	f := &fakeIssuer{delay: o.delay, iss: o.iss}
	srv := &http.Server{Handler: f, ReadHeaderTimeout: 5 * time.Second}
	if err := writeAddr(o.addrFile, lis.Addr().String()); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "fake issuer listening on %s (delay %s)\n", lis.Addr(), o.delay)
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	fmt.Fprintf(os.Stderr, "fake issuer answered %d introspection calls\n", f.calls.Load())
	return nil
}
