package policy

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzRouteSpelling is the differential target of issue 19 class 1 (SPEC §1:
// "No spelling of a path or host may select a weaker route than its
// normalised form selects"). For any request Normalize accepts:
//
//   - its normalised form, fed back in, is a fixed point;
//   - the raw spelling selects a route that is not weaker than the one its
//     normalised form selects, and the same as an independent reference
//     matcher that reads the configuration directly;
//   - respelling the normalised form (escapes, dot segments, "//",
//     ";parameters", host case, trailing dot, default or zero-padded port,
//     a query) gives the same request and a route that is not weaker.
//
// "Weaker" means it lost a storage requirement, has a longer window (a
// longer window is a longer revocation lag) or a looser token lifetime
// limit (SPEC §2: every matching route's applies). A request Normalize refuses
// gets 400 before any route is chosen, which is never weaker.
func FuzzRouteSpelling(f *testing.F) {
	seeds := []struct {
		method, host, target string
		ops                  []byte
	}{
		{"GET", "storage.example.org", "/data;x/secret", nil},
		{"GET", "storage.example.org", "/%64ata/secret%zz", nil},
		{"GET", "storage.example.org", `/data\secret`, nil},
		{"GET", "storage.example.org.", "/vo/secret", nil},
		{"GET", "storage.example.org", "/store/secret.root#/../../public/x", nil},
		{"PUT", "", "/atlas/upload/f", []byte{0, 9, 4, 12, 20}},
		{"GET", "Storage.Example.Org:8443", "/vo/f", []byte{5, 6, 7, 15}},
		{"GET", "[2001:db8::1]", "/both/x/f?q=1", []byte{1, 2, 3, 4, 7}},
		{"POST", "h", "/search;x", []byte{4, 8, 16}},
		{"GET", "", "/my%20dir/f", []byte{0, 8, 16, 24}},
		{"DELETE", "storage.example.org", "//admin/./../admin;x/u", []byte{2, 10, 18}},
		{"GET", "storage.example.org", "/slow", []byte{3, 11}},
	}
	for _, s := range seeds {
		f.Add(s.method, s.host, s.target, s.ops)
	}
	p := spellingPolicy(f)
	routes := spellingRoutes(f)
	f.Fuzz(func(t *testing.T, method, host, target string, ops []byte) {
		n, err := Normalize(method, host, target)
		if err != nil {
			return // 400 before any route is chosen
		}
		norm := p.Classify(n, "")

		// Fixed points: the normalised form, spelled as a target, normalises
		// to itself; so does the literal form (its ;parameters drop again).
		n2, err := Normalize(method, n.Host(), reescape(n.Path()))
		if err != nil || n2 != (Request{method: method, host: n.host, path: n.path, literal: n.path}) {
			t.Fatalf("normalised form %q (host %q) is not a fixed point: %+v, %v", n.Path(), n.Host(), n2, err)
		}
		if n3, err := Normalize(method, n.Host(), reescape(n.LiteralPath())); err != nil || n3 != n {
			t.Fatalf("literal form %q is not a fixed point: %+v, %v; want %+v", n.LiteralPath(), n3, err, n)
		}
		if why := weaker(p.Classify(n, ""), p.Classify(n2, "")); why != "" {
			t.Fatalf("%s %q (host %q): the raw spelling %s than the normalised form %q", method, target, host, why, n.Path())
		}

		// Differential: the compiled matcher against a plain reading of
		// the configuration.
		first, require := referenceMatch(routes, method, n.Host(), n.Path())
		if got := routeIndex(p, norm.Route); got != first {
			t.Fatalf("%s %q (host %q, normalised %q): first route %d, reference %d", method, target, host, n.Path(), got, first)
		}
		if norm.Require != require {
			t.Fatalf("%s %q (host %q, normalised %q): requirements %b, reference %b", method, target, host, n.Path(), norm.Require, require)
		}

		// Another spelling of the same request.
		rawPath, rawHost := respell(reescape(n.Path()), n.Host(), ops)
		n4, err := Normalize(method, rawHost, rawPath)
		if err != nil {
			t.Fatalf("respelling %q (host %q) of %q (host %q) refused: %v", rawPath, rawHost, n.Path(), n.Host(), err)
		}
		if n4.Path() != n.Path() || n4.Host() != n.Host() {
			t.Fatalf("respelling %q (host %q) normalises to %q (host %q), want %q (host %q)", rawPath, rawHost, n4.Path(), n4.Host(), n.Path(), n.Host())
		}
		if why := weaker(p.Classify(n4, ""), norm); why != "" {
			t.Fatalf("respelling %q (host %q) %s than %q", rawPath, rawHost, why, n.Path())
		}
	})
}

// FuzzTargetRoutes is FuzzRouteSpelling for the second path of a MOVE or
// COPY (SPEC §1: "every matching route's require: ... applies"; SPEC §5
// says which targets name this server). For any request and Destination
// and Source that Normalize and ParseTarget accept:
//
//   - AddTargets never makes the match weaker than the request path's
//     alone, nor raises its stale_if_error;
//   - for every target that storage.Authorize reads as local (given the
//     folded match's local_hosts and the issuer's), the requirements
//     include those an independent reference matcher finds for the
//     target's path under the request's host and under the target's, and
//     the window is no longer than the target's first route sets;
//   - when no target is local, nothing changes (another server's
//     business);
//   - respelling a target (escapes, dot segments, "//", ";parameters",
//     host case, trailing dot, default port) gives the same match.
func FuzzTargetRoutes(f *testing.F) {
	seeds := []struct {
		method, host, target, dest, src string
		ops                             []byte
	}{
		{"MOVE", "storage.example.org", "/public/x", "/data/secret", "", nil},
		{"MOVE", "storage.example.org", "/public/x", "http://storage.example.org/data/secret", "", []byte{5, 6, 7}},
		{"COPY", "storage.example.org", "/public/y", "/data/secret", "", []byte{0, 9}},
		{"COPY", "storage.example.org", "/public/y", "", "/data/secret", []byte{2, 4}},
		{"COPY", "storage.example.org", "/public/y", "https://remote.example.net/data/secret", "", nil},
		{"COPY", "storage.example.org", "/public/y", "", "https://remote.example.net/data/secret", nil},
		{"MOVE", "storage.example.org", "/public/x", "https://dav.example.org/data/s", "", []byte{5}},
		{"COPY", "storage.example.org", "/public/x", "https://dav.example.org/sci/y", "/data/z", []byte{1, 3}},
		{"MOVE", "storage.example.org:8443", "/public/x", "/vo/f", "", nil},
		{"MOVE", "storage.example.org", "/public/x", "http://192.0.2.1/vo/f", "", []byte{7, 15}},
		{"MOVE", "storage.example.org", "/public/x", "https://webdav.example.org/alias/f", "", []byte{6}},
		{"PROPFIND", "", "/x", "/admin/%2e%2e/atlas/upload/f", "", nil},
		{"MOVE", "storage.example.org", "/bulk/x", "http://localhost:2880/both/x/f;p", "", []byte{4, 12}},
	}
	for _, s := range seeds {
		f.Add(s.method, s.host, s.target, s.dest, s.src, s.ops)
	}
	p := targetPolicy(f)
	routes := p.routes
	f.Fuzz(func(t *testing.T, method, host, target, dest, src string, ops []byte) {
		n, err := Normalize(method, host, target)
		if err != nil {
			return
		}
		raw := [2]string{dest, src}
		var ts [2]Target
		for i, v := range raw {
			if v == "" {
				continue
			}
			if ts[i], err = ParseTarget(v); err != nil {
				return // 400 before any route is chosen
			}
		}
		base := p.Classify(n, "")
		m := base
		p.AddTargets(&m, ts[0], ts[1], targetIssuerHosts)
		if why := weaker(m, base); why != "" || m.StaleIfError > base.StaleIfError {
			t.Fatalf("%s %q with targets %q: %s (stale %v, not %v) than the request path alone", method, target, raw, why, m.StaleIfError, base.StaleIfError)
		}

		anyLocal := false
		for i, tg := range ts {
			if tg.path == "" {
				continue
			}
			// storage.Authorize reads a target with ParseTarget, as above,
			// and decides it is local here, with the same hosts.
			if !tg.NamesThisServer(n.Host(), m.LocalHosts, targetIssuerHosts) {
				continue
			}
			anyLocal = true
			hosts := []string{n.Host()}
			if tg.host != "" && tg.host != n.Host() {
				hosts = append(hosts, tg.host)
			}
			for _, h := range hosts {
				first, require := referenceMatch(routes, method, h, tg.path)
				if require&^m.Require != 0 {
					t.Fatalf("%s %q: local target %q (path %q, host %q) requires %b, the request only %b", method, target, raw[i], tg.path, h, require, m.Require)
				}
				ref := referenceLease(p, routes, first)
				if ref.hasWindow && m.Window > ref.window {
					t.Fatalf("%s %q: local target %q (path %q, host %q) allows %v, the request %v", method, target, raw[i], tg.path, h, ref.window, m.Window)
				}
				if ref.hasStale && m.StaleIfError > ref.stale {
					t.Fatalf("%s %q: local target %q (path %q, host %q) allows stale %v, the request %v", method, target, raw[i], tg.path, h, ref.stale, m.StaleIfError)
				}
			}
		}
		if !anyLocal && (m.Require != base.Require || m.Window != base.Window || m.Tier != base.Tier || m.StaleIfError != base.StaleIfError) {
			t.Fatalf("%s %q: remote targets %q changed the match: %+v, not %+v", method, target, raw, m, base)
		}

		// Another spelling of each target gives the same match.
		var re [2]Target
		for i, tg := range ts {
			if tg.path == "" {
				continue
			}
			rawPath, rawHost := respell(reescapeTarget(tg.path), tg.host, ops)
			v := rawPath
			if tg.host != "" {
				v = "https://" + rawHost + rawPath
			} else if strings.HasPrefix(v, "//") {
				v = "/." + v // a path, not a network-path reference
			}
			if re[i], err = ParseTarget(v); err != nil {
				t.Fatalf("respelling %q of target %q refused: %v", v, raw[i], err)
			}
			if re[i].path != tg.path || re[i].host != tg.host {
				t.Fatalf("respelling %q of target %q reads as %+v, want %+v", v, raw[i], re[i], tg)
			}
		}
		m2 := base
		p.AddTargets(&m2, re[0], re[1], targetIssuerHosts)
		if m2.Require != m.Require || m2.Window != m.Window || m2.Tier != m.Tier || m2.StaleIfError != m.StaleIfError {
			t.Fatalf("respelled targets of %q give %+v, not %+v", raw, m2, m)
		}
	})
}

// reescapeTarget is reescape for a Destination or Source, which may not
// carry whitespace, control characters or a ',' that could read as a join.
func reescapeTarget(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c <= ' ' || c == 0x7f || c == '%' || c == '?' || c == '#' || c == ',':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// leaseLimits are what a route sets for a lease: a window, and with a tier
// that tier's stale_if_error.
type leaseLimits struct {
	window, stale       time.Duration
	hasWindow, hasStale bool
}

// referenceLease reads off the configuration what route first sets for a
// request on its path: its tier's window capped by its own, or its own;
// nothing when it sets neither (or there is no route).
func referenceLease(p *Policy, routes []Route, first int) leaseLimits {
	if first < 0 {
		return leaseLimits{}
	}
	r := routes[first]
	if r.Tier == "" {
		return leaseLimits{window: r.Window, hasWindow: r.HasWindow}
	}
	for _, t := range p.Tiers() {
		if t.Name == r.Tier {
			l := leaseLimits{window: t.Window, stale: t.StaleIfError, hasWindow: true, hasStale: true}
			if r.HasWindow {
				l.window = min(l.window, r.Window)
			}
			return l
		}
	}
	return leaseLimits{}
}

// weaker says how a is weaker than b, or "" when it is not.
func weaker(a, b Match) string {
	switch {
	case b.Require&^a.Require != 0:
		return fmt.Sprintf("lost requirements (%b, not %b)", a.Require, b.Require)
	case a.Window > b.Window:
		return fmt.Sprintf("has a longer window (%v, not %v)", a.Window, b.Window)
	case a.Lifetime.Limit.Min(b.Lifetime.Limit) != a.Lifetime.Limit:
		return fmt.Sprintf("has a looser token lifetime limit (%v, not %v)", a.Lifetime.Limit, b.Lifetime.Limit)
	}
	return ""
}

// spellingRoutes is spellingPolicy's route table.
func spellingRoutes(t testing.TB) []Route {
	t.Helper()
	return spellingPolicy(t).routes
}

func routeIndex(p *Policy, r *Route) int {
	for i := range p.routes {
		if &p.routes[i] == r {
			return i
		}
	}
	return -1
}

// referenceMatch is route matching read straight off the configuration, with
// none of the compiled matcher's code: a linear scan, a host compared without
// its port when the rule names none, a prefix by plain string comparison.
func referenceMatch(routes []Route, method, host, path string) (first int, require Requirements) {
	first = -1
	portless := func(h string) (name string, hasPort bool) {
		if j := strings.LastIndex(h, ":"); j >= 0 && !strings.HasSuffix(h, "]") {
			return h[:j], true
		}
		return h, false
	}
	for i, r := range routes {
		loose := false
		if r.Host != "" {
			rName, rPort := portless(r.Host)
			hName, hPort := portless(host)
			switch {
			case host == "": // no host: every host rule applies, loosely
				loose = true
			case !rPort && rName == hName: // the rule names no port
			case rPort && r.Host == host:
			case rPort && !hPort && rName == hName: // the request names none: loosely
				loose = true
			default:
				continue
			}
		}
		if len(r.Methods) > 0 {
			found := false
			for _, m := range r.Methods {
				found = found || m == method
			}
			if !found {
				continue
			}
		}
		if !strings.HasPrefix(path, r.Prefix) && path+"/" != r.Prefix {
			continue
		}
		if first < 0 && !loose { // a loose match gives no route
			first = i
		}
		switch r.Require {
		case ProfileWLCG:
			require |= 1
		case ProfileSciTokens:
			require |= 2
		}
	}
	return first, require
}

// respell rewrites a raw path and host into another spelling of the same
// request, one edit per op byte: the low three bits pick the edit, the rest
// where it applies.
func respell(raw, host string, ops []byte) (string, string) {
	for _, op := range ops {
		at := int(op >> 3)
		switch op & 7 {
		case 0: // percent-encode an unreserved character
			if i := nthIndex(raw, at, isPlainChar); i >= 0 {
				enc := fmt.Sprintf("%%%02X", raw[i])
				if at%2 == 1 {
					enc = strings.ToLower(enc)
				}
				raw = raw[:i] + enc + raw[i+1:]
			}
		case 1: // a "." segment
			if i := nthSlash(raw, at); i >= 0 {
				raw = raw[:i] + "/." + raw[i:]
			}
		case 2: // a segment and its ".."
			if i := nthSlash(raw, at); i >= 0 {
				raw = raw[:i] + "/zz;p/.." + raw[i:]
			}
		case 3: // "//"
			if i := nthSlash(raw, at); i >= 0 {
				raw = raw[:i] + "/" + raw[i:]
			}
		case 4: // ";parameters" at the end of a named segment
			if i := nthIndex(raw, at, func(s string, i int) bool {
				if i == 0 || s[i-1] == '/' || i < len(s) && s[i] != '/' {
					return false
				}
				seg, err := url.PathUnescape(s[strings.LastIndexByte(s[:i], '/')+1 : i])
				return err == nil && seg != "." && seg != ".." // "..;p" is refused, rightly
			}); i >= 0 {
				raw = raw[:i] + ";p=" + fmt.Sprint(at) + raw[i:]
			}
		case 5: // host case
			host = strings.ToUpper(host)
		case 6: // trailing dot on a host name
			if host != "" && host[0] != '[' {
				name, port, hasPort := strings.Cut(host, ":")
				if !strings.HasSuffix(name, ".") {
					name += "."
				}
				if hasPort {
					name += ":" + port
				}
				host = name
			}
		case 7: // a default or zero-padded port, or a query
			switch {
			case host == "":
				raw += "?q=/../" + fmt.Sprint(at)
			case hostOnly(host) == host && !strings.HasSuffix(host, ":"):
				host += []string{":443", ":80", ":0443"}[at%3]
			default:
				if i := strings.LastIndexByte(host, ':'); len(host)-i-1 < 5 {
					host = host[:i+1] + "0" + host[i+1:]
				}
			}
		}
	}
	return raw, host
}

// isPlainChar: an unreserved character that is not part of an escape.
func isPlainChar(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	if i > 0 && s[i-1] == '%' || i > 1 && s[i-2] == '%' {
		return false
	}
	c := s[i]
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// nthIndex returns the (n mod count)th index i in s (0..len(s)) before any
// query for which ok holds, or -1.
func nthIndex(s string, n int, ok func(string, int) bool) int {
	end := len(s)
	if q := strings.IndexByte(s, '?'); q >= 0 {
		end = q
	}
	var idx []int
	for i := 0; i <= end; i++ {
		if ok(s[:end], i) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return -1
	}
	return idx[n%len(idx)]
}

func nthSlash(s string, n int) int {
	return nthIndex(s, n, func(s string, i int) bool { return i < len(s) && s[i] == '/' })
}
