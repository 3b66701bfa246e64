package authz

import (
	"strings"
	"sync/atomic"

	"github.com/leasegate/leasegate/authz/headertext"
	"github.com/leasegate/leasegate/authz/trust"
	"github.com/leasegate/leasegate/leasecache"
)

// LeaseView is what every hit of one lease allows with: the identity, the
// upstream identity headers (judged once) and the token id, made on the
// lease's first hit and shared, unchanged, by the hits after it
// (Decision.View), so a hit allocates neither headers nor the token id's
// hex.
type LeaseView struct {
	// issuer is the ID, not the pointer: a view kept with a memoised lease
	// outlives its engine, and must not keep a retired one's clients.
	issuer   uint64
	tokenID  string
	identity Identity
	headers  []Header // len == cap: a caller's append copies, never writes here
	memo     atomic.Pointer[any]
	// withINM holds headers plus If-None-Match "" and "*", the values a
	// storage route's hit mostly passes (withIfNoneMatch), made on first use.
	withINM [2]atomic.Pointer[[]Header]
}

// withIfNoneMatch is v's headers followed by If-None-Match: inm, shared by
// the hits that pass the same "" or "*", a copy for any other value.
func (v *LeaseView) withIfNoneMatch(inm string) []Header {
	i := 0
	switch inm {
	case "":
	case IfNoneMatchCreate:
		i = 1
	default:
		return append(v.headers, Header{HeaderIfNoneMatch, inm}) // len == cap: a copy
	}
	if p := v.withINM[i].Load(); p != nil {
		return *p
	}
	// The constant, not inm: the request's text must not outlive it (the
	// envoy adapter's strings share one copy of the whole request).
	hs := append(v.headers, Header{HeaderIfNoneMatch, []string{"", IfNoneMatchCreate}[i]})
	hs = hs[:len(hs):len(hs)]
	v.withINM[i].Store(&hs)
	return hs
}

// Memo returns what an adapter kept with the view (SetMemo), or nil. The
// engine never reads it; it lives and dies with the view, so nothing kept
// there outlasts the lease hits it was made for.
func (v *LeaseView) Memo() any {
	if p := v.memo.Load(); p != nil {
		return *p
	}
	return nil
}

// SetMemo keeps x with the view for the adapter that made it (the gRPC
// adapter keeps the view's encoded OK answers there). x must be immutable:
// concurrent hits share it. The last SetMemo wins.
func (v *LeaseView) SetMemo(x any) { v.memo.Store(&x) }

// matches reports whether v renders lease l of issuer is: the same
// identity, whatever validation produced l.
func (v *LeaseView) matches(l *leasecache.Lease, is *trust.Issuer) bool {
	return v.issuer == is.ID() && v.identity.Subject == l.Subject && v.identity.ClientID == l.ClientID && v.identity.Scope == l.Scope
}

// view returns the view of key's lease l (raw: the token's own SHA-256,
// for the token id), making it on first use; nil when the identity cannot
// be passed upstream (allow then refuses the token). A view is only used
// after the lease cache answered a hit for key and only while it matches
// that lease, so it can never outlive a revocation or a revalidation with
// other claims; it only saves building the same allow again. It is kept
// among the engine's recent views, bounded (recent.Map), and with a
// memoised lease (its Note: one pointer, no lookup).
func (e *Engine) view(key, raw leasecache.Key, l *leasecache.Lease, is *trust.Issuer) *LeaseView {
	if l.Note != nil {
		if v, _ := l.Note.Load().(*LeaseView); v != nil && v.matches(l, is) {
			return v
		}
	}
	// The recent views too: a memo slot two hot tokens share changes
	// hands, and the view (with its encodings) should survive that.
	v, ok := e.views.Get(key)
	if !ok || !v.matches(l, is) {
		if v = e.newView(raw, l, is); v == nil {
			return nil
		}
		e.views.Put(key, v)
	}
	if l.Note != nil {
		l.Note.Store(v)
	}
	return v
}

// newView builds the view of l, its strings copied out of the cache
// entry; nil when a claim is not headertext.ClaimSafe.
func (e *Engine) newView(raw leasecache.Key, l *leasecache.Lease, is *trust.Issuer) *LeaseView {
	id := Identity{
		Subject:  strings.Clone(l.Subject),
		ClientID: strings.Clone(l.ClientID),
		Scope:    strings.Clone(l.Scope),
		Issuer:   is.Config.Issuer,
	}
	hs := e.identityHeaders(id)
	if hs == nil {
		return nil
	}
	return &LeaseView{issuer: is.ID(), tokenID: raw.Prefix(), identity: id, headers: hs[:len(hs):len(hs)]}
}

// identityHeaders are the upstream headers of id, or nil when a value is
// not headertext.ClaimSafe: a claim with CR/LF/NUL or of absurd size would break or
// inject upstream headers.
func (e *Engine) identityHeaders(id Identity) []Header {
	hs := []Header{
		{e.upstream.Subject, id.Subject},
		{e.upstream.ClientID, id.ClientID},
		{e.upstream.Scope, id.Scope},
		{e.upstream.Issuer, id.Issuer},
	}
	for _, h := range hs {
		if !headertext.ClaimSafe(h.Value) {
			return nil
		}
	}
	return hs
}
