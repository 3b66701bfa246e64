package storage

import (
	"net/url"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/leasegate/leasegate/policy"
)

// fuzzBases are the base paths the fuzzer picks from; base_path comes from
// the operator's config, not from clients.
var fuzzBases = []string{"/", "/dcache/vo", "/dcache/vo/", "/a"}

// FuzzAuthorizeStorage checks the safety property of Authorize, not
// examples: whenever it allows, every path the request touches locally lies,
// by whole segments, under a scope path (joined with the base path) whose
// verb grants that operation, and no scope of the profile is malformed. The
// oracle below is written independently of this package's matching code; it
// is deliberately looser where the package is stricter (directory scopes ending
// in '/'), since the property is an implication.
func FuzzAuthorizeStorage(f *testing.F) {
	for _, c := range loadStorageCases(f) {
		profile, req, scope, base, ver := c.args()
		bi := 0
		for i, b := range fuzzBases {
			if b == base {
				bi = i
			}
		}
		f.Add(profile == policy.ProfileSciTokens, req.Method, req.Path, req.Destination, req.Source, req.IfNoneMatch, req.Overwrite, scope, uint8(bi), ver,
			req.Depth, req.ConditionalCreate)
	}
	f.Add(false, "GET", "/a/%2e%2e/b", "", "", "", "", "storage.read:/a", uint8(0), "", "", false)
	f.Add(true, "MOVE", "/a/x", "/a/../b/y", "", "", "", "write:/a", uint8(3), "", "", false)
	f.Add(false, "PUT", "/a/x;v=1", "", "", "", "", "storage.create:/a storage.modify:/a/x", uint8(0), "", "", true)

	f.Fuzz(func(t *testing.T, sci bool, method, rawPath, dest, src, inm, overwrite, scope string, baseIdx uint8, ver, depth string, cc bool) {
		profile := policy.ProfileWLCG
		if sci {
			profile = policy.ProfileSciTokens
		}
		base := fuzzBases[int(baseIdx)%len(fuzzBases)]
		req := rawStorageRequest{
			Method: method, Path: rawPath, Host: "storage.example.org",
			Destination: dest, Source: src, IfNoneMatch: inm, Overwrite: overwrite,
			Depth: depth, ConditionalCreate: cc,
		}
		d := authorizeRaw(profile, req, scope, base, ver)
		checkDecisionShape(t, d)
		if !d.Allow {
			return
		}
		if d.Conditional && method != "PUT" {
			t.Fatalf("a %s allowed as a conditional create", method)
		}

		grants := oracleScopes(t, profile, scope)
		// need fails the test unless a grant whose verb is in verbs (any
		// verb when verbs is nil) covers p.
		need := func(abs string, verbs ...string) {
			t.Helper()
			for _, g := range grants {
				if verbs != nil && !slices.Contains(verbs, g.verb) {
					continue
				}
				sp := strings.TrimSuffix(path.Join(base, g.path), "/")
				if sp == "" || abs == sp || strings.HasPrefix(abs, sp+"/") {
					return
				}
			}
			t.Fatalf("allowed %s %q (normalized %q, base %q) without a %v scope covering it; scopes %q",
				method, rawPath, abs, base, verbs, scope)
		}

		// Both readings of the path (with and without ;parameters) must be
		// covered, so need is asked for each.
		needBoth := func(ps [2]string, verbs ...string) {
			t.Helper()
			need(ps[0], verbs...)
			need(ps[1], verbs...)
		}
		p := oracleReadings(t, rawPath)
		for _, r := range p {
			if !strings.HasPrefix(r+"/", strings.TrimSuffix(base, "/")+"/") {
				t.Fatalf("allowed %q outside base %q", r, base)
			}
		}
		read, write, create := "read", "modify", "create"
		if sci {
			create = "write"
			write = "write"
		}
		// covered reports whether a grant of verb covers every reading.
		covered := func(verb string) bool {
			for _, abs := range p {
				ok := false
				for _, g := range grants {
					sp := strings.TrimSuffix(path.Join(base, g.path), "/")
					if g.verb == verb && (sp == "" || abs == sp || strings.HasPrefix(abs, sp+"/")) {
						ok = true
					}
				}
				if !ok {
					return false
				}
			}
			return true
		}
		switch method {
		case "GET":
			needBoth(p, read)
		case "PROPFIND":
			if strings.TrimSpace(depth) == "0" {
				needBoth(p, read, create, write)
			} else {
				needBoth(p, read)
			}
		case "HEAD", "OPTIONS":
			needBoth(p, oracleAnyVerb(sci)...)
		case "PUT":
			// An allowed PUT that only create covers must reach the
			// backend as a conditional one; the oracle is looser where
			// the package is stricter (a modify scope on one reading
			// only still counts as needing the condition).
			switch {
			case strings.TrimSpace(inm) == "*" || cc && !sci:
				needBoth(p, create, write)
				if !covered(write) && !d.Conditional {
					t.Fatalf("create-only PUT %q allowed unconditionally; scopes %q", rawPath, scope)
				}
			default:
				needBoth(p, write)
				if d.Conditional {
					t.Fatalf("PUT allowed by modify marked conditional")
				}
			}
		case "MKCOL":
			needBoth(p, create, write)
		case "DELETE", "PATCH":
			needBoth(p, write)
		case "MOVE":
			needBoth(p, write)
			needBoth(oracleLocalPath(t, dest), write)
		case "COPY":
			if (src == "") == (dest == "") {
				t.Fatalf("allowed COPY with src=%q dest=%q", src, dest)
			}
			if src != "" {
				needBoth(p, create, write)
				if oracleIsLocal(src) {
					needBoth(oracleLocalPath(t, src), read)
				}
			} else {
				needBoth(p, read)
				if oracleIsLocal(dest) {
					needBoth(oracleLocalPath(t, dest), create, write)
				}
			}
		default:
			t.Fatalf("allowed method %q outside the table", method)
		}
	})
}

// oracleReadings reads a raw path the way two kinds of backend do, with the
// standard library only: decoded once and cleaned as a literal-name server
// (XRootD, nginx) serves it, and the same with every segment's
// ";parameters" dropped as a servlet container serves it. It fails the test
// if the path is one that must have been refused.
func oracleReadings(t *testing.T, raw string) [2]string {
	t.Helper()
	if strings.ContainsAny(raw, "#\x00") {
		t.Fatalf("allowed a path with a raw '#' or NUL: %q", raw)
	}
	beforeQuery, _, _ := strings.Cut(raw, "?")
	lower := strings.ToLower(beforeQuery)
	if !strings.HasPrefix(beforeQuery, "/") || strings.Contains(beforeQuery, "\\") ||
		strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(lower, "%00") {
		t.Fatalf("allowed a path that must be refused: %q", raw)
	}
	dec, err := url.PathUnescape(beforeQuery)
	if err != nil {
		t.Fatalf("allowed an undecodable path %q: %v", raw, err)
	}
	segs := strings.Split(dec, "/")
	for i, s := range segs {
		segs[i], _, _ = strings.Cut(s, ";")
	}
	return [2]string{path.Clean(strings.Join(segs, "/")), path.Clean(dec)}
}

type oracleGrant struct{ verb, path string }

// oracleScopes parses the scope string with the plainest reading of the
// profiles, and fails the test if a scope the allow depended on the
// validity of is malformed.
func oracleScopes(t *testing.T, profile policy.StorageProfile, scope string) []oracleGrant {
	t.Helper()
	var out []oracleGrant
	for _, tok := range strings.Split(scope, " ") {
		verb, p, hasPath := strings.Cut(tok, ":")
		if profile == policy.ProfileWLCG {
			v, ok := strings.CutPrefix(verb, "storage.")
			if !ok {
				continue
			}
			verb = v
		} else if verb != "read" && verb != "write" {
			continue
		} else if !hasPath {
			p, hasPath = "/", true
		}
		if !hasPath || p == "" || !strings.HasPrefix(p, "/") {
			t.Fatalf("allowed with malformed scope %q", tok)
		}
		lower := strings.ToLower(p)
		if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(lower, "%00") {
			t.Fatalf("allowed with encoded separator in scope %q", tok)
		}
		dec, err := url.PathUnescape(p)
		if err != nil {
			t.Fatalf("allowed with undecodable scope %q", tok)
		}
		for _, seg := range strings.Split(dec, "/") {
			if seg == ".." {
				t.Fatalf("allowed with '..' in scope %q", tok)
			}
		}
		out = append(out, oracleGrant{verb: verb, path: dec})
	}
	return out
}

// oracleAnyVerb is what HEAD and OPTIONS accept: read or write for
// SciTokens, any storage.* verb (nil) for WLCG.
func oracleAnyVerb(sci bool) []string {
	if sci {
		return []string{"read", "write"}
	}
	return nil
}

// oracleIsLocal: the test host has no port, so a Destination is local when
// it is a path or its host (before any port) is storage.example.org.
func oracleIsLocal(dest string) bool {
	dest = strings.TrimSpace(dest)
	if strings.HasPrefix(dest, "/") {
		return true
	}
	_, rest, ok := strings.Cut(dest, "://")
	if !ok {
		return false
	}
	host, _, _ := strings.Cut(rest, "/")
	host, _, _ = strings.Cut(host, "?")
	host, _, _ = strings.Cut(host, "#")
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	return strings.EqualFold(strings.TrimSuffix(host, "."), "storage.example.org")
}

// oracleLocalPath extracts both readings of the path of a local
// Destination or Source.
func oracleLocalPath(t *testing.T, dest string) [2]string {
	t.Helper()
	dest = strings.TrimSpace(dest)
	if !strings.HasPrefix(dest, "/") {
		_, rest, ok := strings.Cut(dest, "://")
		if !ok {
			t.Fatalf("allowed with Destination %q", dest)
		}
		i := strings.IndexAny(rest, "/?")
		if i < 0 || rest[i] == '?' {
			dest = "/"
		} else {
			dest = rest[i:]
		}
	}
	return oracleReadings(t, dest)
}
