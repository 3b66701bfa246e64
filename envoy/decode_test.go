package envoy

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// readSchema is CheckRequest with only the fields decodeRead reads, the
// same numbers and types (proto3: strings must be UTF-8). protobuf
// decoding it, unknown fields discarded, is what decodeRead must match.
func readSchema(t testing.TB) protoreflect.MessageDescriptor {
	t.Helper()
	str := func(name string, num protowire.Number) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(int32(num)),
			Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			JsonName: proto.String(name)}
	}
	msg := func(name string, num protowire.Number, typ string, repeated bool) *descriptorpb.FieldDescriptorProto {
		label := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
		if repeated {
			label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
		}
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(int32(num)),
			Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), Label: label.Enum(), TypeName: proto.String(typ),
			JsonName: proto.String(name)}
	}
	entry := func(name string) *descriptorpb.DescriptorProto {
		return &descriptorpb.DescriptorProto{Name: proto.String(name), Field: []*descriptorpb.FieldDescriptorProto{
			str("key", numEntryKey), str("value", numEntryValue)}, Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}}
	}
	raw := &descriptorpb.FieldDescriptorProto{Name: proto.String("raw_value"), Number: proto.Int32(int32(numHVRaw)),
		Type: descriptorpb.FieldDescriptorProto_TYPE_BYTES.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
		JsonName: proto.String("rawValue")}
	file := &descriptorpb.FileDescriptorProto{
		Name: proto.String("leasegate/read.proto"), Package: proto.String("read"), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("CheckRequest"), Field: []*descriptorpb.FieldDescriptorProto{msg("attributes", numAttributes, ".read.Attributes", false)}},
			{Name: proto.String("Attributes"), Field: []*descriptorpb.FieldDescriptorProto{
				msg("request", numRequest, ".read.Request", false),
				msg("context_extensions", numExtensions, ".read.Attributes.ContextExtensionsEntry", true),
			}, NestedType: []*descriptorpb.DescriptorProto{entry("ContextExtensionsEntry")}},
			{Name: proto.String("Request"), Field: []*descriptorpb.FieldDescriptorProto{msg("http", numHTTP, ".read.Http", false)}},
			{Name: proto.String("Http"), Field: []*descriptorpb.FieldDescriptorProto{
				str("id", numID), str("method", numMethod), str("path", numPath), str("host", numHost),
				msg("headers", numHeaders, ".read.Http.HeadersEntry", true),
				msg("header_map", numHeaderMap, ".read.HeaderMap", false),
			}, NestedType: []*descriptorpb.DescriptorProto{entry("HeadersEntry")}},
			{Name: proto.String("HeaderMap"), Field: []*descriptorpb.FieldDescriptorProto{msg("headers", numMapHeaders, ".read.HeaderValue", true)}},
			{Name: proto.String("HeaderValue"), Field: []*descriptorpb.FieldDescriptorProto{str("key", numHVKey), str("value", numHVValue), raw}},
		},
	}
	fd, err := protodesc.NewFile(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().ByName("CheckRequest")
}

// checkDecodeRead: decodeRead of b fails exactly when protobuf decoding
// b into readSchema fails, and otherwise yields the same fields.
func checkDecodeRead(t *testing.T, schema protoreflect.MessageDescriptor, b []byte) {
	t.Helper()
	want := dynamicpb.NewMessage(schema)
	wantErr := proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, want)
	in := new(checkIn)
	err := decodeRead(b, in)
	if errors.Is(err, errTooManyFields) {
		return // refused on purpose; TestDecodeReadBoundsFields
	}
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("decodeRead: %v; protobuf: %v (input %x)", err, wantErr, b)
	}
	if err != nil {
		return
	}
	det := proto.MarshalOptions{Deterministic: true}
	gotB, err := det.Marshal(&in.req)
	if err != nil {
		t.Fatal(err)
	}
	wantB, err := det.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotB, wantB) {
		t.Fatalf("decodeRead read %x; protobuf %x (input %x)", gotB, wantB, b)
	}
}

// decodeCases are requests decodeRead must read as protobuf does: what
// Envoy sends, and the protobuf rules a hand-made request can use.
func decodeCases(t testing.TB) map[string][]byte {
	t.Helper()
	m := func(msg proto.Message) []byte {
		b, err := proto.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	env := envoyRequest("GET", "/atlas/f?x=1", map[string]string{"authorization": "Bearer tok"}, map[string]string{"k": "v"})
	peer := &authv3.AttributeContext_Peer{Principal: "spiffe://example/ns/a", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}}}}}
	env.Attributes.Source, env.Attributes.Destination = peer, peer
	env.Attributes.Request.Http.Body = "a body"
	env.Attributes.Request.Http.Size = 6
	full := m(env)
	raw := m(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
		Method: "PUT", Path: "/p", HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: "authorization", RawValue: []byte("Bearer a")}, {Key: "authorization", RawValue: []byte("Bearer b")},
			{Key: "x-latin1", RawValue: []byte{0xe9}}, {Key: "both", Value: "v", RawValue: []byte("w")}, {},
		}},
	}}, ContextExtensions: map[string]string{TierHintKey: "critical", "other": ""}}})
	second := m(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
		Method: "DELETE", Headers: map[string]string{"authorization": "Bearer second", "x-new": "1"},
	}}}})
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	http := func(b []byte) []byte {
		req := protowire.AppendBytes(tag(numHTTP, protowire.BytesType), b)
		attrs := protowire.AppendBytes(tag(numRequest, protowire.BytesType), req)
		return protowire.AppendBytes(tag(numAttributes, protowire.BytesType), attrs)
	}
	field := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(tag(num, protowire.BytesType), v)
	}
	return map[string][]byte{
		"empty":                  {},
		"envoy request":          full,
		"header_map with raw":    raw,
		"merged with a second":   join(full, second), // scalars: last wins; maps merged
		"method as a varint":     http(protowire.AppendVarint(tag(numMethod, protowire.VarintType), 7)),
		"method not UTF-8":       http(field(numMethod, []byte{0xff})),
		"overwritten not UTF-8":  http(join(field(numMethod, []byte{0xff}), field(numMethod, []byte("GET")))),
		"header value not UTF-8": http(field(numHeaders, join(field(numEntryKey, []byte("a")), field(numEntryValue, []byte{0xc3})))),
		"entry without key":      http(field(numHeaders, field(numEntryValue, []byte("v")))),
		"entry key twice":        http(field(numHeaders, join(field(numEntryKey, []byte("a")), field(numEntryKey, []byte("b")), field(numEntryValue, []byte("v"))))),
		"body not UTF-8 skipped": http(join(field(numMethod, []byte("GET")), field(11, []byte{0xff}))),
		"source not protobuf":    join(full, field(numAttributes, field(1, []byte{0xff, 0xff}))),
		"truncated":              full[:len(full)-3],
		"field number 0":         join(full, []byte{0x02, 0x00}),
		"stray end group":        join(full, tag(5, protowire.EndGroupType)),
		"group skipped":          join(tag(5, protowire.StartGroupType), protowire.AppendVarint(tag(1, protowire.VarintType), 1), tag(5, protowire.EndGroupType), full),
		"huge field number":      join(protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3|2), []byte{0}),
		"header key long":        http(field(numHeaders, join(field(numEntryKey, []byte(strings.Repeat("k", 300))), field(numEntryValue, []byte("v"))))),
	}
}

func TestDecodeReadMatchesProtobuf(t *testing.T) {
	schema := readSchema(t)
	for name, b := range decodeCases(t) {
		t.Run(name, func(t *testing.T) { checkDecodeRead(t, schema, b) })
	}
}

// TestDecodeReadRefuses: the faults protobuf refuses in the fields read
// are refused (checkDecodeRead compares outcomes; this pins which).
func TestDecodeReadRefuses(t *testing.T) {
	cases := decodeCases(t)
	for _, name := range []string{"method not UTF-8", "overwritten not UTF-8", "header value not UTF-8", "truncated", "field number 0", "stray end group", "huge field number"} {
		if err := decodeRead(cases[name], new(checkIn)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	for _, name := range []string{"body not UTF-8 skipped", "source not protobuf", "group skipped", "merged with a second"} {
		if err := decodeRead(cases[name], new(checkIn)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestDecodeReadCopies: the request read does not share the bytes it
// was read from (gRPC reuses them once the codec returns).
func TestDecodeReadCopies(t *testing.T) {
	b := decodeCases(t)["header_map with raw"]
	in := new(checkIn)
	if err := decodeRead(b, in); err != nil {
		t.Fatal(err)
	}
	before, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&in.req)
	for i := range b {
		b[i] = 'X'
	}
	after, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&in.req)
	if !bytes.Equal(before, after) {
		t.Fatal("the request changed with the bytes it was read from")
	}
}

func FuzzDecodeRead(f *testing.F) {
	for _, b := range decodeCases(f) {
		f.Add(b)
	}
	schema := readSchema(f)
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeRead(t, schema, b) })
}

// BenchmarkDecode: the handler's decode of an Envoy-shaped request,
// against protobuf decoding all of it.
//
//	go test ./envoy -run '^$' -bench Decode -benchmem
func BenchmarkDecode(b *testing.B) {
	msg := decodeCases(b)["envoy request"]
	b.Run("protobuf", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r authv3.CheckRequest
			if err := proto.Unmarshal(msg, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decodeRead", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := decodeRead(msg, new(checkIn)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDecodeReadBoundsFields: entries of one key, which protobuf keeps
// once, are refused past maxWireFields instead of each costing a field
// (an empty entry is 2 bytes on the wire).
func TestDecodeReadBoundsFields(t *testing.T) {
	entries := func(n int) []byte {
		var http []byte
		for range n {
			http = protowire.AppendBytes(protowire.AppendTag(http, numHeaders, protowire.BytesType), nil)
		}
		req := protowire.AppendBytes(protowire.AppendTag(nil, numHTTP, protowire.BytesType), http)
		attrs := protowire.AppendBytes(protowire.AppendTag(nil, numRequest, protowire.BytesType), req)
		return protowire.AppendBytes(protowire.AppendTag(nil, numAttributes, protowire.BytesType), attrs)
	}
	in := new(checkIn)
	if err := decodeRead(entries(maxWireFields), in); err != nil {
		t.Fatalf("%d entries: %v", maxWireFields, err)
	}
	if got := in.req.GetAttributes().GetRequest().GetHttp().GetHeaders(); len(got) != 1 || got[""] != "" {
		t.Fatalf("headers %v, want the one empty entry", got)
	}
	if err := decodeRead(entries(maxWireFields+1), new(checkIn)); !errors.Is(err, errTooManyFields) {
		t.Fatalf("%d entries: %v, want %v", maxWireFields+1, err, errTooManyFields)
	}
}

// TestInterceptorSeesWholeRequest: with an interceptor the handler
// decodes every field, since an interceptor expects Check's message.
func TestInterceptorSeesWholeRequest(t *testing.T) {
	var seen *authv3.CheckRequest
	record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		seen, _ = req.(*authv3.CheckRequest)
		return next(ctx, req)
	}
	is := newTestIssuer(t, false)
	s := newTestServer(t, newRealEngine(t, is.URL))
	conn := serveConn(t, grpc.NewServer(append(ServerOptions(100), grpc.UnaryInterceptor(record))...), s)
	req := envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer " + goodToken}, nil)
	req.Attributes.Source = &authv3.AttributeContext_Peer{Principal: "spiffe://example/ns/a"}
	if _, err := authv3.NewAuthorizationClient(conn).Check(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if got := seen.GetAttributes().GetSource().GetPrincipal(); got != "spiffe://example/ns/a" {
		t.Fatalf("the interceptor saw source principal %q", got)
	}
}
