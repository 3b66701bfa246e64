package envoy

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/leasegate/leasegate/authz"
)

// A lease's OK response is the same for every hit of it in a tier: the
// identity headers and the dynamic_metadata (sub, client_id, scope, iss,
// tier, lease). It is built once, kept in the lease's authz.LeaseView and
// shared, never changed, by every later hit; gRPC only reads a response
// while it marshals it. What a request adds of its own (a route's upstream
// header, appended to the view's in d.Headers) is composed around the
// shared part in a new message (withExtras), so the shared one stays
// intact.

// okByTier is a view's rendering: one shared OK response per tier seen
// (and Authorization strip setting). Copy-on-write; few entries.
type okByTier []okEntry

type okEntry struct {
	tier  string
	strip bool
	resp  *authv3.CheckResponse
}

// maxRenderings bounds okByTier: a lease is hit in a handful of tiers.
const maxRenderings = 8

// hitResponse is okResponse for a lease hit: the view's shared response,
// with the request's extra headers composed around it; nil when d is not a
// hit whose headers start with its view's.
func hitResponse(d *authz.Decision) *authv3.CheckResponse {
	v := d.View
	if v == nil || d.Lease != authz.LeaseHit {
		return nil
	}
	extra, ok := v.Extra(d.Headers)
	if !ok {
		return nil
	}
	rs, _ := v.Rendering().(okByTier)
	var base *authv3.CheckResponse
	for i := range rs {
		if rs[i].tier == d.Tier && rs[i].strip == d.StripAuthorization {
			base = rs[i].resp
			break
		}
	}
	if base == nil {
		own := *d
		own.Headers = v.Headers()
		base = buildOK(&own)
		if len(rs) < maxRenderings {
			next := make(okByTier, len(rs), len(rs)+1)
			copy(next, rs)
			v.SetRendering(append(next, okEntry{d.Tier, d.StripAuthorization, base}))
		}
	}
	if len(extra) == 0 {
		return base
	}
	return withExtras(base, extra)
}

// withExtras is base, shared and unchanged, with more upstream headers: a
// new CheckResponse and OkHttpResponse that point at base's status,
// metadata and header options, plus the extra ones.
func withExtras(base *authv3.CheckResponse, extra []authz.Header) *authv3.CheckResponse {
	ok := base.GetOkResponse()
	hs := make([]*corev3.HeaderValueOption, len(ok.GetHeaders()), len(ok.GetHeaders())+len(extra))
	copy(hs, ok.GetHeaders())
	rm := ok.GetHeadersToRemove()
	for _, h := range extra {
		switch {
		case h.Name == "":
		case h.Value == "":
			rm = append(rm[:len(rm):len(rm)], h.Name) // copies: never into base's
		default:
			hs = append(hs, overwrite(h.Name, h.Value))
		}
	}
	if len(hs) == 0 {
		hs = nil
	}
	return &authv3.CheckResponse{
		Status:          base.GetStatus(),
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{Headers: hs, HeadersToRemove: rm}},
		DynamicMetadata: base.GetDynamicMetadata(),
	}
}
