package hydra

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func mustCodeFlow(t *testing.T, srv *Server, c Client, o CodeFlowOptions) CodeFlowTokens {
	t.Helper()
	toks, err := srv.AuthCodeFlow(testCtx(t), c, o)
	for _, st := range toks.Steps {
		t.Logf("  %v", st)
	}
	if err != nil {
		t.Fatalf("AuthCodeFlow: %v", err)
	}
	return toks
}

// TestAuthCodeFlow: the authorization-code flow, driven without a browser,
// yields an access token, a refresh token and an ID token, for opaque and
// JWT access tokens alike, and Hydra's introspection tells them apart by
// token_use. Introspection does not know ID tokens at all.
func TestAuthCodeFlow(t *testing.T) {
	srv := startHydra(t, Options{})
	scopes := []string{"openid", "offline_access", "read"}

	for _, tc := range []struct {
		name     string
		strategy string
		isJWT    bool
	}{
		{name: "opaque access token", strategy: "opaque"},
		{name: "JWT access token", strategy: "jwt", isJWT: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, err := srv.CreateCodeClient(testCtx(t), CodeClientOptions{
				Scopes: scopes, Audience: []string{audStorage}, AccessTokenStrategy: tc.strategy,
			})
			if err != nil {
				t.Fatalf("CreateCodeClient: %v", err)
			}
			if client.RedirectURI != DefaultRedirectURI {
				t.Fatalf("RedirectURI = %q, want %q", client.RedirectURI, DefaultRedirectURI)
			}
			toks := mustCodeFlow(t, srv, client, CodeFlowOptions{
				Subject:           "alice",
				Scopes:            scopes,
				Audience:          []string{audStorage},
				AccessTokenClaims: map[string]any{"leasegate_e2e": "at"},
				IDTokenClaims:     map[string]any{"leasegate_e2e": "id"},
			})

			t.Run("three distinct tokens", func(t *testing.T) {
				if toks.AccessToken == "" || toks.RefreshToken == "" || toks.IDToken == "" {
					t.Fatalf("access %d, refresh %d, ID %d bytes; want all three", len(toks.AccessToken), len(toks.RefreshToken), len(toks.IDToken))
				}
				if toks.AccessToken == toks.RefreshToken || toks.AccessToken == toks.IDToken || toks.RefreshToken == toks.IDToken {
					t.Fatal("two of the tokens are equal")
				}
				if isJWT := strings.Count(toks.AccessToken, ".") == 2; isJWT != tc.isJWT {
					t.Errorf("access token is a JWT: %v, want %v", isJWT, tc.isJWT)
				}
				if !tc.isJWT && !strings.HasPrefix(toks.AccessToken, "ory_at_") {
					t.Errorf("opaque access token without the ory_at_ prefix")
				}
				if !strings.HasPrefix(toks.RefreshToken, "ory_rt_") {
					t.Errorf("refresh token without the ory_rt_ prefix")
				}
				if got := strings.Fields(toks.Scope); !slices.Equal(got, scopes) {
					t.Errorf("granted scope %q, want %q", toks.Scope, strings.Join(scopes, " "))
				}
				if toks.Subject != "alice" || toks.SessionID == "" || toks.ExpiresIn <= 0 {
					t.Errorf("subject %q, session id %q, expires_in %v", toks.Subject, toks.SessionID, toks.ExpiresIn)
				}
			})

			t.Run("ID token", func(t *testing.T) {
				header, claims, err := ParseUnverified(toks.IDToken)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("ID token header %v", header)
				verifyRS256(t, srv, toks.IDToken)
				want := map[string]any{"iss": srv.Issuer(), "sub": "alice", "sid": toks.SessionID, "leasegate_e2e": "id"}
				for k, v := range want {
					if claims[k] != v {
						t.Errorf("ID token %s = %#v, want %#v", k, claims[k], v)
					}
				}
				if aud, _ := claims["aud"].([]any); !slices.Equal(aud, []any{client.ID}) {
					t.Errorf("ID token aud = %#v, want [client id]", claims["aud"])
				}
			})

			t.Run("introspection tells access from refresh token", func(t *testing.T) {
				at := mustIntrospect(t, srv, toks.AccessToken)
				rt := mustIntrospect(t, srv, toks.RefreshToken)
				t.Logf("access token introspection: token_use=%v token_type=%v", at["token_use"], at["token_type"])
				t.Logf("refresh token introspection: %v", rt)
				for _, c := range []struct {
					name string
					ans  map[string]any
					use  string
				}{
					{"access token", at, "access_token"},
					{"refresh token", rt, "refresh_token"},
				} {
					want := map[string]any{
						"active": true, "token_use": c.use, "sub": "alice", "client_id": client.ID,
						"iss": srv.Issuer(), "scope": strings.Join(scopes, " "),
					}
					for k, v := range want {
						if c.ans[k] != v {
							t.Errorf("%s introspection %s = %#v, want %#v", c.name, k, c.ans[k], v)
						}
					}
				}
				if aud, _ := at["aud"].([]any); !slices.Equal(aud, []any{audStorage}) {
					t.Errorf("access token aud = %#v, want [%q]", at["aud"], audStorage)
				}
				if ext, _ := at["ext"].(map[string]any); ext["leasegate_e2e"] != "at" {
					t.Errorf("access token ext = %#v, want the consent session's access_token claims", at["ext"])
				}
				if tc.isJWT {
					_, claims, err := ParseUnverified(toks.AccessToken)
					if err != nil {
						t.Fatal(err)
					}
					if ext, _ := claims["ext"].(map[string]any); ext["leasegate_e2e"] != "at" {
						t.Errorf("JWT access token ext = %#v, want the session claims", claims["ext"])
					}
				}
				if ans := mustIntrospect(t, srv, toks.IDToken); ans["active"] != false {
					t.Errorf("ID token introspection = %v, want active:false", ans)
				}
			})

			t.Run("Hydra's log holds none of the tokens", func(t *testing.T) {
				logs := srv.Logs()
				for name, tok := range map[string]string{"access": toks.AccessToken, "refresh": toks.RefreshToken, "ID": toks.IDToken} {
					if strings.Contains(logs, tok) {
						t.Errorf("Hydra's captured log contains the %s token", name)
					}
				}
			})
		})
	}

	t.Run("remembered login keeps its session", func(t *testing.T) {
		client, err := srv.CreateCodeClient(testCtx(t), CodeClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		browser, err := NewBrowser()
		if err != nil {
			t.Fatal(err)
		}
		first := mustCodeFlow(t, srv, client, CodeFlowOptions{Subject: "bob", Remember: true, Browser: browser})
		again := mustCodeFlow(t, srv, client, CodeFlowOptions{Subject: "bob", Remember: true, Browser: browser})
		other := mustCodeFlow(t, srv, client, CodeFlowOptions{Subject: "bob"})
		if !slices.ContainsFunc(again.Steps, func(st FlowStep) bool { return strings.HasPrefix(st.Note, "skip") }) {
			t.Errorf("second flow in the same browser: Hydra did not skip the login")
		}
		if slices.ContainsFunc(other.Steps, func(st FlowStep) bool { return st.Note != "" }) {
			t.Errorf("flow in a fresh browser: Hydra skipped the login")
		}
		if again.SessionID != first.SessionID {
			t.Errorf("second flow in the same browser: sid %q, want the remembered %q", again.SessionID, first.SessionID)
		}
		if other.SessionID == first.SessionID {
			t.Errorf("a fresh browser reused sid %q", first.SessionID)
		}
		if again.RefreshToken == first.RefreshToken || again.AccessToken == first.AccessToken {
			t.Errorf("the second flow returned the first flow's tokens")
		}
		if _, err := srv.AuthCodeFlow(testCtx(t), client, CodeFlowOptions{Subject: "mallory", Browser: browser}); err == nil {
			t.Errorf("a flow as another subject than the remembered login succeeded")
		}
	})

	t.Run("refusals", func(t *testing.T) {
		client, err := srv.CreateCodeClient(testCtx(t), CodeClientOptions{Audience: []string{audStorage}})
		if err != nil {
			t.Fatal(err)
		}
		cc := mustClient(t, srv, ClientOptions{Scopes: []string{"read"}})
		for _, tc := range []struct {
			name   string
			client Client
			o      CodeFlowOptions
			want   string // in the error
		}{
			{name: "scope not allowed", client: client, o: CodeFlowOptions{Scopes: []string{"openid", "admin"}}, want: "invalid_scope"},
			{name: "audience not allowed", client: client, o: CodeFlowOptions{Audience: []string{audOther}}, want: "invalid_request"},
			{name: "unknown client", client: Client{ID: "no-such-client", RedirectURI: DefaultRedirectURI}, want: "invalid_client"},
			{name: "client_credentials client", client: cc, want: "no redirect URI"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				toks, err := srv.AuthCodeFlow(testCtx(t), tc.client, tc.o)
				for _, st := range toks.Steps {
					t.Logf("  %v", st)
				}
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("AuthCodeFlow error = %v, want one mentioning %q", err, tc.want)
				}
				var apiErr *APIError
				t.Logf("refused: %v (APIError: %v)", err, errors.As(err, &apiErr))
				if toks.AccessToken != "" {
					t.Errorf("a refused flow returned an access token")
				}
			})
		}
	})
}
