// Command linelimit enforces STYLE's size limits on the main module (make
// lint): no production package over 1,500 lines and no production
// function over 80. A package's lines are every line of its non-_test.go
// files; a function's are those from its func keyword to its closing
// brace. _test.go files, testdata/, and directories that are modules of
// their own (e2e/) are exempt.
//
//	go run ./internal/tools/linelimit [-top N] [dir]
//
// dir is the module root (default "."). It prints every breach and exits
// 1 when there is one; -top N also lists the N largest packages and the N
// longest functions.
package main

import (
	"cmp"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The limits (STYLE.md).
const (
	maxPackageLines = 1500
	maxFuncLines    = 80
)

func main() {
	top := flag.Int("top", 0, "also list the `N` largest packages and longest functions")
	flag.Parse()
	root := cmp.Or(flag.Arg(0), ".")
	m, err := measure(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "linelimit:", err)
		os.Exit(2)
	}
	if *top > 0 {
		m.report(os.Stdout, *top)
	}
	if breaches := m.breaches(); len(breaches) > 0 {
		for _, b := range breaches {
			fmt.Fprintln(os.Stderr, b)
		}
		os.Exit(1)
	}
}

// sized is a package or a function and its length in lines.
type sized struct {
	name  string // package directory, or file:line: func name
	lines int
}

// measurement is what measure found under a module root.
type measurement struct {
	packages []sized
	funcs    []sized
}

// measure counts the production lines of every package under root and
// the length of every production function.
func measure(root string) (*measurement, error) {
	byDir := map[string]int{}
	m := &measurement{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return skipDir(root, path, d)
		}
		if !isProduction(d.Name()) {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		byDir[filepath.Dir(rel)] += lineCount(src)
		funcs, err := funcLengths(fset, rel, src)
		m.funcs = append(m.funcs, funcs...)
		return err
	})
	if err != nil {
		return nil, err
	}
	for dir, n := range byDir {
		m.packages = append(m.packages, sized{name: filepath.ToSlash(dir), lines: n})
	}
	return m, nil
}

// skipDir skips what the go command skips (testdata, names starting with
// "." or "_") and directories that are modules of their own.
func skipDir(root, path string, d fs.DirEntry) error {
	if path == root {
		return nil
	}
	name := d.Name()
	if name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
		return filepath.SkipDir
	}
	if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
		return filepath.SkipDir
	}
	return nil
}

func isProduction(name string) bool {
	return strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")
}

// lineCount counts lines as an editor does: a last line without a line
// break counts too.
func lineCount(src []byte) int {
	n := strings.Count(string(src), "\n")
	if len(src) > 0 && src[len(src)-1] != '\n' {
		n++
	}
	return n
}

// funcLengths is the length of every function declared in a file.
func funcLengths(fset *token.FileSet, name string, src []byte) ([]sized, error) {
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []sized
	for _, decl := range f.Decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		start, end := fset.Position(fd.Pos()), fset.Position(fd.End())
		out = append(out, sized{
			name:  fmt.Sprintf("%s:%d: func %s", filepath.ToSlash(name), start.Line, funcName(fd)),
			lines: end.Line - start.Line + 1,
		})
	}
	return out, nil
}

// funcName is fd's name, with its receiver's type for a method.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if star, ok := t.(*ast.StarExpr); ok {
		t = star.X
	}
	if idx, ok := t.(*ast.IndexExpr); ok { // a generic receiver
		t = idx.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

// breaches lists every package and function over its limit.
func (m *measurement) breaches() []string {
	var out []string
	for _, p := range sortedBySize(m.packages) {
		if p.lines > maxPackageLines {
			out = append(out, fmt.Sprintf("package %s: %d non-test lines, over %d", p.name, p.lines, maxPackageLines))
		}
	}
	for _, f := range sortedBySize(m.funcs) {
		if f.lines > maxFuncLines {
			out = append(out, fmt.Sprintf("%s: %d lines, over %d", f.name, f.lines, maxFuncLines))
		}
	}
	return out
}

// report writes the n largest packages and the n longest functions.
func (m *measurement) report(w io.Writer, n int) {
	fmt.Fprintf(w, "largest packages (non-test lines, max %d):\n", maxPackageLines)
	for _, p := range first(sortedBySize(m.packages), n) {
		fmt.Fprintf(w, "%6d  %s\n", p.lines, p.name)
	}
	fmt.Fprintf(w, "longest functions (lines, max %d):\n", maxFuncLines)
	for _, f := range first(sortedBySize(m.funcs), n) {
		fmt.Fprintf(w, "%6d  %s\n", f.lines, f.name)
	}
}

// sortedBySize is s longest first, then by name.
func sortedBySize(s []sized) []sized {
	s = slices.Clone(s)
	slices.SortFunc(s, func(a, b sized) int {
		return cmp.Or(cmp.Compare(b.lines, a.lines), strings.Compare(a.name, b.name))
	})
	return s
}

func first(s []sized, n int) []sized { return s[:min(n, len(s))] }
