package envoy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/leasegate/leasegate/authz"
)

// The gRPC side of the adapter. A lease hit's OK response is the same for
// every hit of the lease on the same tier, so its encoding is made once,
// kept with the engine's view of the lease (authz.LeaseView.SetMemo) and
// sent as it is: a hit builds no response and the codec copies nothing.
// Check, the in-process API, still builds a new message for every call;
// both render through okResponse and the codec, so the bytes are the ones
// Check's message encodes to (TestWireMatchesCheck).

// Register adds the Authorization service to g, a *grpc.Server built with
// ServerOptions. With another codec, binary or JSON, the answers are the
// same, only slower (see encodedOK), except that a request that cannot be
// decoded is a gRPC error instead of a denial (see checkIn).
func (s *Server) Register(g grpc.ServiceRegistrar) { g.RegisterService(&authorizationService, s) }

// authorizationService is authv3.Authorization_ServiceDesc with its own
// Check handler (checkHandler).
var authorizationService = grpc.ServiceDesc{
	ServiceName: authv3.Authorization_ServiceDesc.ServiceName,
	HandlerType: (*authv3.AuthorizationServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}},
	Metadata:    authv3.Authorization_ServiceDesc.Metadata,
}

// checkHandler decodes the request as the generated handler does and
// answers with Server.answer. An interceptor gets Check's messages, which
// is what it expects to see.
func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	s := srv.(*Server)
	in := &checkIn{all: interceptor != nil} // one allocation for the messages
	if err := dec(in); err != nil {
		return nil, err
	}
	if in.err != nil {
		return s.undecodable(ctx, in.err), nil
	}
	req := &in.req
	if interceptor == nil {
		return s.answer(ctx, req), nil
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, req, info, func(ctx context.Context, r any) (any, error) {
		return s.Check(ctx, r.(*authv3.CheckRequest))
	})
}

func (in *checkIn) ProtoReflect() protoreflect.Message { return in.req.ProtoReflect() }

// undecodable answers a request the codec could not decode (not
// protobuf, a string field that is not UTF-8): it is denied like a
// request without attributes (SPEC §3: 400, invalid_request), with the
// engine's realm, metrics and log line.
func (s *Server) undecodable(ctx context.Context, err error) (out any) {
	defer func() {
		if p := recover(); p != nil {
			s.logPanic(ctx, p)
			out = faultResponse()
		}
	}()
	// protobuf-go's errors name the fault, never the bytes.
	s.log.LogAttrs(ctx, slog.LevelDebug, "ext_authz request could not be decoded", slog.String("error", err.Error()))
	eng := s.engine()
	if eng == nil {
		return faultResponse()
	}
	d := eng.Check(ctx, &authz.Request{})
	if d.Status == http.StatusBadRequest {
		d.SetDescription("the CheckRequest could not be decoded")
	}
	return s.response(&d)
}

// answer is Check for the wire: the same decision and the same contract
// (always an answer with a status, a fault is 503), with a lease hit
// answered by its view's encoding.
func (s *Server) answer(ctx context.Context, req *authv3.CheckRequest) (out any) {
	defer func() {
		if p := recover(); p != nil {
			s.logPanic(ctx, p)
			out = faultResponse()
		}
	}()
	d, enc, ok := s.decide(ctx, req, true)
	switch {
	case !ok:
		return faultResponse()
	case enc != nil:
		return enc
	}
	if e := encodedHit(&d); e != nil {
		return e
	}
	return s.response(&d)
}

// encodedOK is an OK response encoded once, immutable once made. The
// adapter's codec (Codec) sends wire, a buffer over its bytes, without a
// copy. For any other codec it is a proto.Message whose ProtoReflect is a
// new CheckResponse decoded from those bytes, so a binary or JSON codec
// sends the same answer, and nothing such a codec does to the message
// (Reset, its size cache) touches what other hits share.
type encodedOK struct {
	shape okShape
	bytes []byte
	wire  mem.BufferSlice
	// underscore: some name of shape.headers has a "_" (underscoreTwin).
	underscore bool
}

// String does not print the identity an encoding carries.
func (e *encodedOK) String() string {
	return fmt.Sprintf("encoded OK response, %d bytes", len(e.bytes))
}

func (e *encodedOK) ProtoReflect() protoreflect.Message {
	m := new(authv3.CheckResponse)
	if err := proto.Unmarshal(e.bytes, m); err != nil {
		return faultResponse().ProtoReflect() // our own encoding: cannot happen
	}
	return m.ProtoReflect()
}

// Bounds on what a view keeps (it lives in the engine's recent views, at
// most recent.Shards × 2 × recent.PerShard of them): a few encodings,
// one per tier and storage variant in use (first made, first dropped:
// a lease seldom has more than four shapes), each at most
// maxEncodedBytes (a larger answer, from long claims, is encoded for its
// hit and not kept). At most 4 × 1 KiB per view, ~64 MiB for them all.
const (
	maxEncodings    = 4
	maxEncodedBytes = 1 << 10
)

// encodings are a view's encoded answers (its memo), newest last; never
// written after it is made, a new one replaces it.
type encodings []*encodedOK

// encodedHit returns the encoded OK response of d when d is a lease hit
// (an allow with a view) whose shape is keepable, made and kept with the
// view on first use (one over maxEncodedBytes is made for this hit
// only); nil otherwise, and the caller builds the message. d must have
// passed RefuseUnpassable: what is kept answers later hits unjudged.
func encodedHit(d *authz.Decision) *encodedOK {
	if !d.Allow || d.Lease != authz.LeaseHit || d.View == nil {
		return nil
	}
	if e := knownHit(d); e != nil {
		return e
	}
	sh := shapeOf(d)
	known, _ := d.View.Memo().(encodings)
	if !keepable(&sh) {
		return nil
	}
	e := encode(sh)
	if e == nil || len(e.bytes) > maxEncodedBytes {
		return e // sent, not kept
	}
	// A storage route's headers are the request's slice. Their text is
	// the view's (copied out of the lease cache), the config's or "*"
	// (keepable), so the strings can be shared.
	e.shape.headers = slices.Clone(e.shape.headers)
	if len(known) >= maxEncodings {
		known = known[len(known)-maxEncodings+1:]
	}
	d.View.SetMemo(append(slices.Clip(known), e))
	return e
}

// knownHit returns the kept encoding of d's shape, or nil; it makes none.
func knownHit(d *authz.Decision) *encodedOK {
	if !d.Allow || d.Lease != authz.LeaseHit || d.View == nil {
		return nil
	}
	known, _ := d.View.Memo().(encodings)
	if len(known) == 0 {
		return nil
	}
	sh := shapeOf(d)
	for _, e := range known {
		if e.shape.equal(&sh) {
			return e
		}
	}
	return nil
}

// keepable: the shape holds no value the client chose
// (authz.ClientChosen), so one lease has few shapes.
func keepable(sh *okShape) bool {
	for _, h := range sh.headers {
		if authz.ClientChosen(h) {
			return false
		}
	}
	return true
}

// encode makes the encodedOK of shape sh through the adapter's codec; nil
// when that fails.
func encode(sh okShape) *encodedOK {
	bs, err := Codec().Marshal(okResponse(&sh))
	if err != nil {
		return nil
	}
	b := bs.Materialize()
	bs.Free()
	return &encodedOK{shape: sh, bytes: b, wire: mem.BufferSlice{mem.SliceBuffer(b)}, underscore: namesHaveUnderscore(sh.headers)}
}
