package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ErrInvalidHost is wrapped by every error NormalizeHost returns: a request
// host that is not a host name, IPv4 or bracketed IPv6 literal with an
// optional port is refused with 400 invalid_request, never matched against
// host rules.
var ErrInvalidHost = errors.New("invalid host")

// NormalizeHost returns host (a Host header, :authority, or a URI's authority
// without userinfo) in the one form hosts are compared in (SPEC §1: "Hosts
// compare case-insensitively, without a trailing dot and without the scheme's
// default port"): lower case, one trailing dot dropped, an IPv6 literal
// canonical inside brackets (an IPv4-mapped one as the dotted IPv4
// address), a port without leading zeros. Proxies do not tell leasegate
// the scheme, so both 80 and 443 count as default ports: "h", "h:80" and
// "H.:443" are one host. "" stays "" (no host given). It does not
// allocate when host only loses a trailing dot or a default port.
func NormalizeHost(host string) (string, error) {
	if host == "" {
		return "", nil
	}
	name, port, hasPort := host, "", false
	if host[0] == '[' {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", fmt.Errorf("%w: unclosed '['", ErrInvalidHost)
		}
		name = host[:end+1]
		if rest := host[end+1:]; rest != "" {
			if rest[0] != ':' {
				return "", fmt.Errorf("%w: text after an IPv6 literal", ErrInvalidHost)
			}
			port, hasPort = rest[1:], true
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		name, port, hasPort = host[:i], host[i+1:], true
	}
	port, err := normalPort(port, hasPort)
	if err != nil {
		return "", err
	}
	name, err = normalName(name)
	if err != nil {
		return "", err
	}
	if port == "" {
		return name, nil
	}
	if n := len(name); n+1+len(port) == len(host) && host[:n] == name && host[n+1:] == port {
		return host, nil
	}
	return name + ":" + port, nil
}

// normalPort returns a port without leading zeros, "" for none or a default.
func normalPort(p string, hasPort bool) (string, error) {
	if !hasPort {
		return "", nil
	}
	if p == "" || len(p) > 5 {
		return "", fmt.Errorf("%w: bad port", ErrInvalidHost)
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return "", fmt.Errorf("%w: bad port", ErrInvalidHost)
		}
		n = n*10 + int(p[i]-'0')
	}
	switch {
	case n == 0 || n > 65535:
		return "", fmt.Errorf("%w: port out of range", ErrInvalidHost)
	case n == 80 || n == 443:
		return "", nil
	}
	return strings.TrimLeft(p, "0"), nil
}

// normalName checks and lower-cases a host name or IP literal.
func normalName(n string) (string, error) {
	if n != "" && n[0] == '[' {
		a, err := netip.ParseAddr(n[1 : len(n)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("%w: bad IPv6 literal", ErrInvalidHost)
		}
		// An IPv4-mapped literal is the IPv4 host's other spelling: in
		// that host's form, it meets the IPv4 host's rules.
		if a.Is4In6() {
			return a.Unmap().String(), nil
		}
		if s := "[" + a.String() + "]"; s != n {
			return s, nil
		}
		return n, nil
	}
	n = strings.TrimSuffix(n, ".")
	if n == "" || len(n) > 253 {
		return "", fmt.Errorf("%w: empty or too long", ErrInvalidHost)
	}
	upper := false
	label, lastLabel := 0, 0
	for i := 0; i < len(n); i++ {
		switch c := n[i]; {
		case c == '.':
			if label == 0 {
				return "", fmt.Errorf("%w: empty label", ErrInvalidHost)
			}
			label, lastLabel = 0, i+1
			continue
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case 'A' <= c && c <= 'Z':
			upper = true
		default:
			return "", fmt.Errorf("%w: character %q", ErrInvalidHost, c)
		}
		if label++; label > 63 {
			return "", fmt.Errorf("%w: label longer than 63", ErrInvalidHost)
		}
	}
	if label == 0 {
		return "", fmt.Errorf("%w: empty label", ErrInvalidHost)
	}
	// No top-level domain starts with a digit, so such a name can only be
	// an IPv4 address; one spelled unusually ("127.1", "010.0.0.1") could
	// name the same machine as a rule written canonically.
	if c := n[lastLabel]; '0' <= c && c <= '9' {
		if a, err := netip.ParseAddr(n); err != nil || !a.Is4() {
			return "", fmt.Errorf("%w: numeric name that is not a dotted-decimal IPv4 address", ErrInvalidHost)
		}
	}
	if upper {
		n = strings.ToLower(n)
	}
	return n, nil
}

// NormalizeLocalHost checks one local_hosts entry (a route's or an issuer's
// other names of this server, SPEC §5) and returns it in NormalizeHost's
// form. An entry names a host, never a port. Config validation should call
// it; New and the engine do.
func NormalizeLocalHost(h string) (string, error) {
	if h == "" {
		return "", fmt.Errorf("%w: empty local host", ErrInvalidHost)
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		return "", fmt.Errorf("%w: local host %q names a port; list host names only", ErrInvalidHost, h)
	}
	n, err := NormalizeHost(h)
	if err != nil {
		return "", fmt.Errorf("local host %q: %w", h, err)
	}
	return n, nil
}

// hostOnly drops the port from a host in NormalizeHost's form.
func hostOnly(h string) string {
	if h != "" && h[0] == '[' {
		return h[:strings.IndexByte(h, ']')+1]
	}
	if i := strings.IndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}

// namesThisServer applies SPEC §5 to the host of a Destination or Source:
// it names this server when it is the request's host (ports aside), one of
// the local_hosts, an IP literal, localhost or an unqualified (dot-less)
// name; only another fully qualified name is a remote server. All hosts are
// in NormalizeHost's form. An unknown request host counts as this server: a
// local target is checked against the token's write scopes, a remote one is
// not.
func namesThisServer(target, reqHost string, local, more []string) bool {
	t := hostOnly(target)
	switch {
	case reqHost == "" || t == hostOnly(reqHost):
		return true
	case t[0] == '[', strings.IndexByte(t, '.') < 0, strings.HasSuffix(t, ".localhost"):
		return true
	}
	// NormalizeHost lets a last label that starts with a digit through only
	// in an IPv4 address.
	if c := t[strings.LastIndexByte(t, '.')+1]; '0' <= c && c <= '9' {
		return true
	}
	return slices.Contains(local, t) || slices.Contains(more, t)
}
