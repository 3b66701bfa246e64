package envoy

import (
	"bytes"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// rawRequest is a CheckRequest's bytes as a client sent them.
type rawRequest []byte

// rawClientCodec sends rawRequest as it is and decodes the answer with
// protobuf-go.
type rawClientCodec struct{}

func (rawClientCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.(rawRequest))}, nil
}

func (rawClientCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

func (rawClientCodec) Name() string { return "proto" }

// TestUndecodableDenied: bytes the adapter's codec cannot decode into a
// CheckRequest are answered with a 400 invalid_request CheckResponse,
// never a gRPC error, which Envoy would hand to failure_mode_allow
// (SPEC §3).
func TestUndecodableDenied(t *testing.T) {
	valid, err := proto.Marshal(envoyRequest("GET", "/data/f", map[string]string{
		"authorization": "Bearer " + goodToken, "x-note": "PLACEHOLDER",
	}, nil))
	if err != nil {
		t.Fatal(err)
	}
	notUTF8 := bytes.Replace(valid, []byte("PLACEHOLDER"), []byte("\xff\xfeACEHOLDER"), 1)
	if bytes.Equal(notUTF8, valid) {
		t.Fatal("placeholder not found")
	}
	tests := map[string]rawRequest{
		"a header value that is not UTF-8": notUTF8,
		"truncated":                        valid[:len(valid)-3],
		"not protobuf":                     rawRequest("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
	}
	is := newTestIssuer(t, false)
	s := newTestServer(t, newRealEngine(t, is.URL))
	conn := serveConn(t, grpc.NewServer(ServerOptions(100)...), s)
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			var resp authv3.CheckResponse
			if err := conn.Invoke(t.Context(), authv3.Authorization_Check_FullMethodName, raw, &resp, grpc.ForceCodecV2(rawClientCodec{})); err != nil {
				t.Fatalf("a gRPC error (Envoy's failure_mode_allow decides): %v", err)
			}
			if got := codes.Code(resp.GetStatus().GetCode()); got != codes.Unauthenticated {
				t.Errorf("status %v, want Unauthenticated", got)
			}
			if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != typev3.StatusCode_BadRequest {
				t.Errorf("HTTP %v, want 400", got)
			}
			if !bytes.Contains([]byte(resp.GetDeniedResponse().GetBody()), []byte("could not be decoded")) {
				t.Errorf("body %q does not say the request could not be decoded", resp.GetDeniedResponse().GetBody())
			}
		})
	}
	// The valid bytes are allowed, through the adapter's codec and
	// through gRPC's own (which decodes into checkIn's request too): the
	// raw client is not what denies.
	for name, c := range map[string]*grpc.ClientConn{"adapter codec": conn, "grpc codec": serveConn(t, grpc.NewServer(), s)} {
		var resp authv3.CheckResponse
		if err := c.Invoke(t.Context(), authv3.Authorization_Check_FullMethodName, rawRequest(valid), &resp, grpc.ForceCodecV2(rawClientCodec{})); err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Errorf("%s: the valid request: %v, %v", name, resp.GetStatus(), err)
		}
	}
}

// TestUndecodableRecovers: a panic while answering an undecodable request
// (here a nil error, whose Error panics) is the 503 fault answer, as in
// answer and Check, never a panic unwinding into gRPC.
func TestUndecodableRecovers(t *testing.T) {
	is := newTestIssuer(t, false)
	s := newTestServer(t, newRealEngine(t, is.URL))
	resp, ok := s.undecodable(t.Context(), nil).(*authv3.CheckResponse)
	if !ok {
		t.Fatal("the answer is not a CheckResponse")
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.Unavailable || resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_ServiceUnavailable {
		t.Fatalf("answer %v, want the 503 fault", resp)
	}
}
