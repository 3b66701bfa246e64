package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// gobenchFile prints a table of go test -bench output (any number of
// -count runs, any packages): per benchmark, the median and min–max of
// each metric (ns/op, B/op, allocs/op and custom ones such as heap-MiB).
func gobenchFile(out io.Writer, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	var names, units []string
	vals := map[string]map[string][]float64{} // benchmark → unit → values
	pkg := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p[strings.LastIndexByte(p, '/')+1:]
			continue
		}
		fs := strings.Fields(line)
		if len(fs) < 4 || !strings.HasPrefix(fs[0], "Benchmark") {
			continue
		}
		name := pkg + " " + strings.TrimPrefix(fs[0], "Benchmark")
		if vals[name] == nil {
			vals[name] = map[string][]float64{}
			names = append(names, name)
		}
		for i := 2; i+1 < len(fs); i += 2 {
			v, err := strconv.ParseFloat(fs[i], 64)
			if err != nil {
				break
			}
			u := fs[i+1]
			if !contains(units, u) {
				units = append(units, u)
			}
			vals[name][u] = append(vals[name][u], v)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	fmt.Fprintf(out, "| benchmark | runs | %s |\n", strings.Join(units, " | "))
	fmt.Fprintln(out, "|---|---"+strings.Repeat("|---", len(units))+"|")
	for _, name := range names {
		runs := 0
		cells := make([]string, len(units))
		for i, u := range units {
			v := vals[name][u]
			runs = max(runs, len(v))
			format := "%.0f"
			if m := median(v); m < 1000 && m != float64(int64(m)) {
				format = "%.1f"
			}
			cells[i] = medianRange(v, format)
		}
		fmt.Fprintf(out, "| %s | %d | %s |\n", name, runs, strings.Join(cells, " | "))
	}
	return nil
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// spliceFile replaces, in file, what lies between the lines
// "<!-- bench:NAME -->" and "<!-- /bench:NAME -->" with the contents of
// md, for each NAME=md of sections; a section not marked in file is an
// error, so a renamed heading cannot silently drop a table.
func spliceFile(file, sections string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	text := string(b)
	for sec := range strings.SplitSeq(sections, ",") {
		name, md, ok := strings.Cut(sec, "=")
		if !ok {
			return fmt.Errorf("-section %q: want NAME=FILE", sec)
		}
		body, err := os.ReadFile(md)
		if err != nil {
			return err
		}
		open, end := "<!-- bench:"+name+" -->\n", "<!-- /bench:"+name+" -->"
		i := strings.Index(text, open)
		j := strings.Index(text, end)
		if i < 0 || j < i {
			return fmt.Errorf("%s: no %q … %q section", file, strings.TrimSpace(open), end)
		}
		text = text[:i+len(open)] + strings.TrimRight(string(body), "\n") + "\n" + text[j:]
	}
	return os.WriteFile(file, []byte(text), 0o644)
}
