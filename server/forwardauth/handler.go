package forwardauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/leasegate/leasegate/authz"
)

// Checker is what the handler needs from the engine; *authz.Engine
// implements it.
type Checker interface {
	Check(ctx context.Context, r *authz.Request) authz.Decision
}

var _ Checker = (*authz.Engine)(nil)

// Handler answers HTTP external-auth requests with the engine's decisions.
// Safe for concurrent use.
type Handler struct {
	mode   string
	prefix string // "" for none
	realm  string
	engine func() Checker
	log    *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// New returns the handler of the listen.http listener, or the problems of
// cfg (Config.Validate) and ErrNoEngine. Every request to it is an
// authorization check (there is no health path here: health lives on the
// admin listener). It never reads request bodies.
//
// Allow is exactly 200 with an empty body and the upstream identity headers
// (empty values included, so the proxy overwrites what a client sent).
// Denials carry the engine's status (400, 401, 403, 503), WWW-Authenticate,
// Retry-After on 503 and the JSON error body of SPEC §3. Missing, repeated or
// conflicting convention headers are a 400 invalid_request, never a guess;
// a panic while deciding is a 503, never an allow.
func New(cfg Config) (*Handler, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		errs := make([]error, len(ps))
		for i, p := range ps {
			errs[i] = p
		}
		return nil, fmt.Errorf("forwardauth: %w", errors.Join(errs...))
	}
	if cfg.Engine == nil {
		return nil, ErrNoEngine
	}
	cfg.SetDefaults()
	h := &Handler{mode: cfg.Mode, prefix: cfg.PathPrefix, realm: cfg.Realm, engine: cfg.Engine, log: cfg.Logger}
	if h.prefix == "/" {
		h.prefix = ""
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	return h, nil
}

// ServeHTTP decides the request and writes the decision.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conv := h.conventionFor(r.Header)
	defer h.failClosed(w, r, conv)
	d := h.decide(r, conv)
	writeDecision(w, conv, &d)
}

// failClosed, deferred, turns a panic while deciding or writing into a 503
// (http.ErrAbortHandler is net/http's own and passes through).
func (h *Handler) failClosed(w http.ResponseWriter, r *http.Request, conv convention) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	h.log.LogAttrs(r.Context(), slog.LevelError, "http mode: panic while deciding; answered 503", authz.PanicAttrs(v)...)
	// Drop whatever was staged (identity headers of an allow in the
	// making) and fail closed.
	clear(w.Header())
	d := authz.Unavailable("internal error")
	writeDecision(w, conv, &d)
}

// decide is the request's decision: the handler's own 400 when the proxy
// headers cannot be read, else the engine's, refused when its identity
// cannot be passed upstream exactly.
func (h *Handler) decide(r *http.Request, conv convention) authz.Decision {
	req, problem := h.authzRequest(r, conv)
	if problem != "" {
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "denied",
			slog.String("reason", string(authz.ReasonMalformed)), slog.Int("status", http.StatusBadRequest),
			slog.String("http_mode", conv.name), slog.String("description", problem))
		return authz.InvalidRequest(h.realm, problem)
	}
	eng := h.engine()
	if eng == nil {
		return authz.Unavailable("not ready")
	}
	d := eng.Check(r.Context(), req)
	// net/http would turn CR and LF into spaces: an identity is passed
	// exactly or not at all, as on the gRPC path.
	d.RefuseUnpassable(r.Context(), h.log, h.realm, underscoreTwin(r.Header, &d))
	return d
}

// underscoreTwin returns the first of hdr's names that is an underscore
// twin of one of d's identity headers: the proxy overwrites X-Auth-Subject,
// not X_Auth_Subject, and a backend may read the one as the other.
func underscoreTwin(hdr http.Header, d *authz.Decision) string {
	for name := range hdr {
		if d.UnderscoreTwin(name) != "" {
			return name
		}
	}
	return ""
}
