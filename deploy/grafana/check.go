package grafana

//lint:file-ignore SA1019 the classic dashboard types are what leasegate.json is (see dashboard.go).

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

var registerPlugins = sync.OnceFunc(plugins.RegisterDefaultPlugins)

// gridWidth is Grafana's dashboard grid width.
const gridWidth = 24

// Check decodes a dashboard JSON strictly into the Foundation SDK's types
// and returns every problem found. The SDK's strict decoding rejects an
// unknown or mistyped field in the dashboard, a panel, a panel's options
// (per panel plugin) and a Prometheus query; Check adds what it leaves
// lenient or unchecked: the field config, an unknown panel type (whose
// options would otherwise go unchecked), a query not typed as Prometheus,
// panel ids, the grid, and variables a query uses but the dashboard lacks.
func Check(raw []byte) error {
	registerPlugins()
	var d dashboard.Dashboard
	if err := sdkErr(d.UnmarshalJSONStrict(raw)); err != nil {
		return fmt.Errorf("dashboard does not match the Grafana schema types: %w", err)
	}
	if err := sdkErr(d.Validate()); err != nil {
		return fmt.Errorf("dashboard fails the Grafana schema validation: %w", err)
	}
	// The SDK (v0.0.22) reports a panel's faults but keeps none of the
	// panels, queries or options it decoded (its empty error list reads as
	// a failure one level up), so each panel is decoded again here.
	var shape struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &shape); err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	c := checker{ids: map[uint32]string{}, vars: vars}
	for i, rp := range shape.Panels {
		where := fmt.Sprintf("panels[%d]", i)
		var kind struct {
			Type   string            `json:"type"`
			Panels []json.RawMessage `json:"panels"`
		}
		if err := json.Unmarshal(rp, &kind); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if kind.Type != "row" {
			if pos, ok := c.panel(rp, where); ok {
				c.placed = append(c.placed, pos)
			}
			continue
		}
		var r dashboard.RowPanel
		if err := sdkErr(r.UnmarshalJSONStrict(rp)); err != nil {
			c.errs = append(c.errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		where = fmt.Sprintf("%s (row %q)", where, deref(r.Title))
		c.id(r.Id, where)
		c.placed = append(c.placed, placedPanel{where, r.GridPos})
		for j, np := range kind.Panels {
			if !r.Collapsed {
				c.errs = append(c.errs, fmt.Errorf("%s.panels[%d]: an open row keeps its panels at the top level; nested panels belong to a collapsed row", where, j))
			}
			// A collapsed row's panels are placed when it opens, so they
			// are not on the grid with the others.
			c.panel(np, fmt.Sprintf("%s.panels[%d]", where, j))
		}
	}
	c.grid()
	return errors.Join(c.errs...)
}

// checker gathers the problems of one dashboard.
type checker struct {
	ids    map[uint32]string
	vars   map[string]bool
	placed []placedPanel
	errs   []error
}

func (c *checker) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

// panel checks one panel and returns where it sits on the grid (false
// when it could not be decoded).
func (c *checker) panel(raw json.RawMessage, where string) (placedPanel, bool) {
	var p dashboard.Panel
	if err := sdkErr(p.UnmarshalJSONStrict(raw)); err != nil {
		c.fail("%s: %w", where, err)
		return placedPanel{}, false
	}
	where = fmt.Sprintf("%s (%s %q)", where, p.Type, deref(p.Title))
	pos := placedPanel{where, p.GridPos}
	if err := sdkErr(p.Validate()); err != nil {
		c.fail("%s: %w", where, err)
	}
	if p.Id == nil {
		c.fail("%s: no id", where)
	} else {
		c.id(*p.Id, where)
	}
	if _, ok := cog.ConfigForPanelcfgVariant(p.Type); !ok {
		c.fail("%s: unknown panel type %q", where, p.Type)
	}
	var parts struct {
		FieldConfig json.RawMessage   `json:"fieldConfig"`
		Targets     []json.RawMessage `json:"targets"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		c.fail("%s: %w", where, err)
		return pos, true
	}
	if parts.FieldConfig != nil {
		var fc dashboard.FieldConfigSource
		if err := sdkErr(fc.UnmarshalJSONStrict(parts.FieldConfig)); err != nil {
			c.fail("%s: fieldConfig: %w", where, err)
		}
	}
	if len(parts.Targets) == 0 {
		c.fail("%s: no queries", where)
	}
	refs := map[string]bool{}
	for k, t := range parts.Targets {
		c.query(t, fmt.Sprintf("%s: targets[%d]", where, k), refs)
	}
	return pos, true
}

// query checks one target: a Prometheus query (so the SDK decoded it
// strictly) with a unique refId, an expr, and only defined variables.
func (c *checker) query(raw json.RawMessage, where string, refs map[string]bool) {
	var typed struct {
		Datasource struct {
			Type string `json:"type"`
		} `json:"datasource"`
	}
	if err := json.Unmarshal(raw, &typed); err != nil || typed.Datasource.Type != "prometheus" {
		c.fail("%s is not a Prometheus query (its datasource.type must be prometheus)", where)
		return
	}
	var q prometheus.Dataquery
	if err := sdkErr(q.UnmarshalJSONStrict(raw)); err != nil {
		c.fail("%s: %w", where, err)
		return
	}
	if err := sdkErr(q.Validate()); err != nil {
		c.fail("%s: %w", where, err)
	}
	ref := deref(q.RefId)
	if ref == "" || refs[ref] {
		c.fail("%s: refId %q is empty or repeated", where, ref)
	}
	refs[ref] = true
	if q.Expr == "" {
		c.fail("%s has an empty expr", where)
	}
	for _, v := range Variables(q.Expr) {
		if !c.vars[v] && !grafanaVars[v] {
			c.fail("%s uses $%s, which the dashboard does not define", where, v)
		}
	}
}

func (c *checker) id(id uint32, where string) {
	if id == 0 {
		c.fail("%s: id 0", where)
		return
	}
	if other, dup := c.ids[id]; dup {
		c.fail("%s: id %d already used by %s", where, id, other)
		return
	}
	c.ids[id] = where
}

type placedPanel struct {
	where string
	pos   *dashboard.GridPos
}

// grid wants every panel on the 24-column grid, none overlapping.
func (c *checker) grid() {
	for i, a := range c.placed {
		if a.pos == nil {
			c.fail("%s: no gridPos", a.where)
			continue
		}
		if a.pos.W == 0 || a.pos.H == 0 || a.pos.X+a.pos.W > gridWidth {
			c.fail("%s: gridPos %+v is off the %d-column grid", a.where, *a.pos, gridWidth)
		}
		for _, b := range c.placed[:i] {
			if b.pos != nil && overlap(a.pos, b.pos) {
				c.fail("%s: gridPos %+v overlaps %s", a.where, *a.pos, b.where)
			}
		}
	}
}

func overlap(a, b *dashboard.GridPos) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

// grafanaVars are the variables Grafana itself defines for queries.
var grafanaVars = map[string]bool{
	"__rate_interval": true, "__interval": true, "__interval_ms": true,
	"__range": true, "__range_s": true, "__range_ms": true,
}

var varRef = regexp.MustCompile(`\$(\w+)|\$\{(\w+)\}`)

// Variables lists the template variables an expression uses ($x or ${x}).
func Variables(expr string) []string {
	var out []string
	for _, m := range varRef.FindAllStringSubmatch(expr, -1) {
		if v := m[1] + m[2]; !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// sdkErr is err, or nil for the SDK's empty cog.BuildErrors: its decoders
// return that typed empty list, a non-nil error, when they found nothing.
func sdkErr(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
