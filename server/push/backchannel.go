package push

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/leasegate/leasegate/leasecache"
)

// eventBackchannelLogout is the events member that makes a JWT a logout
// token (OpenID Connect Back-Channel Logout 1.0 §2.4).
const eventBackchannelLogout = "http://schemas.openid.net/event/backchannel-logout"

// logoutTyp accepts the typ of a logout token: logout+jwt (§2.4, explicit
// typing), or JWT, which says no more than no typ at all and is what ORY
// Hydra v2 sends. An access token's at+jwt, a SET's secevent+jwt are
// refused; the events claim and the absence of nonce keep an ID token out.
func logoutTyp(typ string) bool { return typIs(typ, "logout+jwt", "jwt") }

// serveBackchannel is POST /backchannel-logout: 200 once the logout's
// leases are revoked, else 400 with an OAuth 2.0 error body (§2.8).
func (r *Receivers) serveBackchannel(w http.ResponseWriter, req *http.Request) {
	res := r.serve(req, SourceBackchannel, r.backchannelLogout)
	w.Header().Set("Cache-Control", "no-store")
	if res.refused == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	// Every refusal is invalid_request on the wire but one: the logout is
	// good and could not be applied everywhere.
	code := codeInvalidRequest
	if res.refused.outcome == outcomeUnavailable {
		code = res.refused.code
	}
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": res.refused.desc})
}

// backchannelLogout validates a Back-Channel Logout request (§2.5, §2.6)
// and revokes what its logout token names (§2.7): a sid the session's
// leases, and the user's leases that know no session; a sub alone every
// lease of the user.
func (r *Receivers) backchannelLogout(ctx context.Context, req *http.Request) (res result) {
	body, ref := readBody(req, "application/x-www-form-urlencoded")
	if ref != nil {
		return result{refused: ref}
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || len(form["logout_token"]) != 1 || form.Get("logout_token") == "" {
		return result{refused: refuse(codeInvalidRequest, "the body must be a form with exactly one logout_token")}
	}
	tok, ref := r.verify(ctx, r.backchannel, form.Get("logout_token"), logoutTyp, func(t *trusted) []string { return t.cfg.ClientIDs })
	if ref != nil {
		return result{refused: ref}
	}
	res = result{issuer: tok.is.cfg.Name, jti: tok.jti, events: []string{"backchannel-logout"}}
	if ref := logoutClaims(tok); ref != nil {
		res.refused = ref
		return res
	}
	if skew := tok.is.cfg.ClockSkew; tok.iat.Before(r.cfg.Now().Add(-skew)) {
		res.refused = refuse(codeInvalidRequest, "logout token too old (iat outside clock_skew)")
		return res
	}
	sub, _ := stringClaim(tok.obj, "sub")
	sid, _ := stringClaim(tok.obj, "sid")
	name := tok.is.cfg.Name
	switch {
	case sid != "" && sub != "":
		res.names = []leasecache.Name{leasecache.NameOf(name, leasecache.ClaimSession, sid), leasecache.NameOf(name, leasecache.ClaimSessionlessSubject, sub)}
	case sid != "":
		res.names = []leasecache.Name{leasecache.NameOf(name, leasecache.ClaimSession, sid)}
	default:
		res.names = []leasecache.Name{leasecache.NameOf(name, leasecache.ClaimSubject, sub)}
	}
	// A replay could be accepted for as long as its iat is within the
	// skew of now.
	r.apply(ctx, SourceBackchannel, tok, tok.horizon(tok.is.cfg.ClockSkew), &res)
	return res
}

// logoutClaims applies §2.6's claim rules beyond those of every push
// token: the back-channel logout event, no nonce, a sub or sid (strings).
func logoutClaims(tok *token) *refusal {
	events, ok := objectClaim(tok.obj, "events")
	if !ok {
		return refuse(codeInvalidRequest, "events is missing or not an object")
	}
	if _, ok := objectClaim(events, eventBackchannelLogout); !ok {
		return refuse(codeInvalidRequest, "events lacks the back-channel logout event (an object)")
	}
	if _, ok := tok.obj["nonce"]; ok {
		return refuse(codeInvalidRequest, "a logout token must not carry nonce")
	}
	sub, subOK := stringClaim(tok.obj, "sub")
	sid, sidOK := stringClaim(tok.obj, "sid")
	_, hasSub := tok.obj["sub"]
	_, hasSID := tok.obj["sid"]
	switch {
	case hasSub && !subOK, hasSID && !sidOK:
		return refuse(codeInvalidRequest, "sub and sid must be strings")
	case sub == "" && sid == "":
		return refuse(codeInvalidRequest, "a logout token must name sub, sid or both")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the sender may be gone; nothing to do
}
