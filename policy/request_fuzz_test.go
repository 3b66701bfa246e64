package policy

import (
	"errors"
	"net/url"
	"path"
	"strings"
	"testing"
)

// FuzzNormalizePath checks normalizePath's output contract and compares it
// with the standard library's reading (url.PathUnescape, then path.Clean),
// with and without ";parameters". Idempotence is stated on the re-escaped
// output: the output is decoded, so feeding it back as-is would decode a
// literal "%41" again; escaping '%', '?' and '#' first must give the output
// back unchanged.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{
		"/", "/a/b", "/a/../b", "//a//b/", "/a/%2e%2e/b", "/a%2Fb", "/a%252Fb", "/a/..;/b",
		"/a?b", "/%3F/x", "/a%5c", "/%00", "/a/.", "/../..", "/%C3%A9", "/a;b/..", "/%25%3f",
		"/data;x/secret", "/%64ata/secret%zz", "/data\\secret", "/store/secret.root#/../../public/x",
		"/a%3Bb/c", "/a;b;c/d;e/", "/a/%23b", "/a?b#c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		clean, literal, err := normalizePath(raw)
		if p, ok := cleanTarget(raw); ok {
			if c, l, err := normalizeSlow(raw); err != nil || c != p || l != p {
				t.Fatalf("cleanTarget(%q) = %q, but the full path gives %q, %q, %v", raw, p, c, l, err)
			}
		}
		beforeQuery, _, _ := strings.Cut(raw, "?")
		lower := strings.ToLower(beforeQuery)
		mustFail := strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(lower, "%00") ||
			strings.ContainsAny(beforeQuery, "\\\x00") || !strings.HasPrefix(beforeQuery, "/") ||
			strings.ContainsAny(raw, "#\x00")
		if err != nil {
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("normalizePath(%q): error %v does not wrap ErrInvalidPath", raw, err)
			}
			return
		}
		if mustFail {
			t.Fatalf("normalizePath(%q) = %q, %q; want an error", raw, clean, literal)
		}
		for _, out := range []string{clean, literal} {
			if !strings.HasPrefix(out, "/") || strings.Contains(out, "//") {
				t.Fatalf("normalizePath(%q) = %q: not absolute or has //", raw, out)
			}
			for _, seg := range strings.Split(out[1:], "/") {
				if seg == "." || seg == ".." {
					t.Fatalf("normalizePath(%q) = %q: dot segment", raw, out)
				}
			}
		}
		if strings.IndexByte(clean, ';') >= 0 {
			t.Fatalf("normalizePath(%q) = %q: clean path keeps a ';'", raw, clean)
		}
		if strings.Count(clean, "/") != strings.Count(literal, "/") {
			t.Fatalf("normalizePath(%q): %q and %q have different segments", raw, clean, literal)
		}
		dec, derr := url.PathUnescape(beforeQuery)
		if derr != nil {
			t.Fatalf("normalizePath(%q) accepted what url.PathUnescape refuses: %v", raw, derr)
		}
		if want := path.Clean(dec); strings.TrimSuffix(literal, "/") != strings.TrimSuffix(want, "/") {
			t.Fatalf("normalizePath(%q) literal = %q, path.Clean(decoded) = %q", raw, literal, want)
		}
		segs := strings.Split(dec, "/")
		for i, s := range segs {
			segs[i], _, _ = strings.Cut(s, ";")
		}
		if want := path.Clean(strings.Join(segs, "/")); strings.TrimSuffix(clean, "/") != strings.TrimSuffix(want, "/") {
			t.Fatalf("normalizePath(%q) = %q, path.Clean(decoded, no params) = %q", raw, clean, want)
		}
		c2, l2, err := normalizePath(reescape(clean))
		if err != nil || c2 != clean || l2 != clean {
			t.Fatalf("not a fixed point: normalizePath(%q) = %q, then %q, %q, %v", raw, clean, c2, l2, err)
		}
		c3, l3, err := normalizePath(reescape(literal))
		if err != nil || c3 != clean || l3 != literal {
			t.Fatalf("literal not a fixed point: normalizePath(%q) = %q, %q; then %q, %q, %v", raw, clean, literal, c3, l3, err)
		}
	})
}

// reescape encodes exactly the characters normalizePath would otherwise read
// differently the second time: '%', '?' and '#'. A ';' is a parameter
// separator whether raw or decoded, so it stays.
func reescape(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(p)
}
