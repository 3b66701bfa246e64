package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// summarizeFile prints, per label, the median and min–max over runs of
// every -json result in file. ratio names label prefixes to compare
// ("leasegate=noop"): for each label leasegate/X with a noop/X of the same
// run number, the throughput ratio of that pair, then median and min–max
// over runs. Pairs come from the same run because the two were measured
// back to back under the same background load.
func summarizeFile(out io.Writer, file, ratio string) error {
	order, byLabel, err := readResults(file)
	if err != nil {
		return err
	}
	summaryTable(out, order, byLabel)
	ratioTables(out, order, byLabel, ratio)
	return nil
}

// readResults reads a file of -json results, grouped by label in the order
// first seen.
func readResults(file string) ([]string, map[string][]Result, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var order []string
	byLabel := map[string][]Result{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", file, err)
		}
		if _, ok := byLabel[r.Label]; !ok {
			order = append(order, r.Label)
		}
		byLabel[r.Label] = append(byLabel[r.Label], r)
	}
	return order, byLabel, sc.Err()
}

func summaryTable(out io.Writer, order []string, byLabel map[string][]Result) {
	fmt.Fprintln(out, "| label | runs | requests/s | p50 µs | p90 µs | p99 µs | p99.9 µs | server CPU µs/req | client CPU µs/req | errors+denied |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|")
	for _, label := range order {
		rs := byLabel[label]
		col := func(get func(*Result) float64) string { return stat(rs, get) }
		bad := int64(0)
		for _, r := range rs {
			bad += r.Errors + r.Denied
		}
		fmt.Fprintf(out, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %d |\n", label, len(rs),
			col(func(r *Result) float64 { return r.RPS }),
			col(func(r *Result) float64 { return r.All.P50 }),
			col(func(r *Result) float64 { return r.All.P90 }),
			col(func(r *Result) float64 { return r.All.P99 }),
			col(func(r *Result) float64 { return r.All.P999 }),
			col(func(r *Result) float64 { return r.ServerCPUUs }),
			col(func(r *Result) float64 { return r.ClientCPUUs }),
			bad)
	}

	var split []string
	for _, rs := range byLabel {
		if rs[0].NewFrac > 0 {
			split = append(split, rs[0].Label)
		}
	}
	if len(split) > 0 {
		fmt.Fprintln(out)
		fmt.Fprintln(out, "| label | requests | share | p50 µs | p90 µs | p99 µs | p99.9 µs |")
		fmt.Fprintln(out, "|---|---|---|---|---|---|---|")
		for _, label := range order {
			rs := byLabel[label]
			if rs[0].NewFrac == 0 {
				continue
			}
			for _, part := range []struct {
				name string
				get  func(*Result) *Latency
			}{{"known tokens", func(r *Result) *Latency { return &r.Known }}, {"new tokens", func(r *Result) *Latency { return &r.New }}} {
				if part.get(&rs[0]).N == 0 {
					continue
				}
				fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s | %s |\n", label, part.name,
					stat(rs, func(r *Result) float64 { return float64(part.get(r).N) / r.DurationS }),
					stat(rs, func(r *Result) float64 { return part.get(r).P50 }),
					stat(rs, func(r *Result) float64 { return part.get(r).P90 }),
					stat(rs, func(r *Result) float64 { return part.get(r).P99 }),
					stat(rs, func(r *Result) float64 { return part.get(r).P999 }))
			}
		}
	}

}

func ratioTables(out io.Writer, order []string, byLabel map[string][]Result, ratio string) {
	for pair := range strings.SplitSeq(ratio, ",") {
		num, den, ok := strings.Cut(pair, "=")
		if !ok {
			continue
		}
		fmt.Fprintln(out)
		fmt.Fprintf(out, "| %s / %s | runs | throughput ratio | server CPU µs/req ratio |\n", num, den)
		fmt.Fprintln(out, "|---|---|---|---|")
		for _, label := range order {
			rest, ok := strings.CutPrefix(label, num+"/")
			if !ok {
				continue
			}
			dens := map[int]Result{}
			for _, r := range byLabel[den+"/"+rest] {
				dens[r.Run] = r
			}
			rps, cpu := pairRatios(byLabel[label], byLabel[den+"/"+rest])
			if len(rps) == 0 {
				continue
			}
			fmt.Fprintf(out, "| %s | %d | %s | %s |\n", rest, len(rps), medianRange(rps, "%.3f"), medianRange(cpu, "%.2f"))
		}
	}
}

// pairRatios are the throughput and server-CPU-per-request ratios of the
// results of nums to those of dens with the same run number.
func pairRatios(nums, dens []Result) (rps, cpu []float64) {
	byRun := map[int]Result{}
	for _, d := range dens {
		byRun[d.Run] = d
	}
	for _, r := range nums {
		d, ok := byRun[r.Run]
		if !ok || d.RPS == 0 {
			continue
		}
		rps = append(rps, r.RPS/d.RPS)
		if d.ServerCPUUs > 0 && r.ServerCPUUs > 0 {
			cpu = append(cpu, r.ServerCPUUs/d.ServerCPUUs)
		}
	}
	return rps, cpu
}

// matrixFile prints the peers table: for spec "den=a,b/d2,c", one row per
// server a, b, c and one column per concurrency found (labels
// server/c<N>), each cell the median and min–max over runs of the
// throughput ratio to its floor's run of the same round: the floor run
// measured right beside it (label den@a/c<N>) when there is one, else
// den/c<N>; b's floor is d2. Then the same for server CPU per request.
// names gives a row's display name ("a=leasegate, lease hit"; the label
// when absent).
func matrixFile(out io.Writer, file, spec string, names map[string]string) error {
	_, byLabel, err := readResults(file)
	if err != nil {
		return err
	}
	den, nums, ok := strings.Cut(spec, "=")
	if !ok {
		return fmt.Errorf("-matrix %q: want DEN=NUM[/DEN][,NUM[/DEN]]", spec)
	}
	var cs []int
	for label := range byLabel {
		if i := strings.LastIndex(label, "/c"); i >= 0 {
			if c, err := strconv.Atoi(label[i+2:]); err == nil && !slices.Contains(cs, c) {
				cs = append(cs, c)
			}
		}
	}
	slices.Sort(cs)
	floorOf := func(num, floor string, c int) []Result {
		if rs := byLabel[fmt.Sprintf("%s@%s/c%d", floor, num, c)]; len(rs) > 0 {
			return rs
		}
		return byLabel[fmt.Sprintf("%s/c%d", floor, c)]
	}
	for _, part := range []struct {
		title string
		cpu   bool
	}{{"throughput ÷ the floor's", false}, {"server CPU per request ÷ the floor's", true}} {
		fmt.Fprintf(out, "| %s |", part.title)
		for _, c := range cs {
			fmt.Fprintf(out, " %d stream%s |", c, map[bool]string{true: "", false: "s"}[c == 1])
		}
		fmt.Fprintln(out)
		fmt.Fprintln(out, "|---"+strings.Repeat("|---", len(cs))+"|")
		for item := range strings.SplitSeq(nums, ",") {
			num, floor, ok := strings.Cut(item, "/")
			if !ok {
				floor = den
			}
			fmt.Fprintf(out, "| %s |", cmp.Or(names[num], num))
			for _, c := range cs {
				rps, cpu := pairRatios(byLabel[fmt.Sprintf("%s/c%d", num, c)], floorOf(num, floor, c))
				v := rps
				if part.cpu {
					v = cpu
				}
				fmt.Fprintf(out, " %s |", medianRange(v, "%.2f"))
			}
			fmt.Fprintln(out)
		}
		fmt.Fprintln(out)
	}
	return nil
}
func stat(rs []Result, get func(*Result) float64) string {
	v := make([]float64, 0, len(rs))
	for i := range rs {
		v = append(v, get(&rs[i]))
	}
	format := "%.0f"
	if m := median(v); m < 100 {
		format = "%.1f"
	}
	return medianRange(v, format)
}

// medianRange formats "median (min–max)"; with one value (or all equal),
// just the value.
func medianRange(v []float64, format string) string {
	if len(v) == 0 {
		return "–"
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 1 || s[0] == s[len(s)-1] {
		return fmt.Sprintf(format, s[0])
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", median(s), s[0], s[len(s)-1])
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
