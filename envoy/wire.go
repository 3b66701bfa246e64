package envoy

import (
	"context"
	"slices"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
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
// ServerOptions (any other codec also sends the right bytes, only slower:
// see encodedOK).
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
	req := new(authv3.CheckRequest)
	if err := dec(req); err != nil {
		return nil, err
	}
	s := srv.(*Server)
	if interceptor == nil {
		return s.answer(ctx, req), nil
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, req, info, func(ctx context.Context, r any) (any, error) {
		return s.Check(ctx, r.(*authv3.CheckRequest))
	})
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
	d, ok := s.decide(ctx, req)
	if !ok {
		return faultResponse()
	}
	if e := encodedHit(&d); e != nil {
		return e
	}
	return s.response(ctx, &d)
}

// encodedOK is an OK response encoded once. Its CheckResponse is empty but
// for unknown fields that hold the whole encoding, so any protobuf codec
// sends exactly those bytes; the adapter's own (Codec) sends wire, a
// buffer over them, without a copy. Immutable once made.
type encodedOK struct {
	authv3.CheckResponse
	shape okShape
	wire  mem.BufferSlice
}

// maxEncodings bounds the encodings kept per view: one per tier and
// storage-route variant in use, reset when full.
const maxEncodings = 4

// encodings are a view's encoded answers (its memo); never written after
// it is made, a new one replaces it.
type encodings []*encodedOK

// encodedHit returns the encoded OK response of d when d is a lease hit
// (an allow with a view), made and kept with the view on first use; nil
// otherwise, or when encoding fails, and the caller builds the message.
func encodedHit(d *authz.Decision) *encodedOK {
	if !d.Allow || d.Lease != authz.LeaseHit || d.View == nil {
		return nil
	}
	sh := shapeOf(d)
	known, _ := d.View.Memo().(encodings)
	for _, e := range known {
		if e.shape.equal(&sh) {
			return e
		}
	}
	e := encode(sh)
	if e == nil {
		return nil
	}
	if len(known) >= maxEncodings {
		known = nil
	}
	d.View.SetMemo(append(slices.Clip(known), e))
	return e
}

// encode makes the encodedOK of shape sh through the adapter's codec.
func encode(sh okShape) *encodedOK {
	bs, err := Codec().Marshal(okResponse(&sh))
	if err != nil {
		return nil
	}
	b := bs.Materialize()
	bs.Free()
	sh.headers = slices.Clone(sh.headers) // a storage route's are the request's own
	e := &encodedOK{shape: sh, wire: mem.BufferSlice{mem.SliceBuffer(b)}}
	e.ProtoReflect().SetUnknown(protoreflect.RawFields(b))
	return e
}
