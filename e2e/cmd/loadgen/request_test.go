package main

import (
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

func TestTemplateFill(t *testing.T) {
	tests := []struct {
		name   string
		method string
		n      uint64
		hi, lo uint64
		token  string
		rid    string
	}{
		{"first token", "GET", 0, 0, 1, "tok-000000000000", "00000000-0000-0000-0000-000000000001"},
		{"large token", "PROPFIND", 123456789012, 0xdeadbeef00000000, 0xff, "tok-123456789012", "deadbeef-0000-0000-0000-0000000000ff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := newTemplate(tt.method, "storage.example.org", "/f")
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, len(tmpl.b))
			tmpl.fill(buf, tt.n, tt.hi, tt.lo)
			var req authv3.CheckRequest
			if err := proto.Unmarshal(buf, &req); err != nil {
				t.Fatalf("filled template does not decode: %v", err)
			}
			h := req.GetAttributes().GetRequest().GetHttp()
			if got := h.GetHeaders()["authorization"]; got != "Bearer "+tt.token {
				t.Errorf("authorization = %q, want Bearer %s", got, tt.token)
			}
			if got := h.GetHeaders()["x-request-id"]; got != tt.rid {
				t.Errorf("x-request-id = %q, want %s", got, tt.rid)
			}
			if h.GetMethod() != tt.method || h.GetHeaders()[":method"] != tt.method || h.GetHeaders()[":path"] != "/f" {
				t.Errorf("method/path = %q %q %q", h.GetMethod(), h.GetHeaders()[":method"], h.GetHeaders()[":path"])
			}
		})
	}
}

func TestCheckStatusCode(t *testing.T) {
	marshal := func(r *authv3.CheckResponse) []byte {
		b, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		b       []byte
		want    int32
		wantErr bool
	}{
		{"empty response is OK", nil, 0, false},
		{"OK", marshal(okResponse), 0, false},
		{"unauthenticated", marshal(&authv3.CheckResponse{Status: &rpcstatus.Status{Code: 16, Message: "no_token"}}), 16, false},
		{"truncated", marshal(&authv3.CheckResponse{Status: &rpcstatus.Status{Code: 7, Message: "denied"}})[:3], 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkStatusCode(tt.b)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("checkStatusCode = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseMix(t *testing.T) {
	tests := []struct {
		name    string
		mix     string
		methods []string
		wantErr bool
	}{
		{"issue 9 mix", "GET=85,PUT=12,DELETE=3", []string{"GET", "PUT", "DELETE"}, false},
		{"one method", "PROPFIND=1", []string{"PROPFIND"}, false},
		{"zero weight", "GET=0", nil, true},
		{"no weight", "GET", nil, true},
		{"empty", "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseMix(tt.mix)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseMix(%q) error = %v, want error %v", tt.mix, err, tt.wantErr)
			}
			if strings.Join(m.methods, ",") != strings.Join(tt.methods, ",") {
				t.Fatalf("methods = %v, want %v", m.methods, tt.methods)
			}
		})
	}
	t.Run("weights are honoured", func(t *testing.T) {
		m, _ := parseMix("GET=85,PUT=12,DELETE=3")
		r := rand.New(rand.NewPCG(1, 2))
		counts := make([]int, 3)
		for range 100_000 {
			counts[m.pick(r)]++
		}
		for i, want := range []int{85_000, 12_000, 3_000} {
			if d := counts[i] - want; d < -want/20 || d > want/20 {
				t.Errorf("%s picked %d times, want about %d", m.methods[i], counts[i], want)
			}
		}
	})
}

func TestFakeIssuer(t *testing.T) {
	srv := httptest.NewServer(&fakeIssuer{iss: "https://issuer.example"})
	defer srv.Close()
	tests := []struct {
		name   string
		token  string
		active bool
	}{
		{"population token", "tok-000000000042", true},
		{"short number", "tok-7", true},
		{"not a bench token", "abc", false},
		{"prefix only", "tok-", false},
		{"letters after the prefix", "tok-12a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.PostForm(srv.URL+"/introspect", url.Values{"token": {tt.token}})
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b strings.Builder
			if _, err := io.Copy(&b, resp.Body); err != nil {
				t.Fatal(err)
			}
			if got := strings.HasPrefix(b.String(), `{"active":true`); got != tt.active {
				t.Fatalf("answer %s, want active %v", b.String(), tt.active)
			}
			if tt.active && !strings.Contains(b.String(), `"iss":"https://issuer.example"`) {
				t.Fatalf("answer %s lacks iss", b.String())
			}
		})
	}
}
