package leasegate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Bound is the revocation bound leasegate reports at GET /config.
type Bound struct {
	Window           time.Duration // max window over every tier
	WithStaleIfError time.Duration // including stale_if_error allowances
	LeaseMax         string
	AdminRevoke      string
}

// EffectiveConfig returns GET /config decoded.
func (p *Process) EffectiveConfig(ctx context.Context) (map[string]any, error) {
	code, body, err := p.adminGet(ctx, "/config")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("leasegate: GET /config: HTTP %d: %s", code, tail(string(body), 512))
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("leasegate: GET /config: %w", err)
	}
	return out, nil
}

// RevocationBound reads revocation_bound from GET /config.
func (p *Process) RevocationBound(ctx context.Context) (Bound, error) {
	cfg, err := p.EffectiveConfig(ctx)
	if err != nil {
		return Bound{}, err
	}
	rb, ok := cfg["revocation_bound"].(map[string]any)
	if !ok {
		return Bound{}, fmt.Errorf("leasegate: GET /config has no revocation_bound object")
	}
	w, ok1 := rb["window_seconds"].(float64)
	ws, ok2 := rb["with_stale_if_error_seconds"].(float64)
	if !ok1 || !ok2 {
		return Bound{}, fmt.Errorf("leasegate: revocation_bound lacks window_seconds or with_stale_if_error_seconds: %v", rb)
	}
	b := Bound{
		Window:           time.Duration(w * float64(time.Second)),
		WithStaleIfError: time.Duration(ws * float64(time.Second)),
	}
	b.LeaseMax, _ = rb["lease_max"].(string)
	b.AdminRevoke, _ = rb["admin_revoke"].(string)
	return b, nil
}

// TierWindow returns the window GET /config reports for tier, as written
// there (e.g. "3s").
func (p *Process) TierWindow(ctx context.Context, tier string) (string, error) {
	cfg, err := p.EffectiveConfig(ctx)
	if err != nil {
		return "", err
	}
	tiers, _ := cfg["tiers"].([]any)
	for _, t := range tiers {
		m, _ := t.(map[string]any)
		if m["name"] == tier {
			w, _ := m["window"].(string)
			return w, nil
		}
	}
	return "", fmt.Errorf("leasegate: GET /config lists no tier %q", tier)
}

// Metrics scrapes GET /metrics on the metrics listener, as Prometheus
// does.
func (p *Process) Metrics(ctx context.Context) (Metrics, error) {
	code, body, err := p.MetricsGet(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("leasegate: GET /metrics: HTTP %d", code)
	}
	return ParseMetrics(body)
}

// OpenMetrics scrapes GET /metrics on the metrics listener in the
// OpenMetrics text format, the one that carries exemplars, and returns the
// body as served.
func (p *Process) OpenMetrics(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.MetricsURL()+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("leasegate: GET /metrics: %w", err)
	}
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0; charset=utf-8")
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("leasegate: GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("leasegate: GET /metrics: %w", err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "application/openmetrics-text") {
		return nil, fmt.Errorf("leasegate: GET /metrics (OpenMetrics): HTTP %d, Content-Type %q", resp.StatusCode, ct)
	}
	return body, nil
}

// AdminRevoke posts {"token": token} to /revoke (with secret as the admin
// bearer secret when not empty) and returns whether a lease was evicted.
func (p *Process) AdminRevoke(ctx context.Context, token, secret string) (bool, error) {
	a, err := p.Revoke(ctx, RevokeRequest{Token: token}, secret)
	if err != nil {
		return false, err
	}
	if a.Status != http.StatusOK {
		return false, fmt.Errorf("leasegate: POST /revoke: HTTP %d: %s", a.Status, tail(string(a.Body), 512))
	}
	return a.Revoked, nil
}

// RevokeSubject posts {"subject", "issuer"} to /revoke and wants 200.
func (p *Process) RevokeSubject(ctx context.Context, issuer, subject, secret string) error {
	a, err := p.Revoke(ctx, RevokeRequest{Subject: subject, Issuer: issuer}, secret)
	if err != nil {
		return err
	}
	if a.Status != http.StatusOK {
		return fmt.Errorf("leasegate: POST /revoke subject: HTTP %d: %s", a.Status, tail(string(a.Body), 512))
	}
	return nil
}

// RevokeRequest is POST /revoke's body: a token, its SHA-256, or a
// subject with its issuer's name.
type RevokeRequest struct {
	Token       string `json:"token,omitempty"`
	TokenSHA256 string `json:"token_sha256,omitempty"`
	Subject     string `json:"subject,omitempty"`
	Issuer      string `json:"issuer,omitempty"`
}

// RevokeAnswer is /revoke's answer, whatever its status. In fleet mode a
// store that cannot be reached gives 503 with Error
// "fleet_store_unavailable" and RevokedLocally (SPEC §8).
type RevokeAnswer struct {
	Status         int
	Body           []byte
	Revoked        bool   `json:"revoked"`
	Error          string `json:"error"`
	RevokedLocally bool   `json:"revoked_locally"`
}

// Revoke posts r to /revoke and returns the answer with any status; an
// error is a transport failure or a body that is not JSON.
func (p *Process) Revoke(ctx context.Context, r RevokeRequest, secret string) (RevokeAnswer, error) {
	body, _ := json.Marshal(r)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.AdminURL()+"/revoke", bytes.NewReader(body))
	if err != nil {
		return RevokeAnswer{}, fmt.Errorf("leasegate: POST /revoke: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return RevokeAnswer{}, fmt.Errorf("leasegate: POST /revoke: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	a := RevokeAnswer{Status: resp.StatusCode, Body: raw}
	if err := json.Unmarshal(raw, &a); err != nil {
		return a, fmt.Errorf("leasegate: POST /revoke: HTTP %d, answer not JSON: %w: %s", resp.StatusCode, err, tail(string(raw), 512))
	}
	a.Status, a.Body = resp.StatusCode, raw
	return a, nil
}

// FleetStatus is the fleet object of GET /config (SPEC §8).
type FleetStatus struct {
	Mode                  string  // e.g. connected, standalone, revalidate, deny
	StoreUp               bool    // fleet.store_up
	RevocationDelayP99    string  // fleet.revocation_delay_p99, as written
	RevocationDelayP99Sec float64 // the same in seconds when it is a number or a duration
	Raw                   map[string]any
}

// Fleet reads the fleet object from GET /config.
func (p *Process) Fleet(ctx context.Context) (FleetStatus, error) {
	cfg, err := p.EffectiveConfig(ctx)
	if err != nil {
		return FleetStatus{}, err
	}
	f, ok := cfg["fleet"].(map[string]any)
	if !ok {
		return FleetStatus{}, fmt.Errorf("leasegate: GET /config has no fleet object")
	}
	st := FleetStatus{Raw: f}
	st.Mode, _ = f["mode"].(string)
	st.StoreUp, _ = f["store_up"].(bool)
	switch v := f["revocation_delay_p99"].(type) {
	case float64:
		st.RevocationDelayP99, st.RevocationDelayP99Sec = fmt.Sprint(v), v
	case string:
		st.RevocationDelayP99 = v
		if d, err := time.ParseDuration(v); err == nil {
			st.RevocationDelayP99Sec = d.Seconds()
		}
	}
	return st, nil
}

// AdminGet fetches an admin path and returns the status and body.
func (p *Process) AdminGet(ctx context.Context, path string) (int, []byte, error) {
	return p.get(ctx, p.AdminURL(), path)
}

// MetricsGet fetches a path of the probes and metrics listener.
func (p *Process) MetricsGet(ctx context.Context, path string) (int, []byte, error) {
	return p.get(ctx, p.MetricsURL(), path)
}

func (p *Process) adminGet(ctx context.Context, path string) (int, []byte, error) {
	return p.get(ctx, p.AdminURL(), path)
}

func (p *Process) get(ctx context.Context, base, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("leasegate: GET %s: %w", path, err)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("leasegate: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("leasegate: GET %s: %w", path, err)
	}
	return resp.StatusCode, body, nil
}
