package envoy

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Codec is the gRPC codec for the ext_authz server (grpc.ForceServerCodecV2):
// gRPC's protobuf codec, except that a message with go-control-plane's
// generated marshaller (vtprotobuf) is marshalled by it. go-control-plane
// compiles those only with the build tag vtprotobuf, which `make build`
// sets; without it every message takes protobuf-go's reflection path, as
// before. The bytes are a valid encoding of the same message either way
// (TestCodecMatchesProto); the generated code is ~5× faster on a hit's OK
// response and allocates only the buffer (BENCHMARKS.md).
func Codec() encoding.CodecV2 { return codec{encoding.GetCodecV2(grpcproto.Name)} }

// VTProtobuf reports whether the binary carries go-control-plane's
// generated marshallers (built with -tags vtprotobuf).
func VTProtobuf() bool {
	_, ok := any(faultResponse()).(vtMarshaler)
	return ok
}

// vtMarshaler is what protoc-gen-go-vtproto generates (features
// marshal_strict and size, as go-control-plane uses).
type vtMarshaler interface {
	SizeVT() int
	MarshalToSizedBufferVTStrict([]byte) (int, error)
}

type codec struct{ proto encoding.CodecV2 }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(*encodedOK); ok {
		return e.wire, nil // read-only bytes; SliceBuffer's Free does nothing
	}
	m, ok := v.(vtMarshaler)
	if !ok {
		return c.proto.Marshal(v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if err := marshalVT(m, buf); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if err := marshalVT(m, *buf); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// marshalVT fills buf, exactly SizeVT bytes, from its end (as the
// generated code writes).
func marshalVT(m vtMarshaler, buf []byte) error {
	n, err := m.MarshalToSizedBufferVTStrict(buf)
	if err != nil {
		return fmt.Errorf("envoy: marshal %T: %w", m, err)
	}
	if n != len(buf) {
		return fmt.Errorf("envoy: marshal %T: wrote %d bytes of %d", m, n, len(buf))
	}
	return nil
}

// Unmarshal decodes as gRPC's codec does, except for checkHandler's
// checkIn: only the fields the adapter reads are decoded (decodeRead,
// unless an interceptor needs them all), and a failure is kept in it and
// not returned, so the handler denies the request instead of gRPC
// answering with an error (see checkIn).
func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	in, ok := v.(*checkIn)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	if in.all {
		if err := c.proto.Unmarshal(data, &in.req); err != nil {
			proto.Reset(&in.req)
			in.err = err
		}
		return nil
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	in.err = decodeRead(buf.ReadOnlyData(), in) // decodeRead copies what it keeps
	return nil
}

func (c codec) Name() string { return c.proto.Name() }
