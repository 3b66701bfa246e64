package grafana

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/leasegate/leasegate/deploy/internal/promtool"
	"github.com/leasegate/leasegate/deploy/internal/spec"
)

var update = flag.Bool("update", false, "rewrite leasegate.json from Dashboard()")

const committed = "leasegate.json"

func readCommitted(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDashboardJSONIsGenerated: the committed file is byte for byte what
// the SDK's builders produce (go test -update rewrites it).
func TestDashboardJSONIsGenerated(t *testing.T) {
	want, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(committed, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := readCommitted(t); !bytes.Equal(got, want) {
		t.Fatalf("%s differs from Dashboard(): edit dashboard.go, not the JSON, then run go test ./grafana -update", committed)
	}
}

func TestCommittedDashboardPassesCheck(t *testing.T) {
	if err := Check(readCommitted(t)); err != nil {
		t.Fatal(err)
	}
}

// panelTarget is one query of the committed dashboard, with its panel.
type panelTarget struct {
	Panel, Ref, Expr string
}

func targets(t *testing.T) []panelTarget {
	t.Helper()
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(readCommitted(t), &d); err != nil {
		t.Fatal(err)
	}
	var out []panelTarget
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, panelTarget{p.Title, tg.RefID, tg.Expr})
		}
	}
	if len(out) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return out
}

// TestQueriesFollowSpec lints every query against the SPEC §6 series.
func TestQueriesFollowSpec(t *testing.T) {
	for _, tg := range targets(t) {
		t.Run(tg.Panel+"/"+tg.Ref, func(t *testing.T) {
			if err := spec.Lint(tg.Expr); err != nil {
				t.Error(err)
			}
		})
	}
}

// notOnDashboard are SPEC §6 series the dashboard leaves out, and why.
var notOnDashboard = map[string]string{
	"leasegate_jwks_refreshes_total": "JWT issuers only; the end-to-end scenario (introspection) could not show it has data",
}

var seriesName = regexp.MustCompile(`leasegate_[a-z_]+`)

// TestDashboardShowsEverySeries: each SPEC §6 series is on some panel.
func TestDashboardShowsEverySeries(t *testing.T) {
	shown := map[string]bool{}
	for _, tg := range targets(t) {
		for _, n := range seriesName.FindAllString(tg.Expr, -1) {
			shown[strings.TrimSuffix(n, "_bucket")] = true
		}
	}
	for name := range spec.All {
		if !shown[name] && notOnDashboard[name] == "" {
			t.Errorf("%s is on no panel", name)
		}
	}
}

// TestQueriesParseInPromtool compiles every query with the Prometheus the
// tests run (Debian's 2.42), as recording rules in a scratch rule file,
// with Grafana's variables filled in as Grafana would.
func TestQueriesParseInPromtool(t *testing.T) {
	bin := promtool.Require(t)
	type recording struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []recording
	for i, tg := range targets(t) {
		rules = append(rules, recording{fmt.Sprintf("dashboard:query_%d", i), expand(tg.Expr, "5m", ".*")})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "queries.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := promtool.Run(bin, dir, "check", "rules", "queries.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(rules)); !strings.Contains(out, want) {
		t.Errorf("promtool: %q lacks %q", out, want)
	}
}

// mutate decodes the committed dashboard, lets f change it, re-encodes it.
func mutate(t *testing.T, f func(d map[string]any)) []byte {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(readCommitted(t), &d); err != nil {
		t.Fatal(err)
	}
	f(d)
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// panel returns the first top-level panel of type typ.
func panel(d map[string]any, typ string) map[string]any {
	for _, p := range d["panels"].([]any) {
		if p := p.(map[string]any); p["type"] == typ {
			return p
		}
	}
	panic("no " + typ + " panel")
}

func target(p map[string]any) map[string]any { return p["targets"].([]any)[0].(map[string]any) }

func obj(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

// TestCheckRejectsBrokenPanels breaks one panel of the committed
// dashboard at a time; Check must name each fault.
func TestCheckRejectsBrokenPanels(t *testing.T) {
	for _, tc := range []struct {
		name  string
		brk   func(d map[string]any)
		wants string
	}{
		{"unknown panel field", func(d map[string]any) { panel(d, "timeseries")["titel"] = "x" }, "unexpected field 'titel'"},
		{"mistyped panel field", func(d map[string]any) { obj(panel(d, "timeseries"), "gridPos")["w"] = "12" }, "gridPos"},
		{"unknown timeseries option", func(d map[string]any) {
			obj(obj(panel(d, "timeseries"), "options"), "legend")["placment"] = "bottom"
		}, "unexpected field 'placment'"},
		{"unknown stat option", func(d map[string]any) { obj(panel(d, "stat"), "options")["colourMode"] = "value" }, "unexpected field 'colourMode'"},
		{"unknown field config key", func(d map[string]any) {
			obj(obj(panel(d, "stat"), "fieldConfig"), "defaults")["unti"] = "s"
		}, "unexpected field 'unti'"},
		{"unknown custom field config key", func(d map[string]any) {
			obj(obj(obj(panel(d, "timeseries"), "fieldConfig"), "defaults"), "custom")["fillOpacty"] = 10
		}, "unexpected field 'fillOpacty'"},
		{"query field misspelled", func(d map[string]any) {
			tg := target(panel(d, "timeseries"))
			tg["exp"] = tg["expr"]
			delete(tg, "expr")
		}, "expr"},
		{"query not typed prometheus", func(d map[string]any) { delete(target(panel(d, "timeseries")), "datasource") }, "not a Prometheus query"},
		{"empty query", func(d map[string]any) { target(panel(d, "stat"))["expr"] = "" }, "empty expr"},
		{"panel without queries", func(d map[string]any) { panel(d, "stat")["targets"] = []any{} }, "no queries"},
		{"unknown panel type", func(d map[string]any) { panel(d, "timeseries")["type"] = "timeserie" }, `unknown panel type "timeserie"`},
		{"undefined variable", func(d map[string]any) {
			tg := target(panel(d, "timeseries"))
			tg["expr"] = strings.Replace(tg["expr"].(string), "$job", "$cluster", 1)
		}, "$cluster"},
		{"duplicate id", func(d map[string]any) { panel(d, "timeseries")["id"] = panel(d, "stat")["id"] }, "already used"},
		{"overlapping panels", func(d map[string]any) {
			obj(panel(d, "timeseries"), "gridPos")["y"] = obj(panel(d, "stat"), "gridPos")["y"]
			obj(panel(d, "timeseries"), "gridPos")["x"] = obj(panel(d, "stat"), "gridPos")["x"]
		}, "overlaps"},
		{"off the grid", func(d map[string]any) { obj(panel(d, "timeseries"), "gridPos")["x"] = 20 }, "off the 24-column grid"},
		{"panel nested in an open row", func(d map[string]any) {
			ps := d["panels"].([]any)
			ps[0].(map[string]any)["panels"] = []any{panel(d, "stat")}
		}, "open row"},
		{"no schemaVersion", func(d map[string]any) { delete(d, "schemaVersion") }, "schemaVersion"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(mutate(t, tc.brk))
			if err == nil {
				t.Fatalf("Check accepted the broken dashboard, want an error with %q", tc.wants)
			}
			if !strings.Contains(err.Error(), tc.wants) {
				t.Fatalf("Check: %v\nwant an error with %q", err, tc.wants)
			}
		})
	}
}

// expand fills in a query's variables as Grafana would: its interval
// variables with interval, the dashboard's ($job, ${instance}) with match.
func expand(expr, interval, match string) string {
	expr = grafanaInterval.ReplaceAllString(expr, interval)
	return varRef.ReplaceAllString(expr, match)
}

var grafanaInterval = regexp.MustCompile(`\$\{?__\w+\}?`)

func TestExpand(t *testing.T) {
	got := expand(`sum(rate(x{job=~"$job",instance=~"${instance}"}[$__rate_interval]))`, "42s", "a|b")
	if want := `sum(rate(x{job=~"a|b",instance=~"a|b"}[42s]))`; got != want {
		t.Fatalf("expand = %s, want %s", got, want)
	}
}
