package policy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// StorageProfile names a family of capability scopes a route can require.
type StorageProfile string

const (
	// ProfileWLCG is the WLCG Common JWT Profile: storage.read,
	// storage.create, storage.modify (plus storage.stage and storage.poll,
	// which only grant metadata requests here).
	ProfileWLCG StorageProfile = "wlcg_storage"
	// ProfileSciTokens is the SciTokens profile: read and write.
	ProfileSciTokens StorageProfile = "scitokens"
)

// StorageRequest is what the storage rules need from an HTTP request.
type StorageRequest struct {
	// Request is the request from Normalize: the method, and the same path
	// and host the route rules matched (SPEC §1).
	Request     Request
	Destination string // WebDAV Destination header (absolute URI or absolute path)
	Source      string // third-party-copy Source header (pull)
	IfNoneMatch string
	// Overwrite is the WebDAV Overwrite header. Only "F" changes anything: a
	// COPY that may not replace an existing file is a create, not a modify.
	// Absent means "T" (RFC 4918 §10.6).
	Overwrite string
	// RouteLocalHosts and IssuerLocalHosts are further names of this server
	// (SPEC §5 local_hosts): the matching routes' (Match.LocalHosts) and
	// the issuer's, in NormalizeHost's form.
	RouteLocalHosts, IssuerLocalHosts []string
}

// StorageDecision is the outcome of AuthorizeStorage. It carries what an
// RFC 6750 WWW-Authenticate challenge and the JSON error body need.
type StorageDecision struct {
	Allow       bool
	Status      int    // 0 when allowed; 400, 401 or 403 when denied
	Error       string // RFC 6750: "invalid_request" (400), "invalid_token" (401), "insufficient_scope" (403)
	Description string // short human text, safe to send to clients (never echoes request or token text)
	// Scope, on a 403, is the one scope that would have granted the request
	// (the first one missing for MOVE and local COPY), relative to the base
	// path as the token would carry it and percent-encoded like a scope path,
	// e.g. "storage.modify:/atlas/data" or "write:/atlas/data". Empty when no
	// scope could grant the request: a method outside the table or a path
	// outside the issuer's base path.
	Scope string
}

// RFC 6750 error codes.
const (
	errInvalidRequest    = "invalid_request"
	errInvalidToken      = "invalid_token"
	errInsufficientScope = "insufficient_scope"
)

// storageOp is a class of operation; a scope grants a set of them.
type storageOp uint8

const (
	opStat   storageOp = 1 << iota // HEAD, OPTIONS
	opRead                         // GET, PROPFIND, COPY push source
	opCreate                       // PUT with If-None-Match: *, MKCOL, COPY without overwrite
	opModify                       // every other write, DELETE, MOVE
)

// storageCheck is one (operation, path) pair a request needs granted.
type storageCheck struct {
	op      storageOp
	rel     string // normalized path relative to the base path
	outside bool   // the path is outside the base path: nothing can grant it
	granted bool
}

// AuthorizeStorage decides a storage request against the token's scope string
// (space-separated, as in introspection `scope` or the JWT scope claim).
// basePath is the issuer's configured base path ("" or "/" for the root);
// token scope paths are relative to it. wlcgVer is the token's "wlcg.ver"
// claim ("" when absent); it is checked for ProfileWLCG only.
//
// Only scopes grant storage access: wlcg.groups is never consulted, so a token
// with groups and no matching storage.* scope is refused. (WLCG says groups are
// ignored whenever any storage.* scope is present; leasegate goes further.)
//
// A path with ";parameters" must be covered both without them (as Java
// servlet gateways read it, and as the routes matched it) and with them (as
// XRootD or nginx serve it), so neither kind of backend serves a path the
// scopes do not cover.
//
// Precedence when several things are wrong: 401 (token: wlcg.ver, a malformed
// scope of the route's profile), then 400 (request: COPY/MOVE headers; the
// request path was refused earlier, by Normalize), then 403 (method outside
// the table, scope missing). A malformed scope makes the whole token invalid
// even if another scope would grant the request.
// An unknown profile or an invalid basePath fails closed with 403.
func AuthorizeStorage(profile StorageProfile, req StorageRequest, scope string, basePath string, wlcgVer string) StorageDecision {
	if profile != ProfileWLCG && profile != ProfileSciTokens {
		return storageDeny(403, errInsufficientScope, "storage profile not configured", "")
	}
	base, err := cleanBasePath(basePath)
	if err != nil {
		return storageDeny(403, errInsufficientScope, "storage base path misconfigured", "")
	}
	if profile == ProfileWLCG {
		if err := checkWLCGVersion(wlcgVer); err != nil {
			return storageDeny(401, errInvalidToken, err.Error(), "")
		}
	}

	checks, nchecks, planDeny := planStorage(req, base)
	if err := grantStorage(profile, scope, checks[:nchecks]); err != nil {
		return storageDeny(401, errInvalidToken, err.Error(), "")
	}
	if planDeny != nil {
		return *planDeny
	}
	for _, c := range checks[:nchecks] {
		if c.granted {
			continue
		}
		if c.outside {
			return storageDeny(403, errInsufficientScope, "path is outside the issuer's storage area", "")
		}
		return storageDeny(403, errInsufficientScope, "token scopes do not cover this operation and path", scopeHint(profile, c))
	}
	return StorageDecision{Allow: true}
}

func storageDeny(status int, code, desc, scope string) StorageDecision {
	return StorageDecision{Status: status, Error: code, Description: desc, Scope: scope}
}

// maxChecks bounds the (operation, path) pairs one request needs: two paths
// (MOVE, local COPY), each with and without its ;parameters.
const maxChecks = 4

// planStorage maps the request to the checks it needs (SPEC §5). When the
// request itself must be refused it returns a denial instead, which the
// caller reports only after the token's scopes were found well-formed.
func planStorage(req StorageRequest, base string) (checks [maxChecks]storageCheck, n int, deny *StorageDecision) {
	bad := func(desc string) ([maxChecks]storageCheck, int, *StorageDecision) {
		d := storageDeny(400, errInvalidRequest, desc, "")
		return checks, 0, &d
	}
	r := req.Request
	if r.path == "" {
		// Not made by Normalize: nothing to check a scope against.
		return bad("request path is not acceptable")
	}
	here := Target{host: r.host, path: r.path, literal: r.literal}
	add := func(op storageOp, t Target) {
		for i, abs := range [2]string{t.path, t.literal} {
			if i == 1 && abs == t.path {
				break // no ;parameters: one reading
			}
			rel, ok := relativeTo(abs, base)
			checks[n] = storageCheck{op: op, rel: rel, outside: !ok}
			n++
		}
	}
	// writeOp is what writing a file that may already exist needs.
	writeOp := opModify
	if strings.EqualFold(strings.TrimSpace(req.Overwrite), "F") {
		writeOp = opCreate
	}
	switch r.method {
	case "GET", "PROPFIND":
		add(opRead, here)
	case "HEAD", "OPTIONS":
		add(opStat, here)
	case "MKCOL":
		add(opCreate, here)
	case "PUT":
		// Only If-None-Match: * guarantees nothing is replaced; the gateway
		// cannot see whether the file exists.
		if strings.TrimSpace(req.IfNoneMatch) == "*" {
			add(opCreate, here)
		} else {
			add(opModify, here)
		}
	case "DELETE", "PATCH":
		add(opModify, here)
	case "MOVE":
		if req.Destination == "" {
			return bad("MOVE needs a Destination header")
		}
		dst, local, err := localTarget(req.Destination, req)
		if err != nil {
			return bad("Destination header is not acceptable")
		}
		if !local {
			return bad("MOVE Destination names another server")
		}
		add(opModify, here)
		add(opModify, dst)
	case "COPY":
		switch {
		case req.Source != "" && req.Destination != "":
			return bad("COPY with both Source and Destination")
		case req.Source != "":
			src, local, err := localTarget(req.Source, req)
			if err != nil {
				return bad("Source header is not acceptable")
			}
			if local {
				// A "pull" from this server is a local copy: it reads
				// there as well as writing here.
				add(opRead, src)
			}
			// A remote source authorizes its own read; here the local
			// path is written.
			add(writeOp, here)
		case req.Destination != "":
			dst, local, err := localTarget(req.Destination, req)
			if err != nil {
				return bad("Destination header is not acceptable")
			}
			add(opRead, here)
			if local {
				// A copy within this server writes there too; a push to
				// another server is authorized by that server.
				add(writeOp, dst)
			}
		default:
			return bad("COPY needs a Source or a Destination header")
		}
	default:
		d := storageDeny(403, errInsufficientScope, "method is not allowed by storage scopes", "")
		return checks, 0, &d
	}
	return checks, n, nil
}

// localTarget parses a Destination or Source header and says whether it
// names this server.
func localTarget(v string, req StorageRequest) (t Target, local bool, err error) {
	if t, err = ParseTarget(v); err != nil {
		return Target{}, false, err
	}
	return t, t.namesHost(req.Request.host, req.RouteLocalHosts, req.IssuerLocalHosts), nil
}

// relativeTo returns abs relative to base ("" meaning the root), and false
// when abs lies outside base. Matching is by whole segment.
func relativeTo(abs, base string) (string, bool) {
	if base == "" {
		return abs, true
	}
	if !strings.HasPrefix(abs, base) {
		return "", false
	}
	rest := abs[len(base):]
	if rest == "" {
		return "/", true
	}
	if rest[0] != '/' {
		return "", false
	}
	return rest, true
}

// errInvalidBasePath is returned by ValidateBasePath.
var errInvalidBasePath = errors.New("invalid storage base_path")

// ValidateBasePath reports whether an issuer's base_path is usable by
// AuthorizeStorage: empty or an absolute, already normalized path without
// dot segments, "//", '\' or NUL ("/dcache/vo" or "/dcache/vo/"). It is
// taken literally, never percent-decoded. Config validation should call it.
func ValidateBasePath(basePath string) error {
	_, err := cleanBasePath(basePath)
	return err
}

// cleanBasePath returns the base path without its trailing '/', and "" for
// the root.
func cleanBasePath(b string) (string, error) {
	if b == "" || b == "/" {
		return "", nil
	}
	if b[0] != '/' {
		return "", fmt.Errorf("%w: %q must start with '/'", errInvalidBasePath, b)
	}
	if strings.ContainsAny(b, "\\\x00?") {
		return "", fmt.Errorf("%w: %q contains '\\', '?' or NUL", errInvalidBasePath, b)
	}
	b = strings.TrimSuffix(b, "/")
	for i := 1; i <= len(b); {
		end := segmentEnd(b, i)
		if seg := b[i:end]; seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("%w: %q is not normalized", errInvalidBasePath, b)
		}
		i = end + 1
	}
	return b, nil
}

// checkWLCGVersion accepts an absent wlcg.ver and any 1.x ("vername ::=
// [0-9]+\.[0-9]+"); another major version is one we do not understand.
func checkWLCGVersion(v string) error {
	if v == "" {
		return nil
	}
	major, minor, ok := strings.Cut(v, ".")
	if !ok || !allDigits(major) || !allDigits(minor) {
		return errors.New("wlcg.ver is malformed")
	}
	if strings.TrimLeft(major, "0") != "1" {
		return errors.New("wlcg.ver has an unsupported major version")
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// grantStorage walks the token's scopes once: it validates every scope of the
// profile's grammar (any malformed one invalidates the token) and marks the
// checks that some scope grants. Scopes of other grammars are ignored.
func grantStorage(profile StorageProfile, scope string, checks []storageCheck) error {
	for scope != "" {
		var tok string
		tok, scope, _ = strings.Cut(scope, " ")
		if tok == "" {
			continue
		}
		ops, spath, ok, err := parseStorageScope(profile, tok)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		for i := range checks {
			c := &checks[i]
			if !c.granted && !c.outside && ops&c.op != 0 && scopeCovers(spath, c.rel) {
				c.granted = true
			}
		}
	}
	return nil
}

// parseStorageScope parses one scope token. ok is false for a scope this
// profile does not interpret. spath is decoded and relative to the base path.
func parseStorageScope(profile StorageProfile, tok string) (ops storageOp, spath string, ok bool, err error) {
	var raw string
	if profile == ProfileWLCG {
		rest, isStorage := strings.CutPrefix(tok, "storage.")
		if !isStorage {
			return 0, "", false, nil
		}
		verb, p, hasPath := strings.Cut(rest, ":")
		if verb == "" {
			return 0, "", false, errors.New("a storage scope has no operation")
		}
		if !hasPath {
			return 0, "", false, errors.New("a storage scope has no path")
		}
		switch verb {
		case "read":
			ops = opStat | opRead
		case "create":
			ops = opStat | opCreate
		case "modify":
			ops = opStat | opCreate | opModify
		default:
			// storage.stage, storage.poll and verbs of later profile
			// versions: SPEC §5 lets any storage.* scope cover HEAD/OPTIONS.
			ops = opStat
		}
		raw = p
	} else {
		verb, p, hasPath := strings.Cut(tok, ":")
		switch verb {
		case "read":
			ops = opStat | opRead
		case "write":
			ops = opStat | opCreate | opModify
		default:
			return 0, "", false, nil
		}
		if !hasPath {
			// SciTokens: "if not specified in the scope, the path may be
			// assumed to be /".
			return ops, "/", true, nil
		}
		raw = p
	}
	spath, err = cleanScopePath(raw)
	if err != nil {
		return 0, "", false, err
	}
	return ops, spath, true, nil
}

// cleanScopePath validates a scope path. Issuers must send absolute, normalized,
// percent-encoded paths (WLCG profile §2.2.1); anything else is refused rather
// than repaired, because repairing ".." in scopes is how real enforcers were
// bypassed.
func cleanScopePath(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("a storage scope has an empty path")
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] < 0x20 || raw[i] == 0x7f {
			return "", errors.New("a storage scope path has a control character")
		}
	}
	if raw[0] != '/' {
		return "", errors.New("a storage scope path is not absolute")
	}
	p, err := decodeOnce(raw)
	if err != nil {
		return "", errors.New("a storage scope path has an encoded slash, backslash or NUL, or a bad escape")
	}
	for i := 1; i <= len(p); {
		end := segmentEnd(p, i)
		seg := p[i:end]
		if (seg == "" && end < len(p)) || seg == "." || seg == ".." {
			return "", errors.New("a storage scope path is not normalized (dot segment or '//')")
		}
		i = end + 1
	}
	return p, nil
}

// scopeCovers reports whether scope path s covers relative request path r by
// whole segments. A scope ending in '/' names a directory (WLCG profile
// §2.2.1): it covers what lies inside it, not a file of the same name.
func scopeCovers(s, r string) bool {
	if s == "/" {
		return true
	}
	if !strings.HasPrefix(r, s) {
		return false
	}
	return len(r) == len(s) || s[len(s)-1] == '/' || r[len(s)] == '/'
}

// scopeHint names the least scope that would have granted c.
func scopeHint(profile StorageProfile, c storageCheck) string {
	var verb string
	switch {
	case profile == ProfileSciTokens && c.op&(opStat|opRead) != 0:
		verb = "read"
	case profile == ProfileSciTokens:
		verb = "write"
	case c.op&(opStat|opRead) != 0:
		verb = "storage.read"
	case c.op == opCreate:
		verb = "storage.create"
	default:
		verb = "storage.modify"
	}
	return verb + ":" + escapeScopePath(c.rel)
}

// escapeScopePath percent-encodes each segment so the hint is a valid scope
// token (no spaces, quotes or backslashes) and round-trips through one decode.
func escapeScopePath(p string) string {
	if p != "/" {
		p = strings.TrimSuffix(p, "/")
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
