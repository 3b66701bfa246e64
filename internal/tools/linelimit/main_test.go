package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// funcOf is a Go function of exactly n lines (n ≥ 2), a method of T when
// recv is set.
func funcOf(name string, n int, recv bool) string {
	var b strings.Builder
	if recv {
		fmt.Fprintf(&b, "func (t *T) %s() {\n", name)
	} else {
		fmt.Fprintf(&b, "func %s() {\n", name)
	}
	for range n - 2 {
		b.WriteString("\t_ = 0\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// fileOf is a Go file of package pkg, padded with comment lines to
// exactly lines lines.
func fileOf(pkg string, lines int, body string) string {
	s := "package " + pkg + "\n\ntype T struct{}\n\n" + body
	return s + strings.Repeat("// pad\n", lines-strings.Count(s, "\n"))
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, src := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestBreaches(t *testing.T) {
	const mod = "module example.com/m\n"
	tests := []struct {
		name  string
		files map[string]string
		want  []string // the start of each breach, in order
	}{
		{
			name: "within the limits",
			files: map[string]string{
				"go.mod":   mod,
				"a/a.go":   fileOf("a", maxPackageLines-101, funcOf("F", maxFuncLines, false)),
				"a/b.go":   fileOf("a", 100, funcOf("G", 3, true)),
				"main.go":  fileOf("main", 10, funcOf("main", 3, false)),
				"z/z.go":   fileOf("z", 5, "func Decl()\n"), // no body: assembly or linkname
				"a/doc.go": "package a",                     // no final line break
			},
		},
		{
			name: "a function one line over",
			files: map[string]string{
				"go.mod": mod,
				"a/a.go": fileOf("a", 200, funcOf("F", maxFuncLines+1, false)+funcOf("M", maxFuncLines+5, true)),
			},
			want: []string{"a/a.go:86: func T.M: 85 lines", "a/a.go:5: func F: 81 lines"},
		},
		{
			name: "a package one line over, across files",
			files: map[string]string{
				"go.mod":   mod,
				"p/a.go":   fileOf("p", 1000, ""),
				"p/b.go":   fileOf("p", 501, ""),
				"p/q/c.go": fileOf("q", 1000, ""), // a package of its own
			},
			want: []string{"package p: 1501 non-test lines"},
		},
		{
			name: "tests, testdata, dot and underscore dirs, other modules are exempt",
			files: map[string]string{
				"go.mod":             mod,
				"a/a_test.go":        fileOf("a", 2000, funcOf("TestF", 500, false)),
				"a/testdata/x.go":    fileOf("x", 2000, funcOf("F", 500, false)),
				".cache/x.go":        fileOf("x", 2000, funcOf("F", 500, false)),
				"_old/x.go":          fileOf("x", 2000, funcOf("F", 500, false)),
				"e2e/go.mod":         "module example.com/m/e2e\n",
				"e2e/internal/x.go":  fileOf("x", 2000, funcOf("F", 500, false)),
				"a/notes.txt":        strings.Repeat("x\n", 2000),
				"a/a.go":             fileOf("a", 10, ""),
				"a/testdata/go.mod":  mod,
				"e2e/cmd/tool/m.go":  fileOf("main", 2000, ""),
				"a/testdata/fuzz/x":  "go test fuzz v1\n",
				"e2e/internal/y.txt": "",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := measure(writeTree(t, tt.files))
			if err != nil {
				t.Fatal(err)
			}
			got := m.breaches()
			if len(got) != len(tt.want) {
				t.Fatalf("breaches %q, want %d starting %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("breach %d is %q, want it to start %q", i, got[i], w)
				}
			}
		})
	}
}

func TestMeasure(t *testing.T) {
	root := writeTree(t, map[string]string{
		"go.mod":  "module example.com/m\n",
		"a/a.go":  fileOf("a", 40, funcOf("F", 7, false)+funcOf("M", 12, true)),
		"a/b.go":  fileOf("a", 60, ""),
		"main.go": fileOf("main", 30, funcOf("main", 4, false)),
	})
	m, err := measure(root)
	if err != nil {
		t.Fatal(err)
	}
	pkgs := sortedBySize(m.packages)
	if want := []sized{{"a", 100}, {".", 30}}; !slices.Equal(pkgs, want) {
		t.Errorf("packages %v, want %v", pkgs, want)
	}
	funcs := sortedBySize(m.funcs)
	want := []sized{{"a/a.go:12: func T.M", 12}, {"a/a.go:5: func F", 7}, {"main.go:5: func main", 4}}
	if !slices.Equal(funcs, want) {
		t.Errorf("funcs %v, want %v", funcs, want)
	}
}

func TestParseError(t *testing.T) {
	root := writeTree(t, map[string]string{"go.mod": "module example.com/m\n", "a/a.go": "package a\nfunc {"})
	if _, err := measure(root); err == nil {
		t.Fatal("a file that does not parse was measured")
	}
}
