package storage

import (
	"errors"
	"fmt"
	"strings"
)

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
// Authorize: empty or an absolute, already normalized path without
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
	for seg := range strings.SplitSeq(b[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("%w: %q is not normalized", errInvalidBasePath, b)
		}
	}
	return b, nil
}
