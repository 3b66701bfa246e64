package authz

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/leasegate/leasegate/authz/fleetmode"
	"github.com/leasegate/leasegate/authz/headertext"
	"github.com/leasegate/leasegate/authz/request"
	"github.com/leasegate/leasegate/authz/trust"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
	"github.com/leasegate/leasegate/policy/storage"
)

// Check decides r. It never returns an allow because of an error: faults
// become 503 decisions, and a cancelled ctx fails closed. It keeps no
// reference to r once it returns, though a validation it started may go
// on: the caller may reuse r.
func (e *Engine) Check(ctx context.Context, r *Request) Decision {
	start := sinceBoot()
	d := e.decide(ctx, r)
	e.metrics.Decision(ctx, tierLabel(&d), decisionLabel(&d), string(d.Lease), sinceBoot()-start)
	e.annotate(ctx, r, &d)
	e.logDecision(ctx, r, &d)
	return d
}

// boot anchors sinceBoot: a duration from one monotonic reading, where
// time.Now also reads the wall clock (the hit path reads clocks often
// enough that a reading shows in its profile).
var boot = time.Now()

func sinceBoot() time.Duration { return time.Since(boot) }

func (e *Engine) decide(ctx context.Context, r *Request) Decision {
	var d Decision
	if ctx.Err() != nil {
		return e.unavailable(d, ReasonCanceled, "request canceled", 0)
	}
	if r == nil || r.Method == "" {
		d.Lease = LeaseNone
		return e.deny(d, http.StatusBadRequest, ReasonMalformed, ErrCodeInvalidRequest, "request has no method", "")
	}
	nr, problem := request.Normalize(r.Method, r.Host, r.Path, r.Headers)
	if problem != "" {
		d.Lease = LeaseNone
		return e.deny(d, http.StatusBadRequest, ReasonMalformed, ErrCodeInvalidRequest, problem, "")
	}
	m := e.policy.Classify(nr.Req, r.TierHint)
	// A MOVE or COPY also touches its Destination or Source: on this
	// server, the target's routes add their require: and may shorten the
	// window, whatever the method (SPEC §1: no spelling may select a
	// weaker route).
	e.policy.AddTargets(&m, nr.Destination, nr.Source, e.localHosts)
	d.Tier = m.Tier.Name
	if m.HintUnknown {
		e.log.LogAttrs(ctx, slog.LevelWarn, "unknown leasegate.tier from the proxy; using the strictest tier",
			slog.String("hint", request.Clip(r.TierHint)), slog.String("tier", d.Tier))
	}
	d.Lease = LeaseNone

	var auth string
	var n int
	if r.Headers != nil {
		auth, n = r.Headers.Get("authorization")
	}
	tok, tokProblem := request.BearerToken(auth, n)
	if tokProblem != "" {
		return e.deny(d, http.StatusBadRequest, ReasonMalformed, ErrCodeInvalidRequest, string(tokProblem), "")
	}
	if tok == "" {
		return e.deny(d, http.StatusUnauthorized, ReasonNoToken, "", "", "")
	}

	key := leasecache.KeyOf(tok)
	raw := key // the token's SHA-256, whose prefix is the token id
	if e.fleet != nil {
		key = e.fleet.KeyOf(key)
		if e.fleet.Lost() {
			d.TokenID = raw.Prefix()
			return e.storeLost(ctx, d, r, m, tok, key)
		}
	}
	var lease leasecache.Lease
	outcome, at := e.find(ctx, key, m.Window, &lease)
	if outcome == leasecache.Hit {
		if is := e.byName[lease.Issuer]; is != nil && leaseShowsAge(&m, is, &lease) {
			d.Lease = LeaseHit
			v := e.view(key, raw, &lease, is)
			if v != nil {
				d.TokenID = v.tokenID // no hex per hit
			} else {
				d.TokenID = raw.Prefix()
			}
			// Judged at the lookup's reading, or a new one after a fleet
			// store's answer (a round trip: the lifetime deadline may
			// have passed meanwhile).
			if at.IsZero() {
				at = e.now()
			}
			e.allow(&d, r, &m, is, &lease, v, at)
			return d
		}
	}
	d.TokenID = raw.Prefix()
	if outcome == leasecache.Negative {
		d.Lease = LeaseNegative
		return e.deny(d, http.StatusUnauthorized, ReasonNegative, ErrCodeInvalidToken, "token is not active", "")
	}
	d.Lease = LeaseMiss
	return e.validate(ctx, d, r, m, tok, key, lease, outcome == leasecache.WindowClosed)
}

// find is decide's lease lookup into *l: the local cache and, in fleet
// mode, the shared store after a local miss or a closed window. at is the
// lease cache's clock reading a local answer was judged at; zero for the
// shared store's.
func (e *Engine) find(ctx context.Context, key leasecache.Key, w time.Duration, l *leasecache.Lease) (leasecache.Outcome, time.Time) {
	outcome, at := e.lookup(ctx, key, w, l)
	if e.fleet == nil || (outcome != leasecache.Miss && outcome != leasecache.WindowClosed) {
		return outcome, at
	}
	var after time.Time
	if outcome == leasecache.WindowClosed {
		after = l.ValidatedAt
	}
	if sl, so := e.fleet.Lookup(ctx, key, w, after); so != leasecache.Miss {
		*l = sl
		return so, time.Time{}
	}
	return outcome, at
}

// storeLost decides while the fleet's store is down and on_store_loss is
// revalidate (no hits: validate, coalesced here; a negative lease still
// refuses, and stale_if_error still applies to the local lease) or deny.
func (e *Engine) storeLost(ctx context.Context, d Decision, r *Request, m policy.Match, tok string, key leasecache.Key) Decision {
	if e.fleet.Loss() == fleetmode.StoreLossDeny {
		return e.unavailable(d, ReasonFleetUnavailable, "the fleet's lease store is unavailable", time.Second)
	}
	var lease leasecache.Lease
	outcome, _ := e.lookup(ctx, key, m.Window, &lease)
	if outcome == leasecache.Negative {
		d.Lease = LeaseNegative
		return e.deny(d, http.StatusUnauthorized, ReasonNegative, ErrCodeInvalidToken, "token is not active", "")
	}
	d.Lease = LeaseMiss
	return e.validate(ctx, d, r, m, tok, key, lease, outcome == leasecache.Hit || outcome == leasecache.WindowClosed)
}

// lookup is the lease cache read into *l, with its own span when the
// request is traced, and the cache's clock reading it was judged at.
func (e *Engine) lookup(ctx context.Context, key leasecache.Key, w time.Duration, l *leasecache.Lease) (leasecache.Outcome, time.Time) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return e.cache.Look(key, w, l)
	}
	// The span has no children: Cache.Lookup is in memory and takes no
	// ctx. Work that can have them (a fleet-store read) must use the ctx
	// Start returns.
	_, span := e.tracer.Start(ctx, "lease.lookup")
	o, at := e.cache.Look(key, w, l)
	span.SetAttributes(attribute.String("leasegate.lease", string(lookupLease(o))), attribute.Int64("leasegate.window_ms", w.Milliseconds()))
	span.End()
	return o, at
}

// lookupLease names a lookup outcome as Decision.Lease does, so the
// lease.lookup span and the Check span say the same word.
func lookupLease(o leasecache.Outcome) LeaseOutcome {
	switch o {
	case leasecache.Hit:
		return LeaseHit
	case leasecache.Negative:
		return LeaseNegative
	}
	return LeaseMiss
}

// allow applies the storage rules of every matching route, then allows with
// identity. SPEC §1: "every matching route's require: ... applies", so a
// route that only tightens the tier cannot switch off a broader route's
// scope check, and two profiles required must both pass. m.Require also
// holds the requirements of a local Destination's or Source's routes
// (policy.AddTargets), and storage.Authorize checks both paths of a MOVE or
// a local COPY under each profile; m.LocalHosts carries those routes'
// local_hosts, so it finds no target local that AddTargets found remote.
// v is the lease's view on a hit (view.go), nil otherwise; now is the
// engine's time. It decides in *d (a copy less per hit).
func (e *Engine) allow(d *Decision, r *Request, m *policy.Match, is *trust.Issuer, l *leasecache.Lease, v *LeaseView, now time.Time) {
	d.Issuer = is.Config.Name
	// Hit, fresh answer or stale allowance: one lifetime rule for all.
	if desc := lifetimeOf(m, is).Judge(l.IssuedAt, l.Expiry, now, is.ClockSkew); desc != "" {
		d.deny(e.realm, http.StatusUnauthorized, ReasonLifetime, ErrCodeInvalidToken, desc, "")
		return
	}
	if v != nil {
		d.Identity = v.identity
	} else {
		d.Identity = Identity{Subject: l.Subject, ClientID: l.ClientID, Scope: l.Scope, Issuer: is.Config.Issuer}
	}
	var sr storage.Request
	conditional := false
	if m.Require != 0 {
		// The same normalised request the routes matched; decide refused
		// repeated fields, so each has one value.
		sr = storage.Request{Request: m.Request, RouteLocalHosts: m.LocalHosts, IssuerLocalHosts: is.LocalHosts,
			ConditionalCreate: m.ConditionalCreate}
		if r.Headers != nil {
			sr.Destination, _ = r.Headers.Get("destination")
			sr.Source, _ = r.Headers.Get("source")
			sr.IfNoneMatch, _ = r.Headers.Get("if-none-match")
			sr.Overwrite, _ = r.Headers.Get("overwrite")
			// Two Depth fields (a raw header_map) are no Depth: the
			// backend may honour either, so only one "0" makes a stat.
			if v, n := r.Headers.Get("depth"); n == 1 {
				sr.Depth = v
			}
		}
		for profile := range m.Require.All() {
			sd := storage.Authorize(profile, sr, l.Scope, is.Config.BasePath, l.WLCGVersion)
			if !sd.Allow {
				*d = e.denyStorage(*d, sd)
				return
			}
			conditional = conditional || sd.Conditional
		}
	}
	d.Allow = true
	d.Status = http.StatusOK
	d.Reason = ReasonAllowed
	if d.Lease == LeaseStale {
		d.Reason = ReasonStale
	}
	if v != nil {
		// A hit: the view's headers, judged when the view was made.
		d.Headers, d.View = v.headers, v
	} else if d.Headers = e.identityHeaders(d.Identity); d.Headers == nil {
		d.deny(e.realm, http.StatusUnauthorized, ReasonInvalidToken, ErrCodeInvalidToken, "token claims cannot be passed upstream", "")
		return
	}
	if m.Require != 0 {
		// Storage routes say what If-None-Match the upstream gets: "*"
		// when the allow relies on it (storage.Decision.Conditional), else
		// the client's own, so a proxy that copies the header from this
		// answer (nginx auth_request_set, Caddy copy_headers) passes it
		// unchanged.
		inm := sr.IfNoneMatch
		if conditional {
			inm = IfNoneMatchCreate
		}
		if !headertext.ClaimSafe(inm) || !headertext.Passable(inm) {
			d.deny(e.realm, http.StatusBadRequest, ReasonMalformed, ErrCodeInvalidRequest, "If-None-Match header cannot be passed on", "")
			return
		}
		if v != nil {
			d.Headers = v.withIfNoneMatch(inm)
		} else {
			d.Headers = append(d.Headers, Header{HeaderIfNoneMatch, inm})
		}
	}
	d.StripAuthorization = e.strip
}

// The upstream header of a storage decision: If-None-Match: * makes a PUT
// a create that cannot overwrite (RFC 9110 §13.1.2).
const (
	HeaderIfNoneMatch = "if-none-match"
	IfNoneMatchCreate = "*"
)

// ClientChosen reports whether h, an upstream header of an allow, carries
// a value the client chose rather than one the lease or the config fixes:
// a storage route passes the client's own If-None-Match on (any ETag). An
// adapter that keeps answers per lease must not keep such a header's.
func ClientChosen(h Header) bool {
	return h.Name == HeaderIfNoneMatch && h.Value != "" && h.Value != IfNoneMatchCreate
}

// denyStorage turns a storage denial into the engine's.
func (e *Engine) denyStorage(d Decision, sd storage.Decision) Decision {
	reason := ReasonScope
	switch sd.Status {
	case http.StatusBadRequest:
		reason = ReasonMalformed
	case http.StatusUnauthorized:
		reason = ReasonInvalidToken
	}
	return e.deny(d, sd.Status, reason, sd.Error, sd.Description, sd.Scope)
}

// deny makes d a denial with the engine's realm (denial.go).
func (e *Engine) deny(d Decision, status int, reason Reason, code, desc, scope string) Decision {
	d.deny(e.realm, status, reason, code, desc, scope)
	return d
}

func (e *Engine) unavailable(d Decision, reason Reason, desc string, retry time.Duration) Decision {
	d.Allow = false
	d.Status = http.StatusServiceUnavailable
	d.Reason = reason
	d.Description = desc
	d.RetryAfter = max(retry, time.Second)
	if d.Lease == "" {
		d.Lease = LeaseNone
	}
	d.Identity = Identity{}
	return d
}
