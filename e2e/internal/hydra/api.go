package hydra

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// AccessTokenKeySet is the admin key-set name Hydra signs JWT access tokens
// with; the newest private key in it signs new tokens.
const AccessTokenKeySet = "hydra.jwt.access-token"

// Client is an OAuth 2.0 client registered in Hydra.
type Client struct {
	ID     string
	Secret string
	// RedirectURI is the registered redirect_uri of a client made by
	// CreateCodeClient; empty for client_credentials clients.
	RedirectURI string
}

// ClientOptions describes a client_credentials client to create.
type ClientOptions struct {
	// Scopes the client may request.
	Scopes []string
	// Audience lists the audiences the client may request. Use https URLs
	// (https://storage.example.org); Hydra handles urn: audiences oddly.
	Audience []string
	// Name is an optional client_name.
	Name string
	// AccessTokenStrategy, "jwt" or "opaque", overrides the server-wide
	// strategy for this client's tokens; empty keeps the server's.
	AccessTokenStrategy string
	// AccessTokenLifespan overrides the lifetime of this client's
	// client_credentials access tokens; zero keeps the server's.
	AccessTokenLifespan time.Duration
}

// APIError is a non-success answer from Hydra.
type APIError struct {
	Op         string // what the harness was doing, e.g. "token"
	StatusCode int
	Body       string // Hydra's error body, truncated
}

func (e *APIError) Error() string {
	return fmt.Sprintf("hydra %s: HTTP %d: %s", e.Op, e.StatusCode, e.Body)
}

// CreateClient registers a confidential client allowed the
// client_credentials grant with client_secret_basic authentication.
func (s *Server) CreateClient(ctx context.Context, o ClientOptions) (Client, error) {
	body := map[string]any{
		"grant_types":                []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_basic",
		"scope":                      strings.Join(o.Scopes, " "),
		"audience":                   nonNil(o.Audience),
	}
	if o.Name != "" {
		body["client_name"] = o.Name
	}
	if o.AccessTokenStrategy != "" {
		body["access_token_strategy"] = o.AccessTokenStrategy
	}
	if o.AccessTokenLifespan > 0 {
		body["client_credentials_grant_access_token_lifespan"] = o.AccessTokenLifespan.String()
	}
	var out struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := s.doJSON(ctx, "create client", http.MethodPost, s.AdminURL()+"/admin/clients", body, http.StatusCreated, &out); err != nil {
		return Client{}, err
	}
	if out.ID == "" || out.Secret == "" {
		return Client{}, errors.New("hydra create client: answer lacks client_id or client_secret")
	}
	return Client{ID: out.ID, Secret: out.Secret}, nil
}

// Token obtains an access token with the client_credentials grant. Empty
// scopes or audience are not sent. Hydra refuses scopes or audiences the
// client was not created with (an *APIError with status 400).
func (s *Server) Token(ctx context.Context, c Client, scopes, audience []string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	if len(audience) > 0 {
		form.Set("audience", strings.Join(audience, " "))
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := s.doForm(ctx, "token", s.TokenURL(), form, &c, &out); err != nil {
		return "", err
	}
	if out.AccessToken == "" {
		return "", errors.New("hydra token: answer lacks access_token")
	}
	return out.AccessToken, nil
}

// Revoke revokes token (RFC 7009) at the public revocation endpoint,
// authenticating as the client the token was issued to.
func (s *Server) Revoke(ctx context.Context, c Client, token string) error {
	return s.doForm(ctx, "revoke", s.PublicURL()+RevokePath, url.Values{"token": {token}}, &c, nil)
}

// Introspect asks the admin introspection endpoint about token and returns
// the raw answer (numbers decode as float64). An unknown, expired or
// revoked token yields {"active": false}.
func (s *Server) Introspect(ctx context.Context, token string) (map[string]any, error) {
	var out map[string]any
	if err := s.doForm(ctx, "introspect", s.IntrospectURL(), url.Values{"token": {token}}, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// RotateKeys adds a new RS256 key to the access-token key set and returns
// its kid; JWT access tokens issued afterwards carry that kid. The old keys
// stay in the public JWKS, but Hydra's own introspection checks JWTs only
// against the newest key, so it reports tokens signed before the rotation
// as inactive.
func (s *Server) RotateKeys(ctx context.Context) (string, error) {
	return s.RotateKeysAlg(ctx, "RS256")
}

// RotateKeysAlg is RotateKeys with a chosen signing algorithm, e.g. "ES256".
func (s *Server) RotateKeysAlg(ctx context.Context, alg string) (string, error) {
	suffix, err := randomHex(8)
	if err != nil {
		return "", fmt.Errorf("hydra rotate keys: %w", err)
	}
	kid := "leasegate-e2e-" + suffix
	body := map[string]string{"alg": alg, "use": "sig", "kid": kid}
	if err := s.doJSON(ctx, "rotate keys", http.MethodPost, s.AdminURL()+"/admin/keys/"+AccessTokenKeySet, body, http.StatusCreated, nil); err != nil {
		return "", err
	}
	return kid, nil
}

// KeyIDs returns the kids listed in the public JWKS (access-token and
// ID-token keys, in Hydra's order).
func (s *Server) KeyIDs(ctx context.Context) ([]string, error) {
	var out struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := s.doJSON(ctx, "jwks", http.MethodGet, s.JWKSURL(), nil, http.StatusOK, &out); err != nil {
		return nil, err
	}
	kids := make([]string, 0, len(out.Keys))
	for _, k := range out.Keys {
		kids = append(kids, k.KID)
	}
	return kids, nil
}

// SetBackchannelLogoutURI points client id's back-channel logout at uri
// (PATCH /admin/clients/{id}, a JSON Patch), with sid required: a client
// can be registered before the relying party that receives its logouts
// is up.
func (s *Server) SetBackchannelLogoutURI(ctx context.Context, id, uri string) error {
	patch := []map[string]any{
		{"op": "add", "path": "/backchannel_logout_uri", "value": uri},
		{"op": "add", "path": "/backchannel_logout_session_required", "value": true},
	}
	return s.doJSON(ctx, "set backchannel_logout_uri", http.MethodPatch, s.AdminURL()+"/admin/clients/"+url.PathEscape(id), patch, http.StatusOK, nil)
}

// RevokeLoginSession ends the login session sid
// (DELETE /admin/oauth2/auth/sessions/login?sid=…). Hydra then POSTs a
// back-channel logout token to every client with a backchannel_logout_uri
// that got tokens in that session; it sends them on its own goroutines,
// so they may arrive after this returns. Only a remembered session
// (login accepted with remember) is found.
func (s *Server) RevokeLoginSession(ctx context.Context, sid string) error {
	u := s.AdminURL() + "/admin/oauth2/auth/sessions/login?" + url.Values{"sid": {sid}}.Encode()
	return s.doJSON(ctx, "revoke login session", http.MethodDelete, u, nil, http.StatusNoContent, nil)
}

// ParseUnverified decodes a compact JWS's header and claims WITHOUT
// verifying anything, for test assertions (kid, typ, exp, scp, …).
func ParseUnverified(token string) (header, claims map[string]any, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, nil, fmt.Errorf("not a compact JWS: %d parts", len(parts))
	}
	if header, err = decodeSegment(parts[0]); err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	if claims, err = decodeSegment(parts[1]); err != nil {
		return nil, nil, fmt.Errorf("claims: %w", err)
	}
	return header, claims, nil
}

func decodeSegment(seg string) (map[string]any, error) {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// doForm POSTs an x-www-form-urlencoded body, with HTTP Basic client
// authentication when c is not nil, and decodes a 200 JSON answer into out.
func (s *Server) doForm(ctx context.Context, op, u string, form url.Values, c *Client, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("hydra %s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c != nil {
		// RFC 6749 §2.3.1: id and secret are form-encoded before Basic.
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	return s.do(req, op, http.StatusOK, out)
}

// doJSON sends in (if not nil) as JSON and decodes an answer with status
// want into out (if not nil).
func (s *Server) doJSON(ctx context.Context, op, method, u string, in any, want int, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("hydra %s: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("hydra %s: %w", op, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	return s.do(req, op, want, out)
}

func (s *Server) do(req *http.Request, op string, want int, out any) error {
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("hydra %s: %w", op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("hydra %s: read answer: %w", op, err)
	}
	if resp.StatusCode != want {
		return &APIError{Op: op, StatusCode: resp.StatusCode, Body: tail(string(raw), 512)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("hydra %s: decode answer: %w", op, err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
