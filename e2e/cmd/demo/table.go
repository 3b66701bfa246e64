package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// table prints the scenario as aligned rows, one per request, as they
// happen (so a slow step shows up live instead of after the fact).
type table struct{ w io.Writer }

func newTable(w io.Writer) *table { return &table{w: w} }

const rowFormat = "%4s  %-30s %-5s %-9s %-8s %-18s %6s %9s  %s\n"

func (t *table) section(title string) {
	fmt.Fprintf(t.w, "\n%s\n", title)
}

func (t *table) header() {
	fmt.Fprintf(t.w, rowFormat, "step", "request", "token", "tier", "lease", "decision", "calls", "latency", "")
	fmt.Fprintf(t.w, rowFormat, "----", strings.Repeat("-", 30), "-----", "---------", "--------", strings.Repeat("-", 18), "------", "---------", "")
}

func (t *table) row(step int, request, token, tier, lease, decision string, calls int64, latency time.Duration, note string) {
	if len(request) > 30 {
		request = request[:29] + "…"
	}
	fmt.Fprintf(t.w, rowFormat, fmt.Sprint(step), request, token, dash(tier), dash(lease), decision, fmt.Sprint(calls), formatLatency(latency), note)
}

func (t *table) note(format string, a ...any) {
	fmt.Fprintf(t.w, "      ↳ "+format+"\n", a...)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatLatency shows sub-millisecond lease hits in µs and issuer calls in
// ms, to one decimal.
func formatLatency(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

const gridFormat = "%4s  %-46s %-7s %-13s %5s %6s  %s\n"

func (t *table) gridHeader() {
	fmt.Fprintf(t.w, gridFormat, "step", "client operation", "token", "result", "calls", "total", "(introspections at Hydra: this step, since step 1)")
	fmt.Fprintf(t.w, gridFormat, "----", strings.Repeat("-", 46), "-------", strings.Repeat("-", 13), "-----", "------", "")
}

// gridRow is one grid client operation: its result, the introspections it
// caused at Hydra (0: answered from the lease) and the total so far.
func (t *table) gridRow(step int, op, token, result string, calls, total int64, note string) {
	if len(op) > 46 {
		op = op[:45] + "…"
	}
	fmt.Fprintf(t.w, gridFormat, fmt.Sprint(step), op, token, result, fmt.Sprint(calls), fmt.Sprint(total), note)
}
