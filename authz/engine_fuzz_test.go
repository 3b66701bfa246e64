package authz

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/leasegate/leasegate/authz/issuer"
	"github.com/leasegate/leasegate/authz/request"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
)

const fuzzJWTIss = "https://jwt.example.org/"

// FuzzEngineCheck drives whole Checks with arbitrary method, host, path,
// tier hint and Authorization values against issuers that never vouch for a
// token: the introspection issuer answers inactive, fails with 500, or says
// the token is someone else's; the JWT issuer publishes no keys. Whatever
// the input, the engine must not panic and must never allow.
func FuzzEngineCheck(f *testing.F) {
	seeds := []struct {
		method, host, path, hint, auth string
		n                              uint8
	}{
		{"GET", "storage.example.org", "/data/atlas/f", "", "Bearer opaque-1", 1},
		{"DELETE", "", "/", "", "Bearer opaque-2", 1},
		{"PUT", "h", "/data/../admin/", "critical", "bearer opaque-3", 1},
		{"PROPFIND", "h", "/data/%2e%2e/x", "read", "BEARER  tok==", 1},
		{"GET", "h", "/x?access_token=abc", "", "", 0},
		{"", "h", "/", "", "Bearer x", 1},
		{"GET", "h", "/", "", "Bearer a,Bearer b", 1},
		{"GET", "h", "/", "", "Basic dXNlcg==,Bearer b", 1},
		{"GET", "h", "/", "", "Bearer a", 2},
		{"GET", "h", "/", "nope", "Bearer \x00", 1},
		{"MOVE", "h", "/data/atlas", "write", "Bearer " + unsignedJWT(f, fuzzJWTIss), 1},
		{"GET", "h", "/data/atlas", "", "Bearer " + unsignedJWT(f, engIss), 1},
		{"GET", "h", "/", "", "Bearer " + unsignedJWT(f, "https://elsewhere/"), 1},
		{"GET", "h", "/", "", "Bearer eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.", 1},
		{"GET", "h", "//data//atlas/./f", "", "Bearer " + strings.Repeat("A", request.MaxBearerTokenBytes+1), 1},
	}
	for _, s := range seeds {
		f.Add(s.method, s.host, s.path, s.hint, s.auth, s.n)
	}

	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"keys":[]}`)
	}))
	f.Cleanup(jwks.Close)
	env := newEngEnv(f, engOpts{
		routes: []policy.RouteConfig{{Prefix: "/data/", Require: policy.ProfileWLCG}, {Prefix: "/admin/", Tier: policy.TierCritical}},
		tiers: func() []policy.TierConfig {
			t := policy.DefaultTiers()
			t[0].StaleIfError = 5 * time.Minute
			return t
		}(),
		issuer: func(ic *IssuerConfig) { ic.BreakerFailures = 3 },
		config: func(c *Config) {
			c.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c.Issuers = append(c.Issuers, IssuerConfig{
				Name: "jwt", Issuer: fuzzJWTIss, Mode: ModeJWTIntrospection, AcceptAnyAudience: true,
				JWT: issuer.JWTConfig{JWKSURI: jwks.URL, FetchTimeout: time.Second},
				Introspection: issuer.IntrospectionConfig{
					Endpoint: c.Issuers[0].Introspection.Endpoint, ClientID: engClientID, ClientSecret: engSecret,
				},
				BreakerFailures: 3, BreakerOpenFor: time.Second,
			})
		},
	})
	env.iss.setFault(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		switch leasecache.KeyOf(r.PostForm.Get("token"))[0] % 3 {
		case 0:
			_, _ = io.WriteString(w, `{"active":false}`)
		case 1:
			http.Error(w, "down", http.StatusInternalServerError)
		default:
			_, _ = io.WriteString(w, `{"active":true,"iss":"https://impostor.example/","sub":"x","scope":"storage.modify:/"}`)
		}
	})

	f.Fuzz(func(t *testing.T, method, host, path, hint, auth string, n uint8) {
		h := engHeaders{}
		switch n % 3 {
		case 1:
			h["authorization"] = []string{auth}
		case 2:
			h["authorization"] = []string{auth, auth}
		}
		// Some time passes between inputs so leases, negative leases and
		// the breaker all change state.
		env.clock.Advance(time.Duration(n) * 100 * time.Millisecond)
		d := env.eng.Check(context.Background(), &Request{Method: method, Host: host, Path: path, TierHint: hint, Headers: h})

		if d.Allow || d.Status == http.StatusOK {
			t.Fatalf("allowed: %+v", d)
		}
		if d.Identity != (Identity{}) || d.Headers != nil || d.StripAuthorization {
			t.Fatalf("denial carries identity: %+v", d)
		}
		switch d.Status {
		case http.StatusServiceUnavailable:
			if d.RetryAfter < time.Second || d.Challenge != "" {
				t.Fatalf("503 without Retry-After or with a challenge: %+v", d)
			}
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
			want := map[int][]string{400: {ErrCodeInvalidRequest}, 401: {"", ErrCodeInvalidToken}, 403: {ErrCodeInsufficientScope}}[d.Status]
			if d.Error != want[0] && (len(want) == 1 || d.Error != want[1]) {
				t.Fatalf("status %d with error code %q", d.Status, d.Error)
			}
			if !strings.HasPrefix(d.Challenge, `Bearer realm="leasegate"`) {
				t.Fatalf("challenge %q", d.Challenge)
			}
			for i := 0; i < len(d.Challenge); i++ {
				if c := d.Challenge[i]; c < 0x20 || c > 0x7e {
					t.Fatalf("challenge has byte %#x: %q", c, d.Challenge)
				}
			}
		default:
			t.Fatalf("status %d: %+v", d.Status, d)
		}
		var body map[string]string
		if err := json.Unmarshal(d.Body(), &body); err != nil || body["error"] == "" {
			t.Fatalf("body %s: %v", d.Body(), err)
		}
		if d.Reason == "" || d.Lease == "" {
			t.Fatalf("decision without reason or lease outcome: %+v", d)
		}
	})
}
