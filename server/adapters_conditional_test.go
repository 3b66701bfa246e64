package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/leasegate/leasegate/authz"
	"github.com/leasegate/leasegate/server/forwardauth"
)

// TestAdaptersAgreeOnConditionalCreate: the engine's one judgement of a
// conditional create (the if-none-match upstream header of a storage
// allow) reaches the upstream alike through both adapters: gRPC sets it
// with append false and OVERWRITE_IF_EXISTS_OR_ADD, so the client's value
// cannot stand beside it, or removes it when empty; HTTP mode answers it
// as a response header for nginx's auth_request_set and Caddy's
// copy_headers, empty included.
func TestAdaptersAgreeOnConditionalCreate(t *testing.T) {
	for _, value := range []string{authz.IfNoneMatchCreate, `"v1"`, ""} {
		t.Run("value "+value, func(t *testing.T) {
			d := allowDecision()
			d.Headers = append(d.Headers, authz.Header{Name: authz.HeaderIfNoneMatch, Value: value})
			a := newAdapters(t, forwardauth.ModeForwarded, "", "storage", d)

			er := envoyRequest("PUT", "/atlas/new", "")
			er.Attributes.Request.Http.Headers["if-none-match"] = `"client"`
			resp, err := a.grpc.Check(t.Context(), er)
			if err != nil {
				t.Fatal(err)
			}
			ok := resp.GetOkResponse()
			if ok == nil {
				t.Fatalf("gRPC adapter did not allow: %v", resp)
			}
			var set []*corev3.HeaderValueOption
			for _, o := range ok.GetHeaders() {
				if o.GetHeader().GetKey() == authz.HeaderIfNoneMatch {
					set = append(set, o)
				}
			}
			removed := 0
			for _, n := range ok.GetHeadersToRemove() {
				if n == authz.HeaderIfNoneMatch {
					removed++
				}
			}
			switch {
			case value == "" && (len(set) != 0 || removed != 1):
				t.Errorf("empty value: set %v, removed %d times; want removed once", set, removed)
			case value != "" && (len(set) != 1 || removed != 0):
				t.Errorf("set %v, removed %d times; want set once", set, removed)
			case value != "":
				o := set[0]
				//lint:ignore SA1019 older Envoys read only append, so it must say false
				appendFalse := o.GetAppend() != nil && !o.GetAppend().GetValue()
				if o.GetHeader().GetValue() != value || o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD || !appendFalse {
					t.Errorf("gRPC header %v, want %q overwriting (append false, OVERWRITE_IF_EXISTS_OR_ADD)", o, value)
				}
			}

			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("X-Forwarded-Method", "PUT")
			r.Header.Set("X-Forwarded-Uri", "/atlas/new")
			r.Header.Set("X-Forwarded-Host", "storage.example.org")
			r.Header.Set("If-None-Match", `"client"`)
			w := httptest.NewRecorder()
			a.http.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				t.Fatalf("HTTP mode answered %d", w.Code)
			}
			if got := w.Header().Values("If-None-Match"); len(got) != 1 || got[0] != value {
				t.Errorf("HTTP mode If-None-Match %q, want exactly [%q]", got, value)
			}
		})
	}
}
