// Package storage owns the storage-gateway policy: the WLCG Common JWT
// Profile and SciTokens capability scopes (storage.read:/path, write:/path
// and the like), their grammar, and the decision whether a token's scopes
// grant a request's operation on every path it touches, a MOVE's or
// COPY's Destination or Source included (SPEC §5), relative to the
// issuer's base path.
//
// It reads the one normalised request that package policy makes
// (policy.Normalize, policy.ParseTarget), so the scopes are checked
// against the very path and host the route rules matched; which profiles
// a request must satisfy is policy's (policy.Match.Require). Like policy,
// it does no I/O and imports no protocol packages.
package storage

import (
	"strings"

	"github.com/leasegate/leasegate/policy"
)

// Request is what the storage rules need from an HTTP request.
type Request struct {
	// Request is the request from policy.Normalize: the method, and the same
	// path and host the route rules matched (SPEC §1).
	Request     policy.Request
	Destination string // WebDAV Destination header (absolute URI or absolute path)
	Source      string // third-party-copy Source header (pull)
	IfNoneMatch string
	// Depth is the WebDAV Depth header: a PROPFIND with "0" reads one
	// entry's metadata, which a client needs before an upload.
	Depth string
	// Overwrite is the WebDAV Overwrite header. Only "F" changes anything: a
	// COPY that may not replace an existing file is a create, not a modify.
	// Absent means "T" (RFC 4918 §10.6).
	Overwrite string
	// RouteLocalHosts and IssuerLocalHosts are further names of this server
	// (SPEC §5 local_hosts): the matching routes' (policy.Match.LocalHosts)
	// and the issuer's, in policy.NormalizeHost's form.
	RouteLocalHosts, IssuerLocalHosts []string
	// ConditionalCreate is policy.Match.ConditionalCreate: the backend
	// honours If-None-Match: *, so a create-only PUT may be allowed as a
	// conditional one.
	ConditionalCreate bool
}

// Decision is the outcome of Authorize. It carries what an RFC 6750
// WWW-Authenticate challenge and the JSON error body need.
type Decision struct {
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
	// Conditional, on an allow, says the allow holds only for a PUT that
	// cannot overwrite: the upstream request must carry If-None-Match: *
	// (see conditional).
	Conditional bool
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
	op      storageOp // any one of these grants the check
	rel     string    // normalized path relative to the base path
	outside bool      // the path is outside the base path: nothing can grant it
	have    storageOp // what the token's scopes grant on rel
}

func (c *storageCheck) granted() bool { return !c.outside && c.have&c.op != 0 }

// Authorize decides a storage request against the token's scope string
// (space-separated, as in introspection `scope` or the JWT scope claim).
// basePath is the issuer's configured base path ("" or "/" for the root);
// token scope paths are relative to it. wlcgVer is the token's "wlcg.ver"
// claim ("" when absent); it is checked for policy.ProfileWLCG only.
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
// request path was refused earlier, by policy.Normalize), then 403 (method
// outside the table, scope missing). A malformed scope makes the whole token
// invalid even if another scope would grant the request.
// An unknown profile or an invalid basePath fails closed with 403.
func Authorize(profile policy.StorageProfile, req Request, scope string, basePath string, wlcgVer string) Decision {
	if profile != policy.ProfileWLCG && profile != policy.ProfileSciTokens {
		return deny(403, errInsufficientScope, "storage profile not configured", "")
	}
	base, err := cleanBasePath(basePath)
	if err != nil {
		return deny(403, errInsufficientScope, "storage base path misconfigured", "")
	}
	if profile == policy.ProfileWLCG {
		if err := checkWLCGVersion(wlcgVer); err != nil {
			return deny(401, errInvalidToken, err.Error(), "")
		}
	}

	pl, planDeny := planStorage(req, base)
	checks := pl.checks[:pl.n]
	if err := grantStorage(profile, scope, checks); err != nil {
		return deny(401, errInvalidToken, err.Error(), "")
	}
	if planDeny != nil {
		return *planDeny
	}
	for _, c := range checks {
		if c.granted() {
			continue
		}
		if c.outside {
			return deny(403, errInsufficientScope, "path is outside the issuer's storage area", "")
		}
		return deny(403, errInsufficientScope, "token scopes do not cover this operation and path", scopeHint(profile, c))
	}
	return Decision{Allow: true, Conditional: pl.conditional(checks)}
}

func deny(status int, code, desc, scope string) Decision {
	return Decision{Status: status, Error: code, Description: desc, Scope: scope}
}

// maxChecks bounds the (operation, path) pairs one request needs: two paths
// (MOVE, local COPY), each with and without its ;parameters.
const maxChecks = 4

// plan is the checks a request needs, relative to base.
type plan struct {
	base   string
	checks [maxChecks]storageCheck
	n      int
	put    putKind
}

// putKind is how a PUT was planned.
type putKind uint8

const (
	putNone        putKind = iota // not a create-capable PUT: modify needed
	putCreate                     // If-None-Match: * from the client: a create
	putConditional                // conditional_create route: a create if need be
)

// conditional is the one judgement of conditional creation (SPEC §5),
// made once the scopes are known: a PUT allowed as a create holds only if
// If-None-Match: * reaches the backend, because the proxy cannot see
// whether the file exists. That is a PUT planned as a create (the client's
// own condition, or a plain PUT on a conditional_create route, where the
// proxy adds it) from a token that may not modify every reading of the
// path. A token that may modify is never held to it.
func (pl *plan) conditional(checks []storageCheck) bool {
	if pl.put == putNone {
		return false
	}
	for _, c := range checks {
		if c.have&opModify == 0 {
			return true
		}
	}
	return false
}

// add needs op granted on both readings of a path: clean (no ;parameters)
// and literal, once when they are the same.
func (pl *plan) add(op storageOp, clean, literal string) {
	for i, abs := range [2]string{clean, literal} {
		if i == 1 && abs == clean {
			break // no ;parameters: one reading
		}
		rel, ok := relativeTo(abs, pl.base)
		pl.checks[pl.n] = storageCheck{op: op, rel: rel, outside: !ok}
		pl.n++
	}
}

// addTarget is add for a Destination's or Source's path.
func (pl *plan) addTarget(op storageOp, t policy.Target) {
	pl.add(op, t.Path(), t.LiteralPath())
}

// planStorage maps the request to the checks it needs (SPEC §5). When the
// request itself must be refused it returns a denial instead, and no
// checks, which the caller reports only after the token's scopes were
// found well-formed.
func planStorage(req Request, base string) (plan, *Decision) {
	r := req.Request
	if r.Path() == "" {
		// Not made by policy.Normalize: nothing to check a scope against.
		return plan{}, badRequest("request path is not acceptable")
	}
	pl := plan{base: base}
	here, lit := r.Path(), r.LiteralPath()
	bad := ""
	switch r.Method() {
	case "GET":
		pl.add(opRead, here, lit)
	case "PROPFIND":
		if strings.TrimSpace(req.Depth) == "0" {
			// One entry's metadata, as a client stats an upload's
			// target first: create may do it too.
			pl.add(opRead|opCreate, here, lit)
		} else {
			pl.add(opRead, here, lit)
		}
	case "HEAD", "OPTIONS":
		pl.add(opStat, here, lit)
	case "MKCOL":
		pl.add(opCreate, here, lit)
	case "PUT":
		// Only If-None-Match: * guarantees nothing is replaced; the gateway
		// cannot see whether the file exists (see conditional).
		switch {
		case strings.TrimSpace(req.IfNoneMatch) == "*":
			pl.put = putCreate
			pl.add(opCreate, here, lit)
		case req.ConditionalCreate:
			pl.put = putConditional
			pl.add(opCreate, here, lit)
		default:
			pl.add(opModify, here, lit)
		}
	case "DELETE", "PATCH":
		pl.add(opModify, here, lit)
	case "MOVE":
		bad = pl.planMove(req)
	case "COPY":
		bad = pl.planCopy(req)
	default:
		d := deny(403, errInsufficientScope, "method is not allowed by storage scopes", "")
		return plan{}, &d
	}
	if bad != "" {
		return plan{}, badRequest(bad)
	}
	return pl, nil
}

func badRequest(desc string) *Decision {
	d := deny(400, errInvalidRequest, desc, "")
	return &d
}

// planMove adds a MOVE's checks: it modifies both its own path and its
// Destination's, which must be on this server. It returns why the request
// is refused, "" when it is not.
func (pl *plan) planMove(req Request) string {
	if req.Destination == "" {
		return "MOVE needs a Destination header"
	}
	dst, local, err := localTarget(req.Destination, req)
	if err != nil {
		return "Destination header is not acceptable"
	}
	if !local {
		return "MOVE Destination names another server"
	}
	r := req.Request
	pl.add(opModify, r.Path(), r.LiteralPath())
	pl.addTarget(opModify, dst)
	return ""
}

// planCopy adds a COPY's checks: a pull (Source) writes here and, from this
// server, reads there; a push (Destination) reads here and, to this
// server, writes there. It returns why the request is refused, "" when it
// is not.
func (pl *plan) planCopy(req Request) string {
	r := req.Request
	// writeOp is what writing a file that may already exist needs. Only
	// an exact "F" is a create: anything else, "f" included, is read as
	// "T", the stricter reading (README), because a backend may test
	// Overwrite != "F" (golang.org/x/net/webdav does) and replace an
	// existing file on "f".
	writeOp := opModify
	if strings.TrimSpace(req.Overwrite) == "F" {
		writeOp = opCreate
	}
	switch {
	case req.Source != "" && req.Destination != "":
		return "COPY with both Source and Destination"
	case req.Source != "":
		src, local, err := localTarget(req.Source, req)
		if err != nil {
			return "Source header is not acceptable"
		}
		if local {
			// A "pull" from this server is a local copy: it reads
			// there as well as writing here.
			pl.addTarget(opRead, src)
		}
		// A remote source authorizes its own read; here the local
		// path is written.
		pl.add(writeOp, r.Path(), r.LiteralPath())
	case req.Destination != "":
		dst, local, err := localTarget(req.Destination, req)
		if err != nil {
			return "Destination header is not acceptable"
		}
		pl.add(opRead, r.Path(), r.LiteralPath())
		if local {
			// A copy within this server writes there too; a push to
			// another server is authorized by that server.
			pl.addTarget(writeOp, dst)
		}
	default:
		return "COPY needs a Source or a Destination header"
	}
	return ""
}

// localTarget parses a Destination or Source header with the parser the
// engine and policy.AddTargets use, and says whether it names this server.
func localTarget(v string, req Request) (t policy.Target, local bool, err error) {
	if t, err = policy.ParseTarget(v); err != nil {
		return policy.Target{}, false, err
	}
	return t, t.NamesThisServer(req.Request.Host(), req.RouteLocalHosts, req.IssuerLocalHosts), nil
}
