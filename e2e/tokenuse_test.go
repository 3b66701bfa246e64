package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/leasegate/leasegate/e2e/internal/hydra"
	"github.com/leasegate/leasegate/e2e/internal/leasegate"
)

// namesTokenKind matches an error_description that says why a token that
// is not an access token was refused: its type (typ, token_type,
// token_use, "refresh token", "ID token", "not an access token") or its
// audience.
var namesTokenKind = regexp.MustCompile(`(?i)\btyp|token_use|access.token|refresh|id.token|audience`)

// TestOnlyAccessTokensPass (SPEC §2 "Only access tokens pass"; issue 19,
// class 2): a real Hydra authorization-code flow yields an access token, a
// refresh token and an ID token, and only the access token may pass.
// Hydra answers the introspection of a refresh token with active: true,
// token_use: "refresh_token" (and token_type: "Bearer"), so leasegate has
// to read token_use. The ID token is a JWT Hydra signed with aud = the
// client id. Each refusal is a 401 invalid_token that becomes a negative
// lease: the same token again, in any tier, does not reach Hydra.
//
// Two set-ups: opaque tokens with introspection, and JWT access tokens
// with jwt+introspection (where the ID token must be refused locally, for
// its type or its audience, without asking Hydra).
func TestOnlyAccessTokensPass(t *testing.T) {
	t.Parallel()
	type calls struct{ min, max int64 }
	for _, sc := range []struct {
		name string
		opts stackOptions
		// Introspections the first refusal of each kind causes.
		refreshCalls, idCalls calls
		// Whether the first refusal's error_description must say the token
		// type or audience was wrong (not only "not active").
		refreshNamed, idNamed bool
		// The lease outcome of the repeats of a refused refresh token:
		// "negative", or "miss" where it is refused before any issuer is
		// chosen (an opaque token with no introspection issuer to go to).
		refreshRepeat string
	}{
		{
			name: "introspection with opaque tokens",
			opts: stackOptions{Mode: "introspection"},
			// Hydra must be asked: only its answer says "refresh_token". The
			// ID token is a JWT with Hydra's iss, which an introspection
			// issuer sends to Hydra too (Hydra calls it inactive).
			refreshCalls: calls{1, 1}, idCalls: calls{1, 1},
			refreshNamed: true, refreshRepeat: "negative",
		},
		{
			name: "jwt+introspection with JWT access tokens",
			opts: stackOptions{JWT: true, Mode: "jwt+introspection"},
			// The refresh token is opaque (ory_rt_…) and a jwt+introspection
			// issuer cannot be default_for_opaque: no issuer accepts it, so
			// it is refused (unknown issuer) without asking Hydra, every
			// time. The ID token verifies against Hydra's JWKS but is not an
			// access token for us: refused locally, SPEC §2.
			refreshCalls: calls{0, 0}, idCalls: calls{0, 0},
			idNamed: true, refreshRepeat: "miss",
		},
	} {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, sc.opts)

			t.Run("access token passes", func(t *testing.T) {
				toks := s.codeTokens(t, hydra.CodeFlowOptions{})
				res := s.expect(t, leasegate.Request{Method: "GET", Path: "/data/code/a", Token: toks.AccessToken},
					expectation{allowed: true, lease: "miss", tier: "read", calls: 1})
				want := map[string]string{
					"x-auth-subject":   codeSubject, // the user, not the client
					"x-auth-client-id": s.codeClientID(),
					"x-auth-issuer":    s.hydra.Issuer(),
				}
				for k, v := range want {
					if res.Headers[k] != v {
						t.Errorf("upstream header %s = %q, want %q", k, res.Headers[k], v)
					}
				}
				s.expect(t, leasegate.Request{Method: "GET", Path: "/data/code/a", Token: toks.AccessToken},
					expectation{allowed: true, lease: "hit", tier: "read", calls: 0})
				s.expect(t, leasegate.Request{Method: "DELETE", Path: "/data/code/a", Token: toks.AccessToken},
					expectation{allowed: true, lease: "miss", tier: "critical", calls: 1})
			})

			for _, tc := range []struct {
				kind  string
				token func(hydra.CodeFlowTokens) string
				first string // method of the first request; the other of GET and DELETE follows
				calls calls
				named bool
				again string // lease outcome of the repeats
			}{
				{kind: "refresh token", token: refreshToken, first: "GET", calls: sc.refreshCalls, named: sc.refreshNamed, again: sc.refreshRepeat},
				{kind: "refresh token", token: refreshToken, first: "DELETE", calls: sc.refreshCalls, named: sc.refreshNamed, again: sc.refreshRepeat},
				{kind: "ID token", token: idToken, first: "GET", calls: sc.idCalls, named: sc.idNamed, again: "negative"},
				{kind: "ID token", token: idToken, first: "DELETE", calls: sc.idCalls, named: sc.idNamed, again: "negative"},
			} {
				t.Run(tc.kind+", "+tc.first+" first", func(t *testing.T) {
					tok := tc.token(s.codeTokens(t, hydra.CodeFlowOptions{}))
					other := "DELETE"
					if tc.first == "DELETE" {
						other = "GET"
					}
					req := func(method string) leasegate.Request {
						return leasegate.Request{Method: method, Path: "/data/code/b", Token: tok}
					}
					desc := s.expectRefused(t, req(tc.first), "miss", tc.calls.min, tc.calls.max)
					t.Logf("%s with the %s: error_description %q", tc.first, tc.kind, desc)
					if tc.named && !namesTokenKind.MatchString(desc) {
						t.Errorf("error_description %q does not say the token type or audience is wrong", desc)
					}
					// A negative lease now (or no issuer at all): no tier
					// reaches Hydra for this token.
					s.expectRefused(t, req(other), tc.again, 0, 0)
					s.expectRefused(t, req(tc.first), tc.again, 0, 0)
				})
			}

			t.Run("log holds none of the tokens", func(t *testing.T) {
				logs := s.leasegate.Logs()
				s.mu.Lock()
				defer s.mu.Unlock()
				for _, it := range s.issued {
					if strings.Contains(logs, it.tok) || strings.Contains(logs, tokenCore(it.tok)) {
						t.Errorf("leasegate's log contains a raw %s", it.kind)
					}
				}
			})
		})
	}
}

func refreshToken(t hydra.CodeFlowTokens) string { return t.RefreshToken }
func idToken(t hydra.CodeFlowTokens) string      { return t.IDToken }

// expectRefused sends r and checks that it is refused as SPEC §3 says for
// an invalid token: UNAUTHENTICATED, HTTP 401, a Bearer challenge with
// error="invalid_token", a JSON body with error invalid_token, the token
// echoed nowhere; with lease outcome lease and between minCalls and
// maxCalls introspections at Hydra. It returns the error_description.
func (s *stack) expectRefused(t *testing.T, r leasegate.Request, lease string, minCalls, maxCalls int64) string {
	t.Helper()
	before := s.introspections()
	res := s.check(t, r)
	calls := s.introspections() - before
	var bad []string
	if res.Allowed() || res.Code != codes.Unauthenticated || res.HTTPStatus != http.StatusUnauthorized {
		bad = append(bad, "want 401 UNAUTHENTICATED")
	}
	if ch := bearerChallenge(res); !strings.Contains(ch, `error="invalid_token"`) {
		bad = append(bad, fmt.Sprintf(`www-authenticate %q lacks error="invalid_token"`, ch))
	}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal([]byte(res.Body), &body); err != nil || body.Error != "invalid_token" ||
		res.Headers["content-type"] != "application/json" {
		bad = append(bad, "want a JSON body with error invalid_token")
	}
	if lease != "" && res.Lease() != lease {
		bad = append(bad, fmt.Sprintf("lease %q, want %q", res.Lease(), lease))
	}
	if calls < minCalls || calls > maxCalls {
		bad = append(bad, fmt.Sprintf("%d introspection(s) at Hydra, want %d to %d", calls, minCalls, maxCalls))
	}
	if strings.Contains(res.Body, r.Token) || strings.Contains(bearerChallenge(res), r.Token) {
		bad = append(bad, "the refusal echoes the token")
	}
	if len(bad) > 0 {
		t.Errorf("%s %s: %s (got %v, body %s)", r.Method, r.Path, strings.Join(bad, "; "), res, res.Body)
	}
	return body.Description
}
