package envoy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/leasegate/leasegate/authz"
)

// TierHintKey is the ext_authz per-route context_extensions key that names
// the request's lease tier (SPEC §1).
const TierHintKey = "leasegate.tier"

// ErrNoEngine is returned by New when Config.Engine is nil.
var ErrNoEngine = errors.New("envoy: Config.Engine is required")

// Checker is what the adapter needs from the decision engine;
// *authz.Engine implements it. Check must keep no reference to r once it
// returns: the adapter reuses r.
type Checker interface {
	Check(ctx context.Context, r *authz.Request) authz.Decision
}

// Config is everything New needs.
type Config struct {
	// Engine returns the current checker. It is called on every request,
	// because the server swaps engines on reload; it must be cheap (an
	// atomic load). A nil Checker is answered with 503.
	Engine func() Checker
	// Realm goes into the WWW-Authenticate challenge of the denials the
	// adapter makes on its own (an identity Envoy could not carry upstream,
	// an underscore twin of an identity header; see Check); it should equal
	// the engine's realm. Empty: no realm attribute, which RFC 6750 §3
	// allows.
	Realm string
	// Logger receives adapter faults; slog.Default() when nil. Never a token.
	Logger *slog.Logger
}

// Server answers Envoy's ext_authz v3 Check calls with the engine's
// decisions. Safe for concurrent use.
type Server struct {
	engine func() Checker
	realm  string
	log    *slog.Logger
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// New builds a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Engine == nil {
		return nil, ErrNoEngine
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{engine: cfg.Engine, realm: cfg.Realm, log: cfg.Logger}, nil
}

// Check implements envoy.service.auth.v3.Authorization/Check.
//
// Contract: the error is always nil and the response always carries a
// status. A gRPC error would make Envoy apply failure_mode_allow, which
// could fail open, so denials, engine faults, a cancelled context and even
// a panic in the adapter all become CheckResponses (a fault is UNAVAILABLE
// with HTTP 503).
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.logPanic(ctx, p)
			resp, err = faultResponse(), nil
		}
	}()
	d, _, ok := s.decide(ctx, req, false)
	if !ok {
		return faultResponse(), nil
	}
	return s.response(&d), nil
}

// decide is the decision on req, for Check and for the gRPC handler
// (answer, wire set) alike; ok is false when there is no engine, which is
// a fault. With wire, enc is the kept encoding that answers d, if any.
func (s *Server) decide(ctx context.Context, req *authv3.CheckRequest, wire bool) (d authz.Decision, enc *encodedOK, ok bool) {
	eng := s.engine()
	if eng == nil {
		s.log.LogAttrs(ctx, slog.LevelError, "ext_authz check without an engine")
		return d, nil, false
	}
	// One recycled struct holds the request and its header view: nothing
	// holds it once Check returns (authz.Engine.Check keeps no reference
	// to the request).
	c := checkCalls.Get().(*checkCall)
	defer func() {
		*c = checkCall{} // drop the request's map and strings
		checkCalls.Put(c)
	}()
	if problem := c.fill(req); problem != "" {
		// Headers that cannot be read unambiguously: refused before any
		// lookup. The engine answers a method-less request with 400
		// invalid_request (its realm, metrics and log line); only the
		// description is ours.
		d = eng.Check(ctx, &authz.Request{RequestID: c.req.RequestID, TierHint: c.req.TierHint})
		if d.Status == http.StatusBadRequest {
			d.SetDescription(problem)
		}
		return d, nil, true
	}
	d = eng.Check(ctx, &c.req)
	if wire {
		enc = knownHit(&d)
	}
	// A kept encoding's headers passed RefuseUnpassable when it was made
	// (encodedHit runs after it), and it answers only a decision whose
	// headers equal them: only the request's names are new to judge.
	var underscore bool
	if enc != nil {
		underscore = enc.underscore
	} else {
		underscore = namesHaveUnderscore(d.Headers)
	}
	twin := c.h.underscoreTwin(&d, underscore)
	if enc != nil && twin == "" {
		return d, enc, true
	}
	d.RefuseUnpassable(ctx, s.log, s.realm, twin)
	return d, nil, true
}

// checkCall is one Check's view of the CheckRequest.
type checkCall struct {
	req authz.Request
	h   headerView
}

var checkCalls = sync.Pool{New: func() any { return new(checkCall) }}

// fill maps the CheckRequest onto c.req. A request without
// attributes.request.http keeps an empty Method, which the engine refuses
// as malformed. A non-empty problem (safe to show the client: it names
// headers, never values) means the request must be refused with 400: too
// many header fields, an ambiguous header_map entry, or a method, path or
// host that has to come from the header list and appears there more than
// once.
func (c *checkCall) fill(req *authv3.CheckRequest) string {
	attrs := req.GetAttributes()
	c.req.TierHint = attrs.GetContextExtensions()[TierHintKey]
	hr := attrs.GetRequest().GetHttp()
	if hr == nil {
		return ""
	}
	c.req.RequestID = hr.GetId()
	var problem string
	if c.h, problem = newHeaderView(hr.GetHeaders(), hr.GetHeaderMap()); problem != "" {
		return problem
	}
	// Envoy fills method, path and host; pseudo-headers are the fallback
	// for callers that only send the header list.
	var ok bool
	if c.req.Method, ok = orHeader(hr.GetMethod(), &c.h, ":method"); !ok {
		return "more than one :method header"
	}
	if c.req.Path, ok = orHeader(hr.GetPath(), &c.h, ":path"); !ok {
		return "more than one :path header"
	}
	if c.req.Host, ok = orHeader(hr.GetHost(), &c.h, ":authority"); !ok {
		return "more than one :authority header"
	}
	if c.req.Host == "" {
		if c.req.Host, ok = orHeader("", &c.h, "host"); !ok {
			return "more than one Host header"
		}
	}
	if hr.GetHost() == "" && strings.IndexByte(c.req.Host, ',') >= 0 {
		// Envoy's map joins two :authority or Host fields with ",".
		return "host is not a single host"
	}
	c.req.Headers = &c.h
	if id, n := c.h.Get("x-request-id"); n == 1 && id != "" {
		c.req.RequestID = id
	}
	return ""
}

// orHeader returns v, or when it is empty the single field name in h; ok is
// false when h has more than one such field (which to believe?).
func orHeader(v string, h *headerView, name string) (string, bool) {
	if v != "" {
		return v, true
	}
	v, n := h.Get(name)
	return v, n <= 1
}

// response renders a decision as Envoy expects it (SPEC §3).
func (s *Server) response(d *authz.Decision) *authv3.CheckResponse {
	if d.Allow {
		sh := shapeOf(d)
		return okResponse(&sh)
	}
	return deniedResponse(d)
}

// okParts holds every message of an OK response in one allocation, so the
// hot path (a lease hit) costs a handful of allocations rather than dozens.
type okParts struct {
	resp   authv3.CheckResponse
	status rpcstatus.Status
	oneof  authv3.CheckResponse_OkResponse
	ok     authv3.OkHttpResponse
	no     wrapperspb.BoolValue // append: false, shared by the headers
	ptrs   [4]*corev3.HeaderValueOption
	opts   [4]corev3.HeaderValueOption
	vals   [4]corev3.HeaderValue
	remove [5]string
	md     metaParts
}

// okShape is all of a decision that okResponse renders: two allows of
// equal shape have the same OK response, which is what lets the gRPC
// handler reuse one encoding of it (wire.go).
type okShape struct {
	headers []authz.Header
	strip   bool
	id      authz.Identity
	tier    string
	lease   authz.LeaseOutcome
}

func shapeOf(d *authz.Decision) okShape {
	return okShape{headers: d.Headers, strip: d.StripAuthorization, id: d.Identity, tier: d.Tier, lease: d.Lease}
}

func (a *okShape) equal(b *okShape) bool {
	return a.strip == b.strip && a.id == b.id && a.tier == b.tier && a.lease == b.lease && slices.Equal(a.headers, b.headers)
}

// okResponse builds the OK response of an allow of shape sh, new for every
// call. A route's own upstream headers appended to the decision's Headers
// are rendered like the identity headers.
func okResponse(sh *okShape) *authv3.CheckResponse {
	p := new(okParts)
	p.ok.Headers = p.ptrs[:0]
	p.ok.HeadersToRemove = p.remove[:0]
	for _, h := range sh.headers {
		switch {
		case h.Name == "":
		case h.Value == "":
			// Removed, not sent empty: nothing the client sent under an
			// identity name may reach the upstream.
			p.ok.HeadersToRemove = append(p.ok.HeadersToRemove, h.Name)
		default:
			var o *corev3.HeaderValueOption
			var v *corev3.HeaderValue
			if n := len(p.ok.Headers); n < len(p.opts) {
				o, v = &p.opts[n], &p.vals[n]
			} else {
				o, v = new(corev3.HeaderValueOption), new(corev3.HeaderValue)
			}
			v.Key, v.Value = h.Name, h.Value
			setOverwrite(o, v, &p.no)
			p.ok.Headers = append(p.ok.Headers, o)
		}
	}
	if sh.strip {
		p.ok.HeadersToRemove = append(p.ok.HeadersToRemove, "authorization")
	}
	if len(p.ok.Headers) == 0 {
		p.ok.Headers = nil
	}
	if len(p.ok.HeadersToRemove) == 0 {
		p.ok.HeadersToRemove = nil
	}
	p.status.Code = int32(codes.OK)
	p.oneof.OkResponse = &p.ok
	p.resp.Status = &p.status
	p.resp.HttpResponse = &p.oneof
	p.resp.DynamicMetadata = p.md.fill(
		"sub", sh.id.Subject,
		"client_id", sh.id.ClientID,
		"scope", sh.id.Scope,
		"iss", sh.id.Issuer,
		"tier", sh.tier,
		"lease", string(sh.lease),
	)
	return &p.resp
}

// deniedParts is okParts for a denial: a flood of bad tokens is a hot path
// too.
type deniedParts struct {
	resp   authv3.CheckResponse
	status rpcstatus.Status
	oneof  authv3.CheckResponse_DeniedResponse
	denied authv3.DeniedHttpResponse
	http   typev3.HttpStatus
	no     wrapperspb.BoolValue
	ptrs   [4]*corev3.HeaderValueOption
	opts   [4]corev3.HeaderValueOption
	vals   [4]corev3.HeaderValue
	md     metaParts
}

func deniedResponse(d *authz.Decision) *authv3.CheckResponse {
	p := new(deniedParts)
	status := httpStatus(d.Status)
	n := 0
	add := func(name, value string) {
		p.vals[n] = corev3.HeaderValue{Key: name, Value: value}
		setOverwrite(&p.opts[n], &p.vals[n], &p.no)
		p.ptrs[n] = &p.opts[n]
		n++
	}
	if d.Challenge != "" {
		add("www-authenticate", d.Challenge)
	}
	add("content-type", "application/json")
	add("cache-control", "no-store")
	if status == typev3.StatusCode_ServiceUnavailable {
		add("retry-after", d.RetryAfterSeconds())
	}
	p.http.Code = status
	p.denied = authv3.DeniedHttpResponse{Status: &p.http, Headers: p.ptrs[:n], Body: string(d.Body())}
	p.status = rpcstatus.Status{Code: int32(grpcCode(status)), Message: string(d.Reason)}
	p.oneof.DeniedResponse = &p.denied
	p.resp.Status = &p.status
	p.resp.HttpResponse = &p.oneof
	p.resp.DynamicMetadata = p.md.fill(
		"tier", d.Tier,
		"lease", string(d.Lease),
		"reason", string(d.Reason),
	)
	return &p.resp
}

// httpStatus maps a denial's status onto Envoy's enum; a status Envoy does
// not define (or a missing one) becomes 403 for 4xx and 503 otherwise, so
// a denial never turns into something else.
func httpStatus(code int) typev3.StatusCode {
	if code != 0 && code != http.StatusOK {
		if _, ok := typev3.StatusCode_name[int32(code)]; ok {
			return typev3.StatusCode(code)
		}
	}
	if code >= 400 && code < 500 {
		return typev3.StatusCode_Forbidden
	}
	return typev3.StatusCode_ServiceUnavailable
}

// grpcCode is SPEC §3's mapping: 400 and 401 UNAUTHENTICATED, 403
// PERMISSION_DENIED, 503 (and any other server-side fault) UNAVAILABLE.
func grpcCode(s typev3.StatusCode) codes.Code {
	switch {
	case s == typev3.StatusCode_BadRequest || s == typev3.StatusCode_Unauthorized:
		return codes.Unauthenticated
	case s >= 400 && s < 500:
		return codes.PermissionDenied
	default:
		return codes.Unavailable
	}
}

// setOverwrite makes o a header that replaces any existing one of that
// name. Both append_action and the deprecated append are set: Envoys
// before append_action read only append, and newer ones read append first
// when it is present (false means OVERWRITE_IF_EXISTS_OR_ADD). no must hold
// false.
func setOverwrite(o *corev3.HeaderValueOption, v *corev3.HeaderValue, no *wrapperspb.BoolValue) {
	o.Header = v
	o.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	//lint:ignore SA1019 older Envoys read only append; both are set so every version agrees
	o.Append = no
}

func overwrite(name, value string) *corev3.HeaderValueOption {
	o := new(corev3.HeaderValueOption)
	setOverwrite(o, &corev3.HeaderValue{Key: name, Value: value}, wrapperspb.Bool(false))
	return o
}

// metaParts is the dynamic_metadata Struct, set on CheckResponse (the field
// in OkHttpResponse is deprecated) so Envoy's access log sees it on denials
// too.
type metaParts struct {
	st    structpb.Struct
	vals  [6]structpb.Value
	kinds [6]structpb.Value_StringValue
}

// fill sets string fields from key, value pairs (at most six).
func (m *metaParts) fill(kv ...string) *structpb.Struct {
	n := len(kv) / 2
	m.st.Fields = make(map[string]*structpb.Value, n)
	for i := range n {
		v := kv[2*i+1]
		if !utf8.ValidString(v) {
			v = strings.ToValidUTF8(v, "\uFFFD") // a proto3 string must be UTF-8
		}
		m.kinds[i].StringValue = v
		m.vals[i].Kind = &m.kinds[i]
		m.st.Fields[kv[2*i]] = &m.vals[i]
	}
	return &m.st
}

// fault is the decision of an adapter fault (authz.Unavailable), and
// faultBody and faultRetry its rendering, made once at start so that
// faultResponse runs none of the code that may just have failed.
var (
	fault      = authz.Unavailable("internal error")
	faultBody  = string(fault.Body())
	faultRetry = fault.RetryAfterSeconds()
)

// faultResponse is the answer when the adapter itself fails: fail closed
// with 503, built without the decision path that just failed.
func faultResponse() *authv3.CheckResponse {
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.Unavailable), Message: "internal_error"},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
			Headers: []*corev3.HeaderValueOption{
				overwrite("content-type", "application/json"),
				overwrite("cache-control", "no-store"),
				overwrite("retry-after", faultRetry),
			},
			Body: faultBody,
		}},
	}
}

// logPanic records an adapter panic.
func (s *Server) logPanic(ctx context.Context, p any) {
	s.log.LogAttrs(ctx, slog.LevelError, "ext_authz check panicked; answered 503", authz.PanicAttrs(p)...)
}
