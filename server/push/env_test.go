package push

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/leasegate/leasegate/internal/testclock"
	"github.com/leasegate/leasegate/leasecache"
)

const (
	testClientID = "storage-portal"
	testAudience = "https://leasegate.example.org"
	testKID      = "push-key-1"
)

// signer is a test issuer's signing key, published at its JWKS endpoint.
type signer struct{ priv jwk.Key }

func newSigner(t testing.TB, kid string) signer {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, kid)
	_ = k.Set(jwk.AlgorithmKey, jwa.ES256)
	return signer{priv: k}
}

// sign makes a compact JWS over claims; hdr sets protected header
// members (typ among them: none unless given).
func (s signer) sign(t testing.TB, claims map[string]any, hdr map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	for k, v := range hdr {
		if err := h.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, s.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// recorder is the test Revoker: it keeps every call and fails while fail
// is set, as a fleet whose store is down does.
type recorder struct {
	mu    sync.Mutex
	calls []revokeCall
	fail  bool
}

type revokeCall struct {
	source string
	names  []leasecache.Name
}

func (r *recorder) Revoke(_ context.Context, source string, names []leasecache.Name) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, revokeCall{source, append([]leasecache.Name(nil), names...)})
	if r.fail {
		return errors.New("fleet store unavailable")
	}
	return nil
}

func (r *recorder) taken() []revokeCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]revokeCall(nil), r.calls...)
}

// env is one issuer publishing its keys through a real JWKS endpoint
// (httptest) and the receivers trusting it.
type env struct {
	key     signer
	jwks    *httptest.Server
	iss     string
	clock   *testclock.Clock
	rec     *recorder
	reg     *prometheus.Registry
	metrics *Metrics
	replay  *Replay
	rcv     *Receivers
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{key: newSigner(t, testKID), clock: testclock.New(time.Date(2031, 3, 1, 9, 0, 0, 0, time.UTC)),
		rec: &recorder{}, reg: prometheus.NewRegistry(), replay: NewReplay(0)}
	pub, err := e.key.priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	e.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(e.jwks.Close)
	e.iss = e.jwks.URL + "/idp"
	if e.metrics, err = NewMetrics(e.reg); err != nil {
		t.Fatal(err)
	}
	e.rcv, err = New(context.Background(), Config{
		Issuers: []IssuerConfig{
			{Name: "idp", Issuer: e.iss, JWKSURI: e.jwks.URL + "/jwks", ClockSkew: time.Minute, ClientIDs: []string{"other-client", testClientID}, Audience: testAudience},
			{Name: "quiet", Issuer: e.jwks.URL + "/quiet", JWKSURI: e.jwks.URL + "/jwks"}, // pushes nothing
		},
		Revoker: e.rec, Replay: e.replay, LeaseMax: 10 * time.Minute, Now: e.clock.Now, Metrics: e.metrics,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.rcv.Close)
	return e
}

// logoutClaims are valid logout token claims (Hydra's shape plus sub),
// changed by mod.
func (e *env) logoutClaims(mod func(map[string]any)) map[string]any {
	c := map[string]any{
		"iss":    e.iss,
		"aud":    []string{testClientID},
		"iat":    e.clock.Now().Unix(),
		"jti":    "jti-" + e.clock.Now().Format(time.RFC3339Nano),
		"events": map[string]any{eventBackchannelLogout: map[string]any{}},
		"sid":    "08a5019c-17e1-4977-8f42-65a12843ea02",
		"sub":    "248289761001",
	}
	if mod != nil {
		mod(c)
	}
	return c
}

// answer is a receiver's response.
type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func (e *env) post(t testing.TB, path, contentType, body string) answer {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	e.rcv.ServeHTTP(w, req)
	a := answer{status: w.Code, header: w.Header()}
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &a.body); err != nil {
			t.Fatalf("answer body %q is not JSON: %v", w.Body.String(), err)
		}
	}
	return a
}

func (e *env) logout(t *testing.T, tok string) answer {
	t.Helper()
	return e.post(t, PathBackchannel, "application/x-www-form-urlencoded", url.Values{"logout_token": {tok}}.Encode())
}

func (e *env) requests(source, outcome string) float64 {
	return counter(e.metrics.requests.WithLabelValues(source, outcome))
}

func (e *env) events(source, event string) float64 {
	return counter(e.metrics.events.WithLabelValues(source, event))
}

// counter reads a counter (prometheus/testutil needs a module the root
// go.sum does not carry).
func counter(c prometheus.Counter) float64 {
	var pb dto.Metric
	if err := c.Write(&pb); err != nil {
		panic(err)
	}
	return pb.GetCounter().GetValue()
}

// assertRefused checks a refusal: status, the error member (error or err)
// and a description member (error_description or description) containing
// desc.
func assertRefused(t *testing.T, a answer, status int, errKey, code, descKey, desc string) {
	t.Helper()
	got, _ := a.body[descKey].(string)
	if a.status != status || a.body[errKey] != code || !strings.Contains(got, desc) {
		t.Fatalf("answer %d %v, want %d with %s %q and %s containing %q", a.status, a.body, status, errKey, code, descKey, desc)
	}
	if a.header.Get("Content-Type") != "application/json" || a.header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", a.header)
	}
}

// unsigned is an alg none JWT of claims.
func unsigned(claims map[string]any) string {
	h, _ := json.Marshal(map[string]any{"alg": "none", "kid": testKID})
	p, _ := json.Marshal(claims)
	return b64(h) + "." + b64(p) + "."
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newRequest(method, path string) *http.Request {
	return httptest.NewRequest(method, path, strings.NewReader(""))
}

func serve(e *env, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.rcv.ServeHTTP(w, req)
	return w
}

// held is how many jti r holds.
func (r *Replay) held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}
