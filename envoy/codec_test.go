package envoy

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/leasegate/leasegate/authz"
)

// TestCodecMatchesProto: whatever the build, the codec's bytes decode to
// the message it was given, for every message the server sends (with and
// without generated marshallers, below and above gRPC's buffer pooling
// threshold), and it decodes what protobuf-go encodes.
func TestCodecMatchesProto(t *testing.T) {
	ok := allowDecision()
	big := allowDecision()
	big.Headers = append(big.Headers, authz.Header{Name: "x-big", Value: strings.Repeat("v", 8<<10)})
	denied := denial(403, authz.ReasonScope, authz.ErrCodeInsufficientScope, "nope", "storage.read:/x", `Bearer realm="r"`, 0)
	msgs := map[string]proto.Message{
		"ok":                okOf(&ok),
		"ok, large":         okOf(&big),
		"denied":            deniedResponse(&denied),
		"fault":             faultResponse(),
		"health":            &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING},
		"request":           envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer x"}, nil),
		"empty":             &authv3.CheckResponse{},
		"ok_response alone": &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{overwrite("a", "b")}},
	}
	c := Codec()
	if c.Name() != "proto" {
		t.Fatalf("Name = %q, want proto (the content-subtype Envoy sends)", c.Name())
	}
	for name, m := range msgs {
		t.Run(name, func(t *testing.T) {
			data, err := c.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			b := data.Materialize()
			data.Free()
			got := m.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(b, got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, m) {
				t.Fatalf("round trip:\n%v\nwant\n%v", got, m)
			}
			if len(b) != proto.Size(m) {
				t.Fatalf("%d bytes, protobuf-go's size %d", len(b), proto.Size(m))
			}
			pb, _ := proto.Marshal(m)
			back := m.ProtoReflect().New().Interface()
			if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(pb)}, back); err != nil || !proto.Equal(back, m) {
				t.Fatalf("Unmarshal of protobuf-go's bytes: %v, %v", back, err)
			}
		})
	}
}

// TestCodecBuild: the generated marshallers are there exactly when the
// binary was built with the vtprotobuf tag (make build, the Dockerfile,
// the e2e and bench builds).
func TestCodecBuild(t *testing.T) {
	if VTProtobuf() != vtprotobufTag {
		t.Fatalf("VTProtobuf() = %v in a build with the vtprotobuf tag %v", VTProtobuf(), vtprotobufTag)
	}
}

// okOf is the OK response of allow d, as Check renders it.
func okOf(d *authz.Decision) *authv3.CheckResponse {
	sh := shapeOf(d)
	return okResponse(&sh)
}
