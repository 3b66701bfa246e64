package server

import (
	"context"
	"net/http"
	"time"

	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/server/config"
	"github.com/leasegate/leasegate/server/push"
)

// newPush builds the push receivers of a configuration (SPEC §9); nil
// when no issuer pushes. The jti memory and the metrics are the
// service's, so a reload forgets no token and resets no counter.
func (s *service) newPush(cfg *config.Config) (*push.Receivers, error) {
	issuers := cfg.PushIssuers()
	pushes := false
	for _, is := range issuers {
		pushes = pushes || len(is.ClientIDs) > 0 || is.Audience != ""
	}
	if !pushes {
		return nil, nil
	}
	return push.New(s.ctx, push.Config{
		Issuers:        issuers,
		Revoker:        pushRevoker{s},
		Replay:         s.replay,
		LeaseMax:       cfg.Lease.Max,
		Now:            s.opts.Now,
		Logger:         s.log,
		TracerProvider: s.tp,
		Metrics:        s.pushMetrics,
		RefusalLog:     s.pushLog,
	})
}

// pushRevoker is the receivers' Revoker: POST /revoke's revoke by name.
type pushRevoker struct{ s *service }

func (p pushRevoker) Revoke(ctx context.Context, source string, names []leasecache.Name) error {
	return p.s.revokeNames(ctx, source, names)
}

// pushHandler serves the receivers of the generation in force, counted as
// in use so a reload closes their key sets only after them.
func (s *service) pushHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := s.acquire()
		defer g.release()
		if g.push == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no issuer is configured for push revocation (backchannel_logout, ssf)"})
			return
		}
		g.push.ServeHTTP(w, r)
	})
}

// mountPush adds the receivers' routes to mux.
func (s *service) mountPush(mux *http.ServeMux) {
	h := s.pushHandler()
	mux.Handle("POST "+push.PathBackchannel, h)
	mux.Handle("POST "+push.PathSSF, h)
}

// pushServer serves only the receivers, on listen.push; nil without it.
func (s *service) pushServer(cfg *config.Config) *http.Server {
	if cfg.Listen.Push == "" {
		return nil
	}
	mux := http.NewServeMux()
	s.mountPush(mux)
	// Reachable by the issuer, so perhaps by anyone: a slow body is cut
	// off, and a request may wait on one JWKS fetch (5s) at most.
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 15 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 64 << 10}
}

// closePush is for a generation's receivers that may be nil.
func closePush(r *push.Receivers) {
	if r != nil {
		r.Close()
	}
}
