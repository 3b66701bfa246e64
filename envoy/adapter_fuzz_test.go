package envoy

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// FuzzCheck builds CheckRequests from fuzzed parts and runs them through the
// adapter and the real engine, whose issuer says every token is inactive.
// Whatever the input: no panic, no gRPC error, a status that is never OK, a
// response that passes Envoy's proto validation and marshals.
func FuzzCheck(f *testing.F) {
	f.Add("GET", "/data/f?x=1", "storage.example", "authorization", "Bearer abc", []byte("Bearer abc"), uint8(0), "")
	f.Add("PUT", "/store/x", "h", "Authorization", "Bearer a,Bearer b", []byte("Bearer b"), uint8(1), "read")
	f.Add("", "", "", ":method", "GET", []byte("Bearer \x00\xff"), uint8(2), "critical")
	f.Add("DELETE", "/%2e%2e/", "h", "authorization", "bearer    tok==", []byte{}, uint8(3), "nope")
	f.Add("PROPFIND", "/", "h", "x-auth-subject", "forged\r\n", []byte("Basic dXNlcg=="), uint8(4), "write")
	f.Add("GET", "/", "h", "authorization", "Bearer "+strings.Repeat("A", 20_000), []byte("Bearer"), uint8(5), "")

	// Shared across inputs: building the engine per input would make
	// fuzzing crawl. The issuer never says active.
	is := newTestIssuer(f, true)
	s := newTestServer(f, newRealEngine(f, is.URL))
	f.Fuzz(func(t *testing.T, method, path, host, name, value string, raw []byte, shape uint8, tier string) {
		hr := &authv3.AttributeContext_HttpRequest{Method: method, Path: path, Host: host}
		switch shape % 6 {
		case 0: // Envoy's map
			hr.Headers = map[string]string{name: value, "authorization": string(raw)}
		case 1: // raw header list with the fuzzed field twice
			hr.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: name, RawValue: raw}, {Key: "authorization", Value: value}, {Key: name, RawValue: []byte(value)},
			}}
		case 2: // pseudo-headers only
			hr = &authv3.AttributeContext_HttpRequest{Headers: map[string]string{
				":method": method, ":path": path, ":authority": host, name: value,
			}}
		case 3: // header list with a nil entry
			hr.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{nil, {Key: name, Value: value, RawValue: raw}}}
		case 4: // no http attributes
			hr = nil
		case 5: // mixed-case map keys
			hr.Headers = map[string]string{strings.ToUpper(name): value, name: string(raw)}
		}
		req := httpReq(hr, map[string]string{TierHintKey: tier})

		resp, err := s.Check(t.Context(), req)
		if err != nil {
			t.Fatalf("gRPC error %v: a denial must be a response", err)
		}
		if resp.GetStatus() == nil {
			t.Fatal("response without status")
		}
		if c := codes.Code(resp.GetStatus().GetCode()); c == codes.OK || resp.GetOkResponse() != nil {
			t.Fatalf("allowed with an issuer that never says active: %v", resp)
		}
		if resp.GetDeniedResponse() == nil {
			t.Fatal("denial without denied_response")
		}
		if err := resp.ValidateAll(); err != nil {
			t.Fatalf("ValidateAll: %v", err)
		}
		if _, err := proto.Marshal(resp); err != nil {
			t.Fatalf("Marshal: %v", err)
		}
	})
}
