package issuer

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const testOpaqueToken = "ory_at_Zx81qQ-opaque.secretpart"

// introspectRecord is what the fake issuer saw of one request.
type introspectRecord struct {
	method, contentType, accept string
	authorization               string
	rawQuery                    string
	form                        url.Values
}

// fakeIntrospectionIssuer serves handler and records every request.
type fakeIntrospectionIssuer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []introspectRecord
}

func newFakeIntrospectionIssuer(t *testing.T, handler http.HandlerFunc) *fakeIntrospectionIssuer {
	t.Helper()
	f := &fakeIntrospectionIssuer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		f.mu.Lock()
		f.seen = append(f.seen, introspectRecord{
			method:        r.Method,
			contentType:   r.Header.Get("Content-Type"),
			accept:        r.Header.Get("Accept"),
			authorization: r.Header.Get("Authorization"),
			rawQuery:      r.URL.RawQuery,
			form:          form,
		})
		f.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeIntrospectionIssuer) requests() []introspectRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func answer(status int, body []byte, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}
}

func TestIntrospect(t *testing.T) {
	exp2030 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		cfg        func(*IntrospectionConfig)
		wantErr    error         // sentinel; nil means success
		wantMsg    string        // substring of the error text
		wantStatus int           // IssuerError.Status when wantErr is ErrIssuerUnavailable
		wantRetry  time.Duration // IssuerError.RetryAfter, when not 0
		check      func(*testing.T, Claims)
	}{
		{
			name:    "active with all claims, aud array",
			handler: answer(200, readFixture(t, "introspect_active.json")),
			check: func(t *testing.T, c Claims) {
				want := Claims{
					Active:    true,
					Issuer:    "https://issuer.example.org/",
					Subject:   "alice",
					ClientID:  "storage-client",
					Scope:     "storage.read:/ storage.create:/home/alice",
					Audience:  []string{"https://storage.example.org", "https://other.example.org"},
					Expiry:    exp2030,
					IssuedAt:  exp2030.Add(-time.Hour),
					NotBefore: exp2030.Add(-time.Hour - 500*time.Millisecond),
				}
				assertClaims(t, c, want)
			},
		},
		{
			name:    "active with aud as a string",
			handler: answer(200, readFixture(t, "introspect_active_aud_string.json")),
			check: func(t *testing.T, c Claims) {
				assertClaims(t, c, Claims{Active: true, Subject: "bob", Audience: []string{"https://storage.example.org"}, Expiry: exp2030})
			},
		},
		{
			name:    "inactive",
			handler: answer(200, readFixture(t, "introspect_inactive.json")),
			check: func(t *testing.T, c Claims) {
				assertClaims(t, c, Claims{})
			},
		},
		{
			name:    "inactive ignores other members",
			handler: answer(200, []byte(`{"active":false,"exp":"soon","aud":7}`)),
			check:   func(t *testing.T, c Claims) { assertClaims(t, c, Claims{}) },
		},
		{
			name:       "active as string true is malformed",
			handler:    answer(200, []byte(`{"active":"true","sub":"x"}`)),
			wantErr:    ErrIssuerUnavailable,
			wantMsg:    "malformed answer",
			wantStatus: 200,
		},
		{
			name:       "active missing is malformed",
			handler:    answer(200, []byte(`{"sub":"x","exp":1893456000}`)),
			wantErr:    ErrIssuerUnavailable,
			wantMsg:    "malformed answer",
			wantStatus: 200,
		},
		{
			name:       "active null is malformed",
			handler:    answer(200, []byte(`{"active":null}`)),
			wantErr:    ErrIssuerUnavailable,
			wantMsg:    "malformed answer",
			wantStatus: 200,
		},
		{
			name:       "member names are case-sensitive",
			handler:    answer(200, []byte(`{"Active":true}`)),
			wantErr:    ErrIssuerUnavailable,
			wantMsg:    "malformed answer",
			wantStatus: 200,
		},
		{
			name:       "answer is an array",
			handler:    answer(200, []byte(`[{"active":true}]`)),
			wantErr:    ErrIssuerUnavailable,
			wantMsg:    "malformed answer",
			wantStatus: 200,
		},
		{
			name:       "exp as a string is malformed",
			handler:    answer(200, []byte(`{"active":true,"exp":"1893456000"}`)),
			wantErr:    ErrIssuerUnavailable,
			wantMsg:    `"exp" is not a number`,
			wantStatus: 200,
		},
		{
			name:       "aud array with a number is malformed",
			handler:    answer(200, []byte(`{"active":true,"aud":["a",1]}`)),
			wantErr:    ErrIssuerUnavailable,
			wantMsg:    `"aud"`,
			wantStatus: 200,
		},
		{
			name:       "HTML error page with 200",
			handler:    answer(200, readFixture(t, "introspect_error_page.html"), "Content-Type", "text/html"),
			wantErr:    ErrIssuerUnavailable,
			wantMsg:    "malformed answer",
			wantStatus: 200,
		},
		{
			name:       "500",
			handler:    answer(500, []byte(`{"error":"server_error"}`)),
			wantErr:    ErrIssuerUnavailable,
			wantMsg:    "HTTP 500",
			wantStatus: 500,
		},
		{
			name:       "429",
			handler:    answer(429, nil, "Retry-After", "7"),
			wantErr:    ErrIssuerUnavailable,
			wantMsg:    "rate limiting",
			wantStatus: 429,
			wantRetry:  7 * time.Second,
		},
		{
			// Counted from the answer's Date, whatever our clock says.
			name:       "429 with an HTTP-date Retry-After",
			handler:    answer(429, nil, "Date", "Sun, 06 Nov 1994 08:49:37 GMT", "Retry-After", "Sun, 06 Nov 1994 08:50:07 GMT"),
			wantErr:    ErrIssuerUnavailable,
			wantMsg:    "rate limiting",
			wantStatus: 429,
			wantRetry:  30 * time.Second,
		},
		{
			name:       "404",
			handler:    answer(404, []byte("not found")),
			wantErr:    ErrIssuerUnavailable,
			wantMsg:    "HTTP 404",
			wantStatus: 404,
		},
		{
			name: "wrong client secret: 401",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if _, pass, _ := r.BasicAuth(); pass != "right" {
					w.Header().Set("WWW-Authenticate", `Basic realm="issuer"`)
					answer(401, []byte(`{"error":"invalid_client"}`))(w, r)
					return
				}
				answer(200, []byte(`{"active":true}`))(w, r)
			},
			wantErr:    ErrIssuerUnavailable,
			wantMsg:    "issuer rejected our client credentials (HTTP 401)",
			wantStatus: 401,
		},
		{
			name:       "403",
			handler:    answer(403, nil),
			wantErr:    ErrIssuerUnavailable,
			wantMsg:    "client credentials (HTTP 403)",
			wantStatus: 403,
		},
		{
			name:       "body over the cap",
			handler:    answer(200, []byte(`{"active":true,"pad":"`+strings.Repeat("x", 2048)+`"}`)),
			cfg:        func(c *IntrospectionConfig) { c.MaxBodyBytes = 1024 },
			wantErr:    ErrIssuerUnavailable,
			wantMsg:    "exceeds 1024 bytes",
			wantStatus: 200,
		},
		{
			name:    "body exactly at the cap",
			handler: answer(200, []byte(`{"active":true,"pad":"`+strings.Repeat("x", 1024-len(`{"active":true,"pad":""}`))+`"}`)),
			cfg:     func(c *IntrospectionConfig) { c.MaxBodyBytes = 1024 },
			check:   func(t *testing.T, c Claims) { assertClaims(t, c, Claims{Active: true}) },
		},
		{
			name:    "iss mismatch",
			handler: answer(200, []byte(`{"active":true,"iss":"https://evil.example.org/"}`)),
			cfg:     func(c *IntrospectionConfig) { c.ExpectedIssuer = "https://issuer.example.org/" },
			wantErr: ErrInvalidToken,
			wantMsg: "token issuer not accepted",
		},
		{
			name:    "iss match",
			handler: answer(200, []byte(`{"active":true,"iss":"https://issuer.example.org/"}`)),
			cfg:     func(c *IntrospectionConfig) { c.ExpectedIssuer = "https://issuer.example.org/" },
			check: func(t *testing.T, c Claims) {
				assertClaims(t, c, Claims{Active: true, Issuer: "https://issuer.example.org/"})
			},
		},
		{
			// ORY Hydra v2.3.0 (oauth2/handler.go introspectOAuth2Token):
			// token_type is always "Bearer", token_use is fosite's
			// "access_token" or "refresh_token".
			name:    "Hydra access token",
			handler: answer(200, []byte(`{"active":true,"sub":"alice","token_type":"Bearer","token_use":"access_token"}`)),
			check:   func(t *testing.T, c Claims) { assertClaims(t, c, Claims{Active: true, Subject: "alice"}) },
		},
		{
			name:    "Hydra refresh token is not an access token",
			handler: answer(200, []byte(`{"active":true,"sub":"alice","scope":"offline_access","token_type":"Bearer","token_use":"refresh_token"}`)),
			wantErr: ErrInvalidToken,
			wantMsg: "token is not an access token",
		},
		{
			name:    "token_use of a non-string type is malformed",
			handler: answer(200, []byte(`{"active":true,"token_use":1}`)),
			wantErr: ErrIssuerUnavailable, wantMsg: "malformed answer", wantStatus: 200,
		},
		{
			name:    "audience not accepted",
			handler: answer(200, []byte(`{"active":true,"aud":["https://other.example.org"]}`)),
			cfg:     func(c *IntrospectionConfig) { c.Audiences = []string{"https://storage.example.org"} },
			wantErr: ErrInvalidToken,
			wantMsg: "audience not accepted",
		},
		{
			name:    "WLCG any audience with AcceptWLCGAny",
			handler: answer(200, []byte(`{"active":true,"aud":"`+WLCGAnyAudience+`"}`)),
			cfg: func(c *IntrospectionConfig) {
				c.Audiences, c.AcceptWLCGAny = []string{"https://storage.example.org"}, true
			},
			check: func(t *testing.T, c Claims) {
				assertClaims(t, c, Claims{Active: true, Audience: []string{WLCGAnyAudience}})
			},
		},
		{
			name:    "iss absent with an expected issuer",
			handler: answer(200, []byte(`{"active":true}`)),
			cfg:     func(c *IntrospectionConfig) { c.ExpectedIssuer = "https://issuer.example.org/" },
			check:   func(t *testing.T, c Claims) { assertClaims(t, c, Claims{Active: true}) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeIntrospectionIssuer(t, tc.handler)
			cfg := IntrospectionConfig{
				Name:         "test",
				Endpoint:     srv.URL + "/introspect",
				ClientID:     "leasegate",
				ClientSecret: "wrong",
				Timeout:      2 * time.Second,
			}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			in, err := NewIntrospector(cfg)
			if err != nil {
				t.Fatal(err)
			}
			claims, err := in.Introspect(context.Background(), testOpaqueToken)
			assertIssuerOutcome(t, err, tc.wantErr, tc.wantMsg)
			if tc.wantErr == nil && tc.check != nil {
				tc.check(t, claims)
			}
			var ie *IssuerError
			if tc.wantErr == ErrIssuerUnavailable && errors.As(err, &ie) && ie.Status != tc.wantStatus {
				t.Errorf("IssuerError.Status = %d, want %d", ie.Status, tc.wantStatus)
			}
			if tc.wantRetry != 0 && (ie == nil || ie.RetryAfter != tc.wantRetry) {
				t.Errorf("RetryAfter not taken from the answer: %+v, want %s", ie, tc.wantRetry)
			}
			for _, r := range srv.requests() {
				assertIntrospectionRequest(t, r)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2031, 5, 1, 12, 0, 0, 0, time.UTC)
	date := func(t time.Time) string { return t.Format(http.TimeFormat) }
	tests := []struct {
		name       string
		retryAfter string
		date       string // the answer's Date header, "" when absent
		want       time.Duration
	}{
		{name: "absent", want: 0},
		{name: "delay-seconds", retryAfter: "7", want: 7 * time.Second},
		{name: "delay-seconds with spaces", retryAfter: " 30 ", want: 30 * time.Second},
		{name: "zero", retryAfter: "0", want: 0},
		{name: "negative", retryAfter: "-5", want: 0},
		{name: "a day", retryAfter: "86400", want: 24 * time.Hour},
		{name: "over a day", retryAfter: "86401", want: 0},
		{name: "overflowing digits", retryAfter: "99999999999999999999", want: 0},
		{name: "fraction", retryAfter: "1.5", want: 0},
		{name: "garbage", retryAfter: "soon", want: 0},
		{name: "HTTP-date, no Date: from now", retryAfter: date(now.Add(2 * time.Minute)), want: 2 * time.Minute},
		{name: "HTTP-date from the answer's Date", retryAfter: date(now.Add(time.Hour + 30*time.Second)), date: date(now.Add(time.Hour)), want: 30 * time.Second},
		{name: "HTTP-date, unreadable Date: from now", retryAfter: date(now.Add(time.Minute)), date: "yesterday", want: time.Minute},
		{name: "HTTP-date in RFC 850 form", retryAfter: "Thursday, 01-May-31 12:00:45 GMT", want: 45 * time.Second},
		{name: "HTTP-date in asctime form", retryAfter: "Thu May  1 12:00:45 2031", want: 45 * time.Second},
		{name: "HTTP-date in the past", retryAfter: date(now.Add(-time.Minute)), want: 0},
		{name: "HTTP-date equal to Date", retryAfter: date(now), date: date(now), want: 0},
		{name: "HTTP-date over a day ahead", retryAfter: date(now.Add(25 * time.Hour)), want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.retryAfter != "" {
				h.Set("Retry-After", tc.retryAfter)
			}
			if tc.date != "" {
				h.Set("Date", tc.date)
			}
			if got := retryAfter(h, now); got != tc.want {
				t.Fatalf("retryAfter(%q, Date %q) = %s, want %s", tc.retryAfter, tc.date, got, tc.want)
			}
		})
	}
}

// assertIssuerOutcome checks the error against a sentinel and a message, and
// that the error text never carries the token.
func assertIssuerOutcome(t *testing.T, err, wantErr error, wantMsg string) {
	t.Helper()
	if wantErr == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, wantErr) {
		t.Fatalf("error = %v, want errors.Is %v", err, wantErr)
	}
	if other := map[error]error{ErrInvalidToken: ErrIssuerUnavailable, ErrIssuerUnavailable: ErrInvalidToken}[wantErr]; errors.Is(err, other) {
		t.Errorf("error %v is both %v and %v", err, wantErr, other)
	}
	if !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("error %q does not mention %q", err, wantMsg)
	}
	if strings.Contains(err.Error(), testOpaqueToken) {
		t.Errorf("error text contains the token: %q", err)
	}
}

func assertIntrospectionRequest(t *testing.T, r introspectRecord) {
	t.Helper()
	if r.method != http.MethodPost {
		t.Errorf("method = %s, want POST", r.method)
	}
	if r.contentType != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", r.contentType)
	}
	if r.accept != "application/json" {
		t.Errorf("Accept = %q", r.accept)
	}
	if got := r.form.Get("token"); got != testOpaqueToken {
		t.Errorf("form token = %q, want the token", got)
	}
	if got := r.form.Get("token_type_hint"); got != "access_token" {
		t.Errorf("token_type_hint = %q", got)
	}
	if r.rawQuery != "" {
		t.Errorf("query string %q: the token belongs in the body only", r.rawQuery)
	}
	if strings.Contains(r.authorization, testOpaqueToken) {
		t.Errorf("token leaked into Authorization")
	}
}

func assertClaims(t *testing.T, got, want Claims) {
	t.Helper()
	if got.Active != want.Active || got.Issuer != want.Issuer || got.Subject != want.Subject ||
		got.ClientID != want.ClientID || got.Scope != want.Scope || got.WLCGVersion != want.WLCGVersion ||
		!slices.Equal(got.Audience, want.Audience) || !got.Expiry.Equal(want.Expiry) ||
		!got.IssuedAt.Equal(want.IssuedAt) || !got.NotBefore.Equal(want.NotBefore) {
		t.Errorf("claims mismatch\n got: %+v\nwant: %+v", got, want)
	}
}

func TestIntrospectRedirectNotFollowed(t *testing.T) {
	target := newFakeIntrospectionIssuer(t, answer(200, []byte(`{"active":true}`)))
	srv := newFakeIntrospectionIssuer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/introspect", http.StatusFound)
	})
	in, err := NewIntrospector(IntrospectionConfig{Name: "test", Endpoint: srv.URL, Auth: AuthNone})
	if err != nil {
		t.Fatal(err)
	}
	_, err = in.Introspect(context.Background(), testOpaqueToken)
	assertIssuerOutcome(t, err, ErrIssuerUnavailable, "redirect (HTTP 302)")
	if n := len(target.requests()); n != 0 {
		t.Errorf("redirect target got %d requests, want 0", n)
	}
}

func TestIntrospectTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := newFakeIntrospectionIssuer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release) // before srv.Close (cleanup) so the handler returns
	const timeout = 50 * time.Millisecond
	in, err := NewIntrospector(IntrospectionConfig{Name: "test", Endpoint: srv.URL, Auth: AuthNone, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = in.Introspect(context.Background(), testOpaqueToken)
	elapsed := time.Since(start)
	assertIssuerOutcome(t, err, ErrIssuerUnavailable, "no answer in time")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cause should be context.DeadlineExceeded: %v", err)
	}
	if elapsed > timeout+500*time.Millisecond {
		t.Errorf("Introspect took %s with a %s timeout", elapsed, timeout)
	}
}

func TestIntrospectCallerContextCancelled(t *testing.T) {
	srv := newFakeIntrospectionIssuer(t, answer(200, []byte(`{"active":true}`)))
	in, err := NewIntrospector(IntrospectionConfig{Name: "test", Endpoint: srv.URL, Auth: AuthNone})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = in.Introspect(ctx, testOpaqueToken)
	if !errors.Is(err, ErrIssuerUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want ErrIssuerUnavailable wrapping context.Canceled", err)
	}
}

func TestIntrospectClientAuth(t *testing.T) {
	const trickyID = "client:id%+ x"
	const trickySecret = "s3cr:et%2F+ /="
	tests := []struct {
		name         string
		auth         string
		id, secret   string
		wantRawBasic string // user:pass as sent, before form-decoding; "" = no Authorization
		wantFormID   string
		wantFormSec  string
	}{
		{
			name: "client_secret_basic default encodes id and secret",
			auth: "", id: trickyID, secret: trickySecret,
			wantRawBasic: "client%3Aid%25%2B+x:s3cr%3Aet%252F%2B+%2F%3D",
		},
		{
			name: "client_secret_basic explicit",
			auth: AuthClientSecretBasic, id: "leasegate", secret: "plain",
			wantRawBasic: "leasegate:plain",
		},
		{
			name: "client_secret_post",
			auth: AuthClientSecretPost, id: trickyID, secret: trickySecret,
			wantFormID: trickyID, wantFormSec: trickySecret,
		},
		{
			name: "none sends no credentials",
			auth: AuthNone,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeIntrospectionIssuer(t, answer(200, []byte(`{"active":true}`)))
			in, err := NewIntrospector(IntrospectionConfig{
				Name: "test", Endpoint: srv.URL, Auth: tc.auth, ClientID: tc.id, ClientSecret: tc.secret,
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := in.Introspect(context.Background(), testOpaqueToken); err != nil {
				t.Fatal(err)
			}
			reqs := srv.requests()
			if len(reqs) != 1 {
				t.Fatalf("issuer got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			assertIntrospectionRequest(t, r)
			if tc.wantRawBasic == "" {
				if r.authorization != "" {
					t.Errorf("Authorization = %q, want none", r.authorization)
				}
			} else {
				enc, ok := strings.CutPrefix(r.authorization, "Basic ")
				if !ok {
					t.Fatalf("Authorization = %q, want Basic", r.authorization)
				}
				raw, err := base64.StdEncoding.DecodeString(enc)
				if err != nil {
					t.Fatal(err)
				}
				if string(raw) != tc.wantRawBasic {
					t.Errorf("Basic credentials = %q, want %q", raw, tc.wantRawBasic)
				}
				// What a compliant server decodes (RFC 6749 §2.3.1).
				u, p, _ := strings.Cut(string(raw), ":")
				gotID, _ := url.QueryUnescape(u)
				gotSecret, _ := url.QueryUnescape(p)
				if gotID != tc.id || gotSecret != tc.secret {
					t.Errorf("server decoded id=%q secret=%q, want %q %q", gotID, gotSecret, tc.id, tc.secret)
				}
			}
			if got := r.form.Get("client_id"); got != tc.wantFormID {
				t.Errorf("form client_id = %q, want %q", got, tc.wantFormID)
			}
			if got := r.form.Get("client_secret"); got != tc.wantFormSec {
				t.Errorf("form client_secret = %q, want %q", got, tc.wantFormSec)
			}
		})
	}
}

func TestNewIntrospectorValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     IntrospectionConfig
		wantMsg string // "" = valid
	}{
		{name: "valid basic", cfg: IntrospectionConfig{Endpoint: "https://issuer/introspect", ClientID: "a", ClientSecret: "b"}},
		{name: "valid none", cfg: IntrospectionConfig{Endpoint: "http://127.0.0.1:4445/admin/oauth2/introspect", Auth: AuthNone}},
		{name: "empty endpoint", cfg: IntrospectionConfig{Auth: AuthNone}, wantMsg: "endpoint is required"},
		{name: "relative endpoint", cfg: IntrospectionConfig{Endpoint: "/introspect", Auth: AuthNone}, wantMsg: "scheme must be http or https"},
		{name: "ftp endpoint", cfg: IntrospectionConfig{Endpoint: "ftp://issuer/x", Auth: AuthNone}, wantMsg: "scheme must be http or https"},
		{name: "no host", cfg: IntrospectionConfig{Endpoint: "https:///x", Auth: AuthNone}, wantMsg: "host is missing"},
		{name: "unparseable", cfg: IntrospectionConfig{Endpoint: "http://[::1", Auth: AuthNone}, wantMsg: "endpoint"},
		{name: "credentials in URL", cfg: IntrospectionConfig{Endpoint: "https://u:p@issuer/x", Auth: AuthNone}, wantMsg: "credentials in the URL"},
		{name: "unknown auth", cfg: IntrospectionConfig{Endpoint: "https://issuer/x", Auth: "private_key_jwt"}, wantMsg: `auth "private_key_jwt"`},
		{name: "basic without secret", cfg: IntrospectionConfig{Endpoint: "https://issuer/x", ClientID: "a"}, wantMsg: "needs client_secret"},
		{name: "post without id", cfg: IntrospectionConfig{Endpoint: "https://issuer/x", Auth: AuthClientSecretPost, ClientSecret: "b"}, wantMsg: "needs client_id"},
		{name: "none with secret", cfg: IntrospectionConfig{Endpoint: "https://issuer/x", Auth: AuthNone, ClientSecret: "b"}, wantMsg: "never be sent"},
		{name: "negative timeout", cfg: IntrospectionConfig{Endpoint: "https://issuer/x", Auth: AuthNone, Timeout: -1}, wantMsg: "timeout"},
		{name: "empty audience", cfg: IntrospectionConfig{Endpoint: "https://issuer/x", Auth: AuthNone, Audiences: []string{""}}, wantMsg: "empty string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewIntrospector(tc.cfg)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("error = %v, want mention of %q", err, tc.wantMsg)
			}
			if strings.Contains(err.Error(), "u:p@") {
				t.Errorf("error leaks URL credentials: %v", err)
			}
		})
	}
}
