package server

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
	"github.com/leasegate/leasegate/server/config"
)

// adminHandler serves the admin API (SPEC §6): the probes and metrics of
// listen.metrics, GET /config and POST /revoke, the last two behind the
// admin secret when one is configured; and the push receivers (SPEC §9),
// which never ask for it, when withPush (no listen.push).
func (s *service) adminHandler(withPush bool) http.Handler {
	mux := http.NewServeMux()
	s.probeRoutes(mux)
	mux.HandleFunc("GET /config", s.serveConfig)
	mux.HandleFunc("POST /revoke", s.serveRevoke)
	if withPush {
		s.mountPush(mux)
	}
	return mux
}

const redacted = "[redacted]"

// effectiveConfig is g's configuration with secrets redacted, its
// effective tier table and revocation bound: one generation, so the
// config and the policy shown always belong together.
func (g *generation) effectiveConfig() (map[string]any, error) {
	cfg := *g.cfg
	cfg.Issuers = append([]config.IssuerConfig(nil), cfg.Issuers...)
	for i := range cfg.Issuers {
		in := &cfg.Issuers[i].Introspection
		if in.ClientSecret != "" {
			in.ClientSecret = redacted
		}
	}
	if cfg.Admin.Secret != "" {
		cfg.Admin.Secret = redacted
	}
	if cfg.Fleet != nil {
		f := *cfg.Fleet
		if f.Redis.Password != "" {
			f.Redis.Password = redacted
		}
		cfg.Fleet = &f
	}
	cfg.Tiers = nil // replaced by the effective table below
	raw, err := yaml.Marshal(&cfg)
	if err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	out := map[string]any{}
	if err := yaml.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("unmarshal config: %w", err)
	}
	// Methods by tier name from the same config the policy was built from
	// (the copy above has no tiers any more), never by position.
	methods := map[string][]string{}
	for _, t := range g.cfg.PolicyConfig().Tiers {
		methods[t.Name] = t.Methods
	}
	var tiers []map[string]any
	for _, t := range g.pol.Tiers() {
		tiers = append(tiers, map[string]any{
			"name":           t.Name,
			"methods":        methods[t.Name],
			"window":         t.Window.String(),
			"stale_if_error": t.StaleIfError.String(),
		})
	}
	out["tiers"] = tiers
	out["revocation_bound"] = boundView(g.pol.RevocationBound())
	out["token_lifetime"] = g.cfg.LifetimeView(g.pol)
	return out, nil
}

func boundView(b policy.Bound) map[string]any {
	return map[string]any{
		"window":                      b.Window.String(),
		"window_seconds":              b.Window.Seconds(),
		"with_stale_if_error":         b.WithStale.String(),
		"with_stale_if_error_seconds": b.WithStale.Seconds(),
		"lease_max":                   b.LeaseMax.String(),
		"admin_revoke":                "immediate",
	}
}

// serveConfig shows the configuration in force, secrets redacted. It
// needs the admin secret all the same: the issuers, routes and limits are
// a map of what to attack.
func (s *service) serveConfig(w http.ResponseWriter, r *http.Request) {
	if !s.adminAuthorized(r) {
		adminUnauthorized(w)
		return
	}
	out, err := s.gen.Load().effectiveConfig()
	if err != nil {
		http.Error(w, "config: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if f, ok := out["fleet"].(map[string]any); ok && s.fleet != nil {
		f["revocation_delay_p99"] = s.fleet.DelayP99().String()
		f["store_up"] = s.fleet.Up()
		f["mode"] = s.fleet.Mode()
	}
	writeJSON(w, http.StatusOK, out)
}

// revokeRequest is POST /revoke's body: exactly one way to name leases.
type revokeRequest struct {
	Token       string `json:"token"`
	TokenSHA256 string `json:"token_sha256"`
	Subject     string `json:"subject"`
	Issuer      string `json:"issuer"`
}

func (s *service) serveRevoke(w http.ResponseWriter, r *http.Request) {
	if !s.adminAuthorized(r) {
		adminUnauthorized(w)
		return
	}
	var req revokeRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be a JSON object with token, token_sha256, or subject and issuer"})
		return
	}
	switch {
	case req.Token != "" && req.TokenSHA256 == "" && req.Subject == "":
		s.revokeToken(w, r, leasecache.KeyOf(req.Token))
	case req.TokenSHA256 != "" && req.Token == "" && req.Subject == "":
		key, err := leasecache.ParseKey(strings.ToLower(req.TokenSHA256))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		s.revokeToken(w, r, key)
	case req.Subject != "" && req.Issuer != "" && req.Token == "" && req.TokenSHA256 == "":
		errStore, err := s.revokeSubject(r.Context(), req.Issuer, req.Subject)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		s.log.Info("admin revoke subject", slog.String("issuer", req.Issuer), slog.String("subject", req.Subject))
		if errStore != nil {
			s.storeUnavailable(w, errStore, map[string]any{"subject": req.Subject, "issuer": req.Issuer})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"revoked": true, "subject": req.Subject, "issuer": req.Issuer, "at": time.Now().UTC().Format(time.RFC3339Nano)})
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "give exactly one of: token, token_sha256, or subject with issuer"})
	}
}

// revokeToken revokes the token whose SHA-256 is key, locally and (fleet
// mode) in the store.
func (s *service) revokeToken(w http.ResponseWriter, r *http.Request, key leasecache.Key) {
	found, errStore := s.revoke(r.Context(), key)
	s.log.Info("admin revoke", slog.String("token_id", key.Prefix()), slog.Bool("found", found))
	if errStore != nil {
		s.storeUnavailable(w, errStore, map[string]any{"revoked": found, "token_id": key.Prefix()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": found, "token_id": key.Prefix()})
}

// storeUnavailable is SPEC §6's answer when the revoke stands locally but
// could not reach the fleet's store.
func (s *service) storeUnavailable(w http.ResponseWriter, err error, body map[string]any) {
	s.log.Warn("admin revoke not in the fleet store; revoked locally only", slog.String("error", err.Error()))
	body["error"] = "fleet_store_unavailable"
	body["revoked_locally"] = true
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, body)
}

// adminAuthorized checks the admin bearer secret, when one is configured,
// in constant time.
func (s *service) adminAuthorized(r *http.Request) bool {
	secret := s.gen.Load().cfg.Admin.Secret
	if secret == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(secret)) == 1
}

func adminUnauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="leasegate-admin"`)
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "admin secret required"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do
}
