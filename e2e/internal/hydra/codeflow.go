package hydra

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Where Hydra sends the user agent during an authorization-code flow. The
// harness configures Hydra with these (URLS_LOGIN, URLS_CONSENT,
// URLS_ERROR), but nothing listens there: AuthCodeFlow reads the challenge
// from Hydra's redirect and accepts it through the admin API instead of
// following it. The .invalid names (RFC 2606) never resolve, so a redirect
// followed by mistake fails at once instead of reaching some real host.
const (
	LoginURL   = "http://login.leasegate-e2e.invalid/login"
	ConsentURL = "http://consent.leasegate-e2e.invalid/consent"
	ErrorURL   = "http://error.leasegate-e2e.invalid/error"
	// DefaultRedirectURI is the redirect_uri CreateCodeClient registers
	// when CodeClientOptions.RedirectURI is empty. Nothing is ever sent
	// there: the flow takes the code from Hydra's Location header.
	DefaultRedirectURI = "https://app.leasegate-e2e.invalid/callback"
)

// Paths of the endpoints the authorization-code flow uses.
const (
	AuthPath            = "/oauth2/auth"
	LoginRequestPath    = "/admin/oauth2/auth/requests/login"
	ConsentRequestPath  = "/admin/oauth2/auth/requests/consent"
	DefaultFlowSubject  = "leasegate-e2e-user"
	maxFlowRedirects    = 10
	maxFlowResponseBody = 64 << 10
)

// DefaultCodeScopes are the scopes CreateCodeClient allows and AuthCodeFlow
// requests when none are given: an ID token (openid) and a refresh token
// (offline_access, which Hydra treats like offline).
var DefaultCodeScopes = []string{"openid", "offline_access"}

// CodeClientOptions describes a confidential client for the
// authorization-code flow, created by CreateCodeClient.
type CodeClientOptions struct {
	// Scopes the client may request; empty means DefaultCodeScopes. Hydra
	// issues an ID token only for openid and a refresh token only for
	// offline_access (or offline), so include them when the test needs
	// those tokens.
	Scopes []string
	// Audience lists the access-token audiences the client may request.
	Audience []string
	// RedirectURI is the only registered redirect_uri; empty means
	// DefaultRedirectURI. Hydra accepts https, or http on a loopback host.
	RedirectURI string
	// Name is an optional client_name.
	Name string
	// AccessTokenStrategy, "jwt" or "opaque", overrides the server-wide
	// access-token strategy for this client; empty keeps the server's.
	AccessTokenStrategy string
}

// CreateCodeClient registers a confidential client (client_secret_basic)
// allowed the authorization_code and refresh_token grants with response
// type code. The returned Client carries its RedirectURI for AuthCodeFlow.
func (s *Server) CreateCodeClient(ctx context.Context, o CodeClientOptions) (Client, error) {
	scopes := o.Scopes
	if len(scopes) == 0 {
		scopes = DefaultCodeScopes
	}
	redirect := o.RedirectURI
	if redirect == "" {
		redirect = DefaultRedirectURI
	}
	body := map[string]any{
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"redirect_uris":              []string{redirect},
		"token_endpoint_auth_method": "client_secret_basic",
		"scope":                      strings.Join(scopes, " "),
		"audience":                   nonNil(o.Audience),
	}
	if o.Name != "" {
		body["client_name"] = o.Name
	}
	if o.AccessTokenStrategy != "" {
		body["access_token_strategy"] = o.AccessTokenStrategy
	}
	var out struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := s.doJSON(ctx, "create code client", http.MethodPost, s.AdminURL()+"/admin/clients", body, http.StatusCreated, &out); err != nil {
		return Client{}, err
	}
	if out.ID == "" || out.Secret == "" {
		return Client{}, errors.New("hydra create code client: answer lacks client_id or client_secret")
	}
	return Client{ID: out.ID, Secret: out.Secret, RedirectURI: redirect}, nil
}

// CodeFlowOptions is one run of AuthCodeFlow. The zero value logs in
// DefaultFlowSubject and asks for DefaultCodeScopes.
type CodeFlowOptions struct {
	// Subject is the user the login is accepted for; empty means
	// DefaultFlowSubject. When Hydra remembers a login session in Browser,
	// it must be that session's subject.
	Subject string
	// Scopes are requested at /oauth2/auth and granted at consent; empty
	// means DefaultCodeScopes. The client must be allowed all of them.
	Scopes []string
	// Audience is requested (audience parameter) and granted as the access
	// token's audience; the client must be allowed it.
	Audience []string
	// AccessTokenClaims become the consent session's access_token data:
	// Hydra reports them under "ext" in introspection and in JWT access
	// tokens.
	AccessTokenClaims map[string]any
	// SessionClaim, when set, adds the login session's id (the sid of ID
	// and logout tokens) to the access_token data under this name, as a
	// consent app does so that a resource server can map a back-channel
	// logout to the session's access tokens.
	SessionClaim string
	// IDTokenClaims become the consent session's id_token data: extra
	// top-level claims of the ID token.
	IDTokenClaims map[string]any
	// Remember accepts login and consent with remember: true, so Hydra sets
	// its login-session cookie in Browser and a later flow in the same
	// Browser skips the login (same session id). Without it every flow is
	// a new login session, and Hydra still records that session (its id is
	// the ID token's sid).
	Remember bool
	// Browser is the user agent; nil means a fresh one for this flow.
	Browser *Browser
}

// CodeFlowTokens is what an authorization-code flow produced.
type CodeFlowTokens struct {
	AccessToken string
	// RefreshToken is set when offline_access or offline was granted.
	RefreshToken string
	// IDToken is set when openid was granted.
	IDToken   string
	Scope     string        // granted scope, from the token response
	ExpiresIn time.Duration // the access token's lifetime
	Subject   string        // the user the login was accepted for
	// SessionID is the login session's id: the ID token's sid claim and the
	// sid of back-channel logout tokens (login_session_id in Hydra's
	// consent request).
	SessionID string
	// Steps is every request of the flow in order, for logs.
	Steps []FlowStep
}

// FlowStep is one request the flow made.
type FlowStep struct {
	Method string
	URL    string // scheme, host and path; the query holds secrets and is left out
	Status int
	Next   string // where the answer pointed (a Location or redirect_to), without query
	Note   string // e.g. "skip" when Hydra remembered the login
}

func (st FlowStep) String() string {
	s := fmt.Sprintf("%s %s → %d", st.Method, st.URL, st.Status)
	if st.Next != "" {
		s += " → " + st.Next
	}
	if st.Note != "" {
		s += " (" + st.Note + ")"
	}
	return s
}

// Browser is the user agent of authorization-code flows: it keeps cookies
// (Hydra's login and consent CSRF cookies, and its login-session cookie
// after a remembered login) and never follows a redirect, so the flow sees
// each one. Share one Browser between flows to reuse a remembered login.
type Browser struct {
	http *http.Client
}

// NewBrowser returns a Browser with an empty cookie jar.
func NewBrowser() (*Browser, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, fmt.Errorf("hydra: cookie jar: %w", err)
	}
	return &Browser{http: &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}, nil
}

// AuthCodeFlow runs the OAuth 2.0 authorization-code flow with PKCE (S256)
// against Hydra's public port for client c (from CreateCodeClient), with
// no browser: it starts at /oauth2/auth with state and nonce, takes each
// redirect by hand, accepts Hydra's login and consent challenges through
// the admin API (granting the requested scopes and audience), takes the
// code from the redirect to c.RedirectURI and exchanges it at
// /oauth2/token. It checks state, and the ID token's nonce and sid.
//
// An OAuth error at any step is an *APIError; an error redirect (to the
// redirect_uri or to ErrorURL) has Op "authorize" and Hydra's error,
// error_description and error_hint in Body.
func (s *Server) AuthCodeFlow(ctx context.Context, c Client, o CodeFlowOptions) (CodeFlowTokens, error) {
	if c.RedirectURI == "" {
		return CodeFlowTokens{}, errors.New("hydra code flow: client has no redirect URI (create it with CreateCodeClient)")
	}
	redirect, err := url.Parse(c.RedirectURI)
	if err != nil {
		return CodeFlowTokens{}, fmt.Errorf("hydra code flow: redirect URI: %w", err)
	}
	f := &codeFlow{
		s:       s,
		c:       c,
		o:       o,
		browser: o.Browser,
		subject: cmp.Or(o.Subject, DefaultFlowSubject),
		scopes:  o.Scopes,
	}
	if f.browser == nil {
		if f.browser, err = NewBrowser(); err != nil {
			return CodeFlowTokens{}, err
		}
	}
	if len(f.scopes) == 0 {
		f.scopes = DefaultCodeScopes
	}
	state, err1 := randomHex(16)
	nonce, err2 := randomHex(16)
	verifier, err3 := randomHex(32) // 64 characters, within RFC 7636's 43–128
	if err := errors.Join(err1, err2, err3); err != nil {
		return CodeFlowTokens{}, fmt.Errorf("hydra code flow: %w", err)
	}
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.ID},
		"redirect_uri":          {c.RedirectURI},
		"scope":                 {strings.Join(f.scopes, " ")},
		"state":                 {state},
		"nonce":                 {nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	if len(o.Audience) > 0 {
		q.Set("audience", strings.Join(o.Audience, " "))
	}

	next := s.PublicURL() + AuthPath + "?" + q.Encode()
	public, err := url.Parse(s.PublicURL())
	if err != nil {
		return CodeFlowTokens{}, fmt.Errorf("hydra code flow: public URL: %w", err)
	}
	for range maxFlowRedirects {
		loc, status, err := f.get(ctx, next)
		if err != nil {
			return f.out, err
		}
		switch {
		case sameEndpoint(loc, LoginURL):
			next, err = f.acceptLogin(ctx, loc.Query().Get("login_challenge"))
		case sameEndpoint(loc, ConsentURL):
			next, err = f.acceptConsent(ctx, loc.Query().Get("consent_challenge"))
		case sameEndpoint(loc, ErrorURL):
			return f.out, authorizeError(loc, status)
		case sameEndpoint(loc, redirect.String()):
			lq := loc.Query()
			if lq.Get("error") != "" {
				return f.out, authorizeError(loc, status)
			}
			if lq.Get("state") != state {
				return f.out, errors.New("hydra code flow: redirect carries another state than the request")
			}
			if lq.Get("code") == "" {
				return f.out, errors.New("hydra code flow: redirect to the client carries no code")
			}
			return f.exchange(ctx, lq.Get("code"), verifier, nonce)
		case loc.Scheme == public.Scheme && loc.Host == public.Host:
			next = loc.String() // Hydra sends the agent on within its public port
		default:
			return f.out, fmt.Errorf("hydra code flow: unexpected redirect to %s", stripQuery(loc))
		}
		if err != nil {
			return f.out, err
		}
	}
	return f.out, fmt.Errorf("hydra code flow: more than %d redirects", maxFlowRedirects)
}

// codeFlow is the state of one AuthCodeFlow.
type codeFlow struct {
	s       *Server
	c       Client
	o       CodeFlowOptions
	browser *Browser
	subject string
	scopes  []string
	out     CodeFlowTokens
}

func (f *codeFlow) step(method, u string, status int, next, note string) {
	f.out.Steps = append(f.out.Steps, FlowStep{
		Method: method, URL: stripQueryString(u), Status: status, Next: stripQueryString(next), Note: note,
	})
}

// get sends the browser to u and returns where Hydra redirects it, and
// the redirect's status. An answer that is not a redirect is an *APIError.
func (f *codeFlow) get(ctx context.Context, u string) (*url.URL, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("hydra code flow: %w", err)
	}
	resp, err := f.browser.http.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("hydra code flow: GET %s: %w", stripQueryString(u), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxFlowResponseBody))
	if err != nil {
		return nil, 0, fmt.Errorf("hydra code flow: GET %s: read answer: %w", stripQueryString(u), err)
	}
	locHeader := resp.Header.Get("Location")
	f.step(http.MethodGet, u, resp.StatusCode, locHeader, "")
	if resp.StatusCode < 300 || resp.StatusCode > 399 || locHeader == "" {
		return nil, 0, &APIError{Op: "authorize " + stripQueryString(u), StatusCode: resp.StatusCode, Body: tail(string(raw), 512)}
	}
	loc, err := resp.Request.URL.Parse(locHeader)
	if err != nil {
		return nil, 0, fmt.Errorf("hydra code flow: Location: %w", err)
	}
	return loc, resp.StatusCode, nil
}

// acceptLogin accepts a login challenge as the flow's subject and returns
// where Hydra sends the browser next (/oauth2/auth with a login_verifier).
func (f *codeFlow) acceptLogin(ctx context.Context, challenge string) (string, error) {
	if challenge == "" {
		return "", errors.New("hydra code flow: redirect to the login URL without login_challenge")
	}
	q := "?" + url.Values{"login_challenge": {challenge}}.Encode()
	var lr struct {
		Skip    bool   `json:"skip"`
		Subject string `json:"subject"`
	}
	u := f.s.AdminURL() + LoginRequestPath
	if err := f.s.doJSON(ctx, "get login request", http.MethodGet, u+q, nil, http.StatusOK, &lr); err != nil {
		return "", err
	}
	note := ""
	if lr.Skip {
		note = "skip: Hydra remembers the login"
	}
	f.step(http.MethodGet, u, http.StatusOK, "", note)
	if lr.Skip && lr.Subject != f.subject {
		return "", fmt.Errorf("hydra code flow: Hydra remembers a login of %q, not %q", lr.Subject, f.subject)
	}
	body := map[string]any{"subject": f.subject, "remember": f.o.Remember}
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := f.s.doJSON(ctx, "accept login", http.MethodPut, u+"/accept"+q, body, http.StatusOK, &out); err != nil {
		return "", err
	}
	f.step(http.MethodPut, u+"/accept", http.StatusOK, out.RedirectTo, "")
	if out.RedirectTo == "" {
		return "", errors.New("hydra accept login: answer lacks redirect_to")
	}
	return out.RedirectTo, nil
}

// acceptConsent grants what the consent request asks for (scopes and
// access-token audience), with the flow's session claims, and returns
// where Hydra sends the browser next (/oauth2/auth with a consent_verifier).
func (f *codeFlow) acceptConsent(ctx context.Context, challenge string) (string, error) {
	if challenge == "" {
		return "", errors.New("hydra code flow: redirect to the consent URL without consent_challenge")
	}
	q := "?" + url.Values{"consent_challenge": {challenge}}.Encode()
	var cr struct {
		Subject           string   `json:"subject"`
		RequestedScope    []string `json:"requested_scope"`
		RequestedAudience []string `json:"requested_access_token_audience"`
		LoginSessionID    string   `json:"login_session_id"`
	}
	u := f.s.AdminURL() + ConsentRequestPath
	if err := f.s.doJSON(ctx, "get consent request", http.MethodGet, u+q, nil, http.StatusOK, &cr); err != nil {
		return "", err
	}
	f.step(http.MethodGet, u, http.StatusOK, "", "")
	if cr.Subject != f.subject {
		return "", fmt.Errorf("hydra code flow: consent request for subject %q, want %q", cr.Subject, f.subject)
	}
	if cr.LoginSessionID == "" {
		return "", errors.New("hydra code flow: consent request has no login_session_id")
	}
	f.out.Subject, f.out.SessionID = cr.Subject, cr.LoginSessionID
	atClaims := nonNilMap(f.o.AccessTokenClaims)
	if f.o.SessionClaim != "" {
		atClaims = maps.Clone(atClaims)
		atClaims[f.o.SessionClaim] = cr.LoginSessionID
	}
	body := map[string]any{
		"grant_scope":                 nonNil(cr.RequestedScope),
		"grant_access_token_audience": nonNil(cr.RequestedAudience),
		"remember":                    f.o.Remember,
		"session": map[string]any{
			"access_token": atClaims,
			"id_token":     nonNilMap(f.o.IDTokenClaims),
		},
	}
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := f.s.doJSON(ctx, "accept consent", http.MethodPut, u+"/accept"+q, body, http.StatusOK, &out); err != nil {
		return "", err
	}
	f.step(http.MethodPut, u+"/accept", http.StatusOK, out.RedirectTo, "")
	if out.RedirectTo == "" {
		return "", errors.New("hydra accept consent: answer lacks redirect_to")
	}
	return out.RedirectTo, nil
}

// exchange trades the code for tokens at /oauth2/token and checks that
// the answer holds what the granted scope promises.
func (f *codeFlow) exchange(ctx context.Context, code, verifier, nonce string) (CodeFlowTokens, error) {
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {f.c.RedirectURI},
		"code_verifier": {verifier},
	}
	var tr struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		IDToken      string `json:"id_token"`
		Scope        string `json:"scope"`
		ExpiresIn    int64  `json:"expires_in"`
		TokenType    string `json:"token_type"`
	}
	err := f.s.doForm(ctx, "token (authorization_code)", f.s.TokenURL(), form, &f.c, &tr)
	status := http.StatusOK
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		status = apiErr.StatusCode
	}
	f.step(http.MethodPost, f.s.TokenURL(), status, "", "")
	if err != nil {
		return f.out, err
	}
	f.out.AccessToken, f.out.RefreshToken, f.out.IDToken = tr.AccessToken, tr.RefreshToken, tr.IDToken
	f.out.Scope, f.out.ExpiresIn = tr.Scope, time.Duration(tr.ExpiresIn)*time.Second

	granted := strings.Fields(tr.Scope)
	switch {
	case tr.AccessToken == "":
		return f.out, errors.New("hydra code flow: token answer lacks access_token")
	case !strings.EqualFold(tr.TokenType, "bearer"):
		return f.out, fmt.Errorf("hydra code flow: token_type %q, want bearer", tr.TokenType)
	case (slices.Contains(granted, "offline_access") || slices.Contains(granted, "offline")) && tr.RefreshToken == "":
		return f.out, errors.New("hydra code flow: offline access granted but the answer lacks refresh_token")
	case slices.Contains(granted, "openid") && tr.IDToken == "":
		return f.out, errors.New("hydra code flow: openid granted but the answer lacks id_token")
	}
	if tr.IDToken != "" {
		_, claims, err := ParseUnverified(tr.IDToken)
		if err != nil {
			return f.out, fmt.Errorf("hydra code flow: ID token: %w", err)
		}
		if claims["nonce"] != nonce {
			return f.out, errors.New("hydra code flow: ID token carries another nonce than the request")
		}
		if claims["sid"] != f.out.SessionID {
			return f.out, fmt.Errorf("hydra code flow: ID token sid %v, want the consent request's login_session_id %q", claims["sid"], f.out.SessionID)
		}
	}
	return f.out, nil
}

// authorizeError turns an error redirect (with its status) into an
// *APIError.
func authorizeError(loc *url.URL, status int) error {
	q := loc.Query()
	var parts []string
	for _, k := range []string{"error", "error_description", "error_hint"} {
		if v := q.Get(k); v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	return &APIError{Op: "authorize", StatusCode: status, Body: tail(strings.Join(parts, " "), 512)}
}

// sameEndpoint reports whether u is endpoint (scheme, host and path) with
// any query.
func sameEndpoint(u *url.URL, endpoint string) bool {
	e, err := url.Parse(endpoint)
	return err == nil && u.Scheme == e.Scheme && u.Host == e.Host && u.Path == e.Path
}

func stripQuery(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

func stripQueryString(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return stripQuery(u)
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
