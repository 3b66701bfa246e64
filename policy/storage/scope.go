package storage

import (
	"errors"
	"net/url"
	"strings"

	"github.com/leasegate/leasegate/policy"
)

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
// profile's grammar (any malformed one invalidates the token) and records on
// each check what the scopes covering its path grant. Scopes of other
// grammars are ignored.
func grantStorage(profile policy.StorageProfile, scope string, checks []storageCheck) error {
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
			if !c.outside && c.have&ops != ops && scopeCovers(spath, c.rel) {
				c.have |= ops
			}
		}
	}
	return nil
}

// parseStorageScope parses one scope token. ok is false for a scope this
// profile does not interpret. spath is decoded and relative to the base path.
func parseStorageScope(profile policy.StorageProfile, tok string) (ops storageOp, spath string, ok bool, err error) {
	var raw string
	if profile == policy.ProfileWLCG {
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
	p, err := policy.DecodeOnce(raw)
	if err != nil {
		return "", errors.New("a storage scope path has an encoded slash, backslash or NUL, or a bad escape")
	}
	// Every segment but a last, empty one (a trailing '/') must be named.
	for seg, rest, more := "", p[1:], true; more; {
		seg, rest, more = strings.Cut(rest, "/")
		if (seg == "" && more) || seg == "." || seg == ".." {
			return "", errors.New("a storage scope path is not normalized (dot segment or '//')")
		}
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
func scopeHint(profile policy.StorageProfile, c storageCheck) string {
	var verb string
	switch {
	case profile == policy.ProfileSciTokens && c.op&(opStat|opRead) != 0:
		verb = "read"
	case profile == policy.ProfileSciTokens:
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
