package push

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/leasegate/leasegate/authz/issuer"
	"github.com/leasegate/leasegate/leasecache"
)

// Revoker applies the revocations a verified signal names: the same
// revoke as POST /revoke (SPEC §9), on this replica at once and, in fleet
// mode, in the fleet's store.
type Revoker interface {
	// Revoke voids every lease of each name (leasecache.NameOf), on
	// behalf of source (SourceBackchannel, SourceSSF). An error means the
	// revocation holds here but could not be recorded for the fleet.
	Revoke(ctx context.Context, source string, names []leasecache.Name) error
}

// Receivers serves both receivers for one configuration generation. Safe
// for concurrent use; Close it when its generation is retired.
type Receivers struct {
	cfg         Config
	backchannel map[string]*trusted // by iss: issuers with client_ids
	ssf         map[string]*trusted // by iss: issuers with an ssf audience
	tracer      trace.Tracer
	log         *slog.Logger
	mux         *http.ServeMux
	cancel      context.CancelFunc
	pools       []*http.Transport
}

// trusted is one pushing issuer and its key set.
type trusted struct {
	cfg  IssuerConfig
	keys *issuer.JWTVerifier
}

// New builds the receivers and starts fetching each pushing issuer's keys
// (in the background: an issuer not reachable yet is retried, and a token
// arriving meanwhile is answered as unavailable). ctx bounds the fetches;
// Close ends them too.
func New(ctx context.Context, cfg Config) (*Receivers, error) {
	if cfg.Revoker == nil {
		return nil, errors.New("push: Config.Revoker is required")
	}
	if ps := Validate(cfg.Issuers); len(ps) > 0 {
		errs := make([]error, len(ps))
		for i, p := range ps {
			errs[i] = p
		}
		return nil, fmt.Errorf("push: %w", errors.Join(errs...))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.LeaseMax = cmp.Or(cfg.LeaseMax, 10*time.Minute)
	if cfg.Replay == nil {
		cfg.Replay = NewReplay(0)
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &Receivers{
		cfg: cfg, backchannel: map[string]*trusted{}, ssf: map[string]*trusted{},
		tracer: tp.Tracer("github.com/leasegate/leasegate/server/push"),
		log:    cmp.Or(cfg.Logger, slog.Default()),
		mux:    http.NewServeMux(), cancel: cancel,
	}
	for _, ic := range cfg.Issuers {
		if !ic.pushes() {
			continue
		}
		ic.ClockSkew = cmp.Or(ic.ClockSkew, DefaultClockSkew)
		jc := ic.jwtConfig()
		pool := issuer.PooledTransport(4)
		r.pools = append(r.pools, pool)
		jc.HTTPClient = &http.Client{Transport: issuer.TracedTransport(pool, tp, "jwks "+ic.Name)}
		jc.Clock, jc.Logger = cfg.Now, r.log
		keys, err := issuer.NewJWTVerifier(ctx, jc)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("push: issuer %s: %w", ic.Name, err)
		}
		t := &trusted{cfg: ic, keys: keys}
		if len(ic.ClientIDs) > 0 {
			r.backchannel[ic.Issuer] = t
		}
		if ic.Audience != "" {
			r.ssf[ic.Issuer] = t
		}
	}
	r.mux.HandleFunc("POST "+PathBackchannel, r.serveBackchannel)
	r.mux.HandleFunc("POST "+PathSSF, r.serveSSF)
	return r, nil
}

// Ready reports whether every pushing issuer's key set has been fetched
// once (readiness waits for it as for a jwt issuer's).
func (r *Receivers) Ready() bool {
	for _, m := range []map[string]*trusted{r.backchannel, r.ssf} {
		for _, t := range m {
			if !t.keys.Ready() {
				return false
			}
		}
	}
	return true
}

// ServeHTTP serves POST PathBackchannel and POST PathSSF.
func (r *Receivers) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.mux.ServeHTTP(w, req) }

// Close stops the key sets' background fetches and closes their idle
// connections.
func (r *Receivers) Close() {
	r.cancel()
	for _, p := range r.pools {
		p.CloseIdleConnections()
	}
}

// RFC 8935 §2.3 error codes; the back-channel receiver answers every
// refusal as invalid_request (OAuth 2.0 §5.2) but counts it by these.
const (
	codeInvalidRequest  = "invalid_request"
	codeInvalidKey      = "invalid_key"
	codeInvalidIssuer   = "invalid_issuer"
	codeInvalidAudience = "invalid_audience"
)

// refusal is why a push request is not acted on. outcome is the metric's
// (the code, or replayed, or unavailable); desc never quotes the token.
type refusal struct {
	code, outcome, desc string
}

func refuse(code, desc string) *refusal { return &refusal{code: code, outcome: code, desc: desc} }

// unavailable: the issuer's keys or the fleet's store could not be
// reached; nothing is wrong with the request.
func unavailable(desc string) *refusal {
	return &refusal{code: "temporarily_unavailable", outcome: outcomeUnavailable, desc: desc}
}

// result is what one push request came to.
type result struct {
	refused *refusal // nil: accepted
	issuer  string   // leasegate's issuer name, once known
	jti     string
	events  []string // short names of the events read
	names   []leasecache.Name
	stale   bool // accepted, too old to matter, nothing revoked
}

// serve runs one receiver's request in a server span (parented by the
// caller's traceparent), then counts and logs what it came to. The
// answer is the caller's.
func (r *Receivers) serve(req *http.Request, source string, handle func(context.Context, *http.Request) result) result {
	ctx := propagation.TraceContext{}.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
	ctx, span := r.tracer.Start(ctx, "push."+source, trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	res := handle(ctx, req)
	outcome := outcomeAccepted
	if res.refused != nil {
		outcome = res.refused.outcome
	}
	span.SetAttributes(
		attribute.String("leasegate.push.receiver", source),
		attribute.String("leasegate.issuer", res.issuer),
		attribute.String("leasegate.push.outcome", outcome),
		attribute.StringSlice("leasegate.push.events", res.events),
		attribute.Int("leasegate.push.revoked_names", len(res.names)),
	)
	r.cfg.Metrics.request(source, outcome)
	attrs := []slog.Attr{slog.String("source", source), slog.String("issuer", res.issuer), slog.String("jti", res.jti)}
	switch {
	case res.refused != nil:
		if outcome == outcomeUnavailable {
			span.SetStatus(codes.Error, res.refused.desc)
		}
		ok, suppressed := r.cfg.RefusalLog.Admit()
		if !ok {
			break
		}
		attrs = append(attrs, slog.String("error", res.refused.code), slog.String("error_description", res.refused.desc))
		if suppressed > 0 {
			attrs = append(attrs, slog.Uint64("suppressed", suppressed))
		}
		r.log.LogAttrs(ctx, slog.LevelInfo, "push signal refused", attrs...)
	default:
		for _, e := range res.events {
			r.cfg.Metrics.event(source, e)
		}
		r.log.LogAttrs(ctx, slog.LevelInfo, "push revocation",
			append(attrs, slog.Any("events", res.events), slog.Any("revoked", nameList(res.names)), slog.Bool("stale", res.stale))...)
	}
	return res
}

// nameList is how a log line names what was revoked: "sid=…", "sub=…".
func nameList(ns []leasecache.Name) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Claim.String() + "=" + n.Value
	}
	return out
}

// apply remembers the token's jti until horizon, refusing a replay, and
// revokes names; a revocation the fleet did not get forgets the jti, so
// the issuer may send the token again.
func (r *Receivers) apply(ctx context.Context, source string, tok *token, horizon time.Time, res *result) {
	if !r.cfg.Replay.remember(source, tok.is.cfg.Name, tok.jti, horizon, r.cfg.Now()) {
		res.refused = &refusal{code: codeInvalidRequest, outcome: outcomeReplayed, desc: "token already received (jti replayed)"}
		return
	}
	if len(res.names) == 0 {
		return
	}
	if err := r.cfg.Revoker.Revoke(ctx, source, res.names); err != nil {
		r.cfg.Replay.forget(source, tok.is.cfg.Name, tok.jti)
		r.log.LogAttrs(ctx, slog.LevelWarn, "push revocation not recorded for the fleet; revoked on this replica",
			slog.String("source", source), slog.String("error", err.Error()))
		res.refused = unavailable("revoked on this replica only: the fleet's store could not be reached; send again")
	}
}
