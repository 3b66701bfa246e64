package push

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/leasegate/leasegate/leasecache"
)

// actedOn are the event types a SET revokes on, by URI, with the short
// name metrics and logs use. Any other event type is accepted and ignored.
var actedOn = map[string]string{
	"https://schemas.openid.net/secevent/caep/event-type/session-revoked":       "session-revoked",
	"https://schemas.openid.net/secevent/caep/event-type/credential-change":     "credential-change",
	"https://schemas.openid.net/secevent/risc/event-type/account-disabled":      "account-disabled",
	"https://schemas.openid.net/secevent/risc/event-type/credential-compromise": "credential-compromise",
}

// eventUnknown counts the events of a type not acted on.
const eventUnknown = "unknown"

// setTyp is the explicit type of a SET (RFC 8417 §2.3), which SSF
// requires; the receiver refuses a SET without it.
func setTyp(typ string) bool { return typIs(typ, "secevent+jwt") }

// serveSSF is POST /ssf/events (RFC 8935): 202 once the SET is applied
// (or accepted and ignored), 400 with {"err", "description"} for a SET
// refused (§2.3), 503 with Retry-After when the issuer's keys or the
// fleet's store cannot be reached, so the transmitter sends it again.
func (r *Receivers) serveSSF(w http.ResponseWriter, req *http.Request) {
	res := r.serve(req, SourceSSF, r.securityEvent)
	switch {
	case res.refused == nil:
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusAccepted)
	case res.refused.outcome == outcomeUnavailable:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"err": res.refused.code, "description": res.refused.desc})
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"err": res.refused.code, "description": res.refused.desc})
	}
}

// securityEvent validates a pushed SET and revokes what its CAEP and RISC
// events name.
func (r *Receivers) securityEvent(ctx context.Context, req *http.Request) (res result) {
	body, ref := readBody(req, "application/secevent+jwt")
	if ref != nil {
		return result{refused: ref}
	}
	raw := strings.TrimSpace(string(body))
	if !setTyp(headerTyp(raw)) {
		return result{refused: refuse(codeInvalidRequest, "a SET's typ must be secevent+jwt")}
	}
	tok, ref := r.verify(ctx, r.ssf, raw, setTyp, func(t *trusted) []string { return []string{t.cfg.Audience} })
	if ref != nil {
		return result{refused: ref}
	}
	res = result{issuer: tok.is.cfg.Name, jti: tok.jti}
	events, ok := objectClaim(tok.obj, "events")
	if !ok || len(events) == 0 {
		res.refused = refuse(codeInvalidRequest, "events is missing, empty or not an object")
		return res
	}
	// Every lease validated before a SET older than lease.max (plus the
	// skew) has expired already: accepted, nothing to revoke, nothing to
	// remember.
	acceptFor := r.cfg.LeaseMax + tok.is.cfg.ClockSkew
	if tok.iat.Add(acceptFor).Before(r.cfg.Now()) {
		res.stale = true
		return res
	}
	for _, uri := range slices.Sorted(maps.Keys(events)) {
		payload, ok := object(events[uri])
		if !ok {
			res.refused = refuse(codeInvalidRequest, "an event's payload is not an object")
			return res
		}
		short, known := actedOn[uri]
		if !known {
			res.events = append(res.events, eventUnknown)
			continue
		}
		res.events = append(res.events, short)
		subject, ok := objectClaim(payload, "subject") // RISC and early CAEP
		if !ok {
			subject, ok = objectClaim(tok.obj, "sub_id") // SSF 1.0
		}
		if !ok {
			res.refused = refuse(codeInvalidRequest, short+": no subject (event subject or sub_id)")
			return res
		}
		names, err := subjectNames(tok.is.cfg, short, subject)
		if err != nil {
			res.refused = refuse(codeInvalidRequest, short+": "+err.Error())
			return res
		}
		for _, n := range names {
			if !slices.Contains(res.names, n) {
				res.names = append(res.names, n)
			}
		}
	}
	r.apply(ctx, SourceSSF, tok, tok.horizon(acceptFor), &res)
	return res
}

// subjectNames maps the subject identifier (RFC 9493) of event to what it
// revokes: iss_sub (the transmitter's own subjects only) the user's
// leases; email those whose email claim it is; complex its user and its
// session (that session's leases, and the user's that know no session);
// opaque, for session-revoked only, the session it names (CAEP: the
// subject of session-revoked is the session).
func subjectNames(is IssuerConfig, event string, subject map[string]json.RawMessage) ([]leasecache.Name, error) {
	format, _ := stringClaim(subject, "format")
	switch format {
	case "iss_sub", "email":
		return simpleSubject(is, format, subject)
	case "opaque":
		if id, _ := stringClaim(subject, "id"); event == "session-revoked" && id != "" {
			return []leasecache.Name{leasecache.NameOf(is.Name, leasecache.ClaimSession, id)}, nil
		}
		return nil, fmt.Errorf("an opaque subject is a session only for session-revoked, and needs an id")
	case "complex":
		var names []leasecache.Name
		if user, ok := objectClaim(subject, "user"); ok {
			f, _ := stringClaim(user, "format")
			if f != "iss_sub" && f != "email" {
				return nil, fmt.Errorf("complex subject: user format %q is not iss_sub or email", f)
			}
			var err error
			if names, err = simpleSubject(is, f, user); err != nil {
				return nil, err
			}
		}
		if session, ok := objectClaim(subject, "session"); ok {
			id, _ := stringClaim(session, "id")
			if f, _ := stringClaim(session, "format"); f != "opaque" || id == "" {
				return nil, fmt.Errorf("complex subject: session must be an opaque subject with an id")
			}
			for i, n := range names {
				if n.Claim == leasecache.ClaimSubject {
					names[i] = leasecache.NameOf(n.Issuer, leasecache.ClaimSessionlessSubject, n.Value)
				}
			}
			names = append(names, leasecache.NameOf(is.Name, leasecache.ClaimSession, id))
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("complex subject names no user or session")
		}
		return names, nil
	}
	return nil, fmt.Errorf("subject format %q is not supported (iss_sub, email, complex, opaque session)", format)
}

func simpleSubject(is IssuerConfig, format string, subject map[string]json.RawMessage) ([]leasecache.Name, error) {
	if format == "email" {
		email, _ := stringClaim(subject, "email")
		if email == "" {
			return nil, fmt.Errorf("email subject without an email")
		}
		return []leasecache.Name{leasecache.NameOf(is.Name, leasecache.ClaimEmail, email)}, nil
	}
	iss, _ := stringClaim(subject, "iss")
	sub, _ := stringClaim(subject, "sub")
	switch {
	case sub == "":
		return nil, fmt.Errorf("iss_sub subject without a sub")
	case iss != is.Issuer:
		return nil, fmt.Errorf("iss_sub subject of another issuer than the transmitter")
	}
	return []leasecache.Name{leasecache.NameOf(is.Name, leasecache.ClaimSubject, sub)}, nil
}
