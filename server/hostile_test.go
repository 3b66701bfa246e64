package server

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/leasegate/leasegate/authz/request"
)

// Hostile CheckRequests over real gRPC: each is denied with the status
// SPEC §3 names, as a CheckResponse (never a gRPC error), and the server
// keeps serving.

func rawRequest(headers ...*corev3.HeaderValue) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{HeaderMap: &corev3.HeaderMap{Headers: headers}},
	}}}
}

func raw(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, RawValue: []byte(v)} }

// manyHeaders is a request with n header fields in total, the token among
// them, in the headers map or (raw) in header_map.
func manyHeaders(n int, token string, useRaw bool) *authv3.CheckRequest {
	if useRaw {
		hs := []*corev3.HeaderValue{raw(":method", "GET"), raw(":path", "/f"), raw(":authority", "h"), raw("authorization", "Bearer "+token)}
		for i := len(hs); i < n; i++ {
			hs = append(hs, raw(fmt.Sprintf("x-h-%d", i), "v"))
		}
		return rawRequest(hs...)
	}
	req := envoyRequest("GET", "/f", token)
	h := req.Attributes.Request.Http.Headers
	for i := 0; len(h) < n; i++ {
		h[fmt.Sprintf("x-h-%d", i)] = "v"
	}
	return req
}

func TestHostileRequests(t *testing.T) {
	fi := newFaultIssuer(t, true)
	fi.set("good", true)
	r := startConfigured(t, faultConfig{endpoint: fi.URL, readWindow: time.Minute}.yaml(), nil)
	waitServing(t, r)

	longPath := "/" + strings.Repeat("p", 64<<10)
	cases := []struct {
		name   string
		req    *authv3.CheckRequest
		status int    // HTTP status to the client
		error  string // RFC 6750 error code in WWW-Authenticate, "" for none
	}{
		{name: "nil request", req: nil, status: 400, error: "invalid_request"},
		{name: "nil attributes", req: &authv3.CheckRequest{}, status: 400, error: "invalid_request"},
		{name: "nil request attributes", req: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}, status: 400, error: "invalid_request"},
		{name: "nil http", req: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}}, status: 400, error: "invalid_request"},
		{name: "empty method", req: func() *authv3.CheckRequest {
			req := envoyRequest("", "/f", "good")
			delete(req.Attributes.Request.Http.Headers, ":method")
			return req
		}(), status: 400, error: "invalid_request"},
		{name: "empty method, raw headers", req: rawRequest(raw(":path", "/f"), raw("authorization", "Bearer good")), status: 400, error: "invalid_request"},
		{name: "1 MiB Authorization", req: envoyRequest("GET", "/f", strings.Repeat("A", 1<<20)), status: 400, error: "invalid_request"},
		{name: "1 MiB Authorization, raw", req: rawRequest(raw(":method", "GET"), raw("authorization", "Bearer "+strings.Repeat("A", 1<<20))), status: 400, error: "invalid_request"},
		{name: "token of 16 KiB + 1", req: envoyRequest("GET", "/f", strings.Repeat("A", request.MaxBearerTokenBytes+1)), status: 400, error: "invalid_request"},
		{name: "token of 16 KiB, unknown to the issuer", req: envoyRequest("GET", "/f", strings.Repeat("B", request.MaxBearerTokenBytes)), status: 401, error: "invalid_token"},
		{name: "10,000 headers", req: manyHeaders(10_000, "good", false), status: 200},
		{name: "10,001 headers", req: manyHeaders(10_001, "good", false), status: 400, error: "invalid_request"},
		{name: "10,000 raw headers", req: manyHeaders(10_000, "good", true), status: 200},
		{name: "10,001 raw headers", req: manyHeaders(10_001, "good", true), status: 400, error: "invalid_request"},
		{name: "non-UTF-8 token", req: rawRequest(raw(":method", "GET"), raw(":path", "/f"), raw("authorization", "Bearer \xff\xfe\x80")), status: 400, error: "invalid_request"},
		{name: "non-UTF-8 scheme", req: rawRequest(raw(":method", "GET"), raw(":path", "/f"), raw("authorization", "\xffearer good")), status: 401},
		{name: "non-UTF-8 method, path and header", req: rawRequest(raw(":method", "G\xffT"), raw(":path", "/\xff\xfe"), raw(":authority", "h"),
			raw("x-junk", "\xc3\x28"), raw("authorization", "Bearer good")), status: 200},
		// Not a host name: it could not be compared with a host: rule (SPEC §1).
		{name: "non-UTF-8 host", req: rawRequest(raw(":method", "GET"), raw(":path", "/f"), raw(":authority", "h\xff"),
			raw("authorization", "Bearer good")), status: 400, error: "invalid_request"},
		{name: "NUL and CRLF in a raw value", req: rawRequest(raw(":method", "GET"), raw(":path", "/f"), raw("authorization", "Bearer go\x00od\r\n")), status: 400, error: "invalid_request"},
		{name: "64 KiB path, no token", req: envoyRequest("GET", longPath, ""), status: 401},
		{name: "64 KiB path, good token", req: envoyRequest("GET", longPath, "good"), status: 200},
		{name: "64 KiB path, raw", req: rawRequest(raw(":method", "GET"), raw(":path", longPath), raw("authorization", "Bearer good")), status: 200},
		{name: "two credentials", req: envoyRequest("GET", "/f", "good,Bearer other"), status: 400, error: "invalid_request"},
		// A backend honouring the override would run a DELETE on a read's lease.
		{name: "GET with a method override, raw", req: rawRequest(raw(":method", "GET"), raw(":path", "/f"), raw("X-HTTP-Method-Override", "DELETE"),
			raw("authorization", "Bearer good")), status: 400, error: "invalid_request"},
		{name: "method override naming its own method, raw", req: rawRequest(raw(":method", "GET"), raw(":path", "/f"), raw("X-HTTP-Method-Override", "GET"),
			raw("authorization", "Bearer good")), status: 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := check(r, tc.req)
			if o.err != nil {
				t.Fatalf("gRPC error %v: Envoy would apply failure_mode_allow", o.err)
			}
			if got := o.httpStatus(); got != tc.status {
				t.Fatalf("status %d, want %d: %v", got, tc.status, o)
			}
			wantCode := map[int]codes.Code{200: codes.OK, 400: codes.Unauthenticated, 401: codes.Unauthenticated}[tc.status]
			if o.code() != wantCode {
				t.Errorf("gRPC status %v, want %v", o.code(), wantCode)
			}
			if tc.status == 200 {
				return
			}
			challenge := o.deniedHeader("www-authenticate")
			if !strings.HasPrefix(challenge, `Bearer realm="leasegate"`) {
				t.Errorf("WWW-Authenticate %q", challenge)
			}
			if tc.error != "" && !strings.Contains(challenge, `error="`+tc.error+`"`) {
				t.Errorf("WWW-Authenticate %q, want error=%q", challenge, tc.error)
			}
			if tc.error == "" && strings.Contains(challenge, "error=") {
				t.Errorf("WWW-Authenticate %q, want no error code", challenge)
			}
			if ct := o.deniedHeader("content-type"); ct != "application/json" {
				t.Errorf("content-type %q", ct)
			}
			if len(o.resp.GetDeniedResponse().GetBody()) > 512 {
				t.Errorf("denial body of %d bytes echoes the input", len(o.resp.GetDeniedResponse().GetBody()))
			}
		})
	}

	// Still healthy, and still deciding.
	hc := healthpb.NewHealthClient(r.conn)
	if resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health after hostile requests: %v %v", resp, err)
	}
	if o := check(r, envoyRequest("GET", "/f", "good")); o.err != nil || o.code() != codes.OK {
		t.Errorf("good request after hostile ones: %v", o)
	}
	logs := r.logs.String()
	if strings.Contains(logs, "panic") {
		t.Errorf("a hostile request panicked:\n%s", grepLines(logs, "panic"))
	}
	if !strings.Contains(logs, `"msg":"denied"`) || !strings.Contains(logs, `"reason":"malformed_request"`) {
		t.Errorf("no info log line for malformed requests:\n%.2000s", logs)
	}
}

// sendAll sends one GET per token from workers goroutines.
func sendAll(r *running, tokens []string, workers int) (bad []outcome) {
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(tokens) {
					return
				}
				o := check(r, envoyRequest("GET", "/f", tokens[i]))
				if o.err != nil || o.httpStatus() != 401 {
					mu.Lock()
					bad = append(bad, o)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return bad
}

// A flood of distinct garbage tokens reaches the issuer at most once per
// token, and good leases survive it.
func TestGarbageTokenFlood(t *testing.T) {
	const workers = 16
	flood := 10_000
	if testing.Short() {
		flood = 2_000
	}
	fi := newFaultIssuer(t, true)
	goods := []string{"good-a", "good-b", "good-c"}
	for _, g := range goods {
		fi.set(g, true)
	}
	// negative_ttl outlasts the test; 16 MiB gives negative leases 2 MiB.
	r := startConfigured(t, faultConfig{endpoint: fi.URL, readWindow: 10 * time.Minute, negTTL: 5 * time.Minute, memMB: 16, timeout: loadTolerantTimeout}.yaml(), nil)
	waitServing(t, r)
	for _, g := range goods {
		if o := check(r, envoyRequest("GET", "/f", g)); o.err != nil || o.code() != codes.OK {
			t.Fatalf("good token: %v", o)
		}
	}

	tokens := make([]string, flood)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("garbage.%06d-%x~", i, i*7919) // b64token-valid, unknown to the issuer
	}
	start := time.Now()
	if bad := sendAll(r, tokens, workers); len(bad) > 0 {
		t.Fatalf("%d garbage tokens not answered 401, e.g. %v", len(bad), bad[0])
	}
	t.Logf("%d garbage tokens in %v", flood, time.Since(start))
	counts := fi.tokenCounts()
	for _, tok := range tokens {
		if n := counts[tok]; n != 1 {
			t.Fatalf("token %s reached the issuer %d times, want once", tok, n)
		}
	}

	// Again: every one is a negative lease now, the issuer sees none.
	calls := fi.calls.Load()
	if bad := sendAll(r, tokens[:flood/5], workers); len(bad) > 0 {
		t.Fatalf("%d repeated garbage tokens not answered 401, e.g. %v", len(bad), bad[0])
	}
	if got := fi.calls.Load() - calls; got != 0 {
		t.Errorf("repeated garbage tokens reached the issuer %d times within negative_ttl", got)
	}
	if o := check(r, envoyRequest("GET", "/f", tokens[0])); o.lease() != "negative" {
		t.Errorf("repeated garbage token: %v, want lease=negative", o)
	}

	// Good leases were not evicted by the flood: still hits.
	calls = fi.calls.Load()
	for _, g := range goods {
		o := check(r, envoyRequest("GET", "/f", g))
		if o.err != nil || o.code() != codes.OK || o.lease() != "hit" {
			t.Errorf("good token %s after the flood: %v, want OK lease=hit", g, o)
		}
	}
	if got := fi.calls.Load() - calls; got != 0 {
		t.Errorf("good tokens reached the issuer %d times after the flood", got)
	}
}

// The same garbage token, concurrently and repeatedly, reaches the issuer
// once per negative_ttl: any two calls for it are at least negative_ttl
// apart (the negative lease is stored after the first call arrived, and
// lasts negative_ttl from then), and after negative_ttl it is asked again.
func TestRepeatedGarbageTokenOncePerNegativeTTL(t *testing.T) {
	const negTTL = 600 * time.Millisecond
	fi := newFaultIssuer(t, true)
	r := startConfigured(t, faultConfig{endpoint: fi.URL, negTTL: negTTL}.yaml(), nil)
	waitServing(t, r)

	const tok = "the-same-garbage"
	same := make([]string, 200)
	for i := range same {
		same[i] = tok
	}
	// Bursts of the same token until the issuer has been asked three times,
	// so at least two negative_ttl periods pass.
	deadline := time.Now().Add(10 * time.Second)
	for len(fi.arrivalsOf(tok)) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("issuer asked %d times in 10s", len(fi.arrivalsOf(tok)))
		}
		if bad := sendAll(r, same, 16); len(bad) > 0 {
			t.Fatalf("%d not answered 401, e.g. %v", len(bad), bad[0])
		}
	}
	at := fi.arrivalsOf(tok)
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < negTTL {
			t.Errorf("calls %d and %d for one garbage token %v apart, within negative_ttl %v", i, i+1, gap, negTTL)
		}
	}
}
