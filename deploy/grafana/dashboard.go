// Package grafana builds leasegate's Grafana dashboard (leasegate.json)
// with Grafana's own Foundation SDK types, so the committed JSON is what
// the SDK's builders produce, and checks a dashboard JSON strictly
// against those types (Check).
//
// Regenerate leasegate.json after editing this file:
//
//	cd deploy && go test ./grafana -run TestDashboardJSONIsGenerated -update
package grafana

//lint:file-ignore SA1019 the SDK marks its classic dashboard builder deprecated in favour of dashboardv2, which only Grafana 12's new dashboard API takes; the classic JSON model is what Grafana's import and file provisioning read.

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// UID is the dashboard's uid: stable, so a re-import replaces it.
const UID = "leasegate"

// sel restricts every query to the dashboard's job and instance choice.
const sel = `job=~"$job",instance=~"$instance"`

// Hit ratio (SPEC §6 lease outcomes): decisions answered from a lease
// (hit, or a negative lease) over all that looked one up (hit, negative,
// miss, stale). "none" (no or malformed token) never reaches the cache.
const (
	leasedHit = `lease=~"hit|negative"`
	leasedAll = `lease=~"hit|negative|miss|stale"`
)

// ds is the panels' and queries' data source: the $datasource variable.
func ds() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}
}

// q is one Prometheus query with its refId and legend.
func q(ref, expr, legend string) *prometheus.DataqueryBuilder {
	b := prometheus.NewDataqueryBuilder().Datasource(ds()).RefId(ref).Expr(expr).Range()
	if legend != "" {
		b = b.LegendFormat(legend)
	}
	return b
}

// instant is a query read once (stat and table panels).
func instant(ref, expr, legend string) *prometheus.DataqueryBuilder {
	b := prometheus.NewDataqueryBuilder().Datasource(ds()).RefId(ref).Expr(expr).Instant()
	if legend != "" {
		b = b.LegendFormat(legend)
	}
	return b
}

// rate is rate() of a counter over the dashboard's rate interval.
func rate(metric, labels string) string {
	if labels != "" {
		labels = "," + labels
	}
	return fmt.Sprintf("rate(%s{%s%s}[$__rate_interval])", metric, sel, labels)
}

// quantile is histogram_quantile of a histogram's buckets, by the labels.
func quantile(phi, metric, by string) string {
	if by != "" {
		by += ", "
	}
	return fmt.Sprintf("histogram_quantile(%s, sum by (%sle) (%s))", phi, by, rate(metric+"_bucket", ""))
}

func hitRatio(by string) string {
	return fmt.Sprintf("sum%s (%s)\n/\nsum%s (%s)",
		by, rate("leasegate_decisions_total", leasedHit), by, rate("leasegate_decisions_total", leasedAll))
}

func series(id uint32, title, desc, unit string, w uint32, targets ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().Id(id).Title(title).Description(desc).Datasource(ds()).
		Unit(unit).Span(w).Height(8).FillOpacity(10).
		Legend(common.NewVizLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom).ShowLegend(true)).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
	for _, t := range targets {
		p = p.WithTarget(t)
	}
	return p
}

func single(id uint32, title, desc, unit string, target *prometheus.DataqueryBuilder) *stat.PanelBuilder {
	return stat.NewPanelBuilder().Id(id).Title(title).Description(desc).Datasource(ds()).
		Unit(unit).Span(4).Height(4).GraphMode(common.BigValueGraphModeNone).Orientation(common.VizOrientationAuto).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		WithTarget(target)
}

// stateMap names 0/1 gauges (breaker open, store up) in state timelines.
func stateMap(zero, zeroColor, one, oneColor string) []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
		Type: dashboard.MappingTypeValueToText,
		Options: map[string]dashboard.ValueMappingResult{
			"0": {Text: cog.ToPtr(zero), Color: cog.ToPtr(zeroColor), Index: cog.ToPtr[int32](0)},
			"1": {Text: cog.ToPtr(one), Color: cog.ToPtr(oneColor), Index: cog.ToPtr[int32](1)},
		},
	}}}
}

func states(id uint32, title, desc string, mapping []dashboard.ValueMapping, target *prometheus.DataqueryBuilder) *statetimeline.PanelBuilder {
	return statetimeline.NewPanelBuilder().Id(id).Title(title).Description(desc).Datasource(ds()).
		Span(12).Height(6).Mappings(mapping).ShowValue(common.VisibilityModeNever).
		Legend(common.NewVizLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom).ShowLegend(true)).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeSingle).Sort(common.SortOrderNone)).
		WithTarget(target)
}

func variables(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	label := func(query string) dashboard.StringOrMap { return dashboard.StringOrMap{String: cog.ToPtr(query)} }
	return b.
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		WithVariable(dashboard.NewQueryVariableBuilder("job").Label("Job").Datasource(ds()).
			Query(label(`label_values(leasegate_build_info, job)`)).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).IncludeAll(true).AllValue(".*")).
		WithVariable(dashboard.NewQueryVariableBuilder("instance").Label("Instance").Datasource(ds()).
			Query(label(`label_values(leasegate_build_info{job=~"$job"}, instance)`)).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).IncludeAll(true).AllValue(".*"))
}

// Dashboard builds the dashboard. Panels name only SPEC §6 series.
func Dashboard() (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder("leasegate").Uid(UID).
		Description("leasegate: decisions by lease tier, lease cache, issuers, revocation and fleet mode (SPEC §6, §8).").
		Tags([]string{"leasegate", "ext_authz", "oauth2"}).
		Refresh("30s").Time("now-1h", "now").Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair)
	b = variables(b)
	b = overview(b)
	b = decisions(b)
	b = issuers(b)
	b = leases(b)
	b = fleet(b)
	return b.Build()
}

func overview(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(dashboard.NewRowBuilder("Overview").Id(100)).
		WithPanel(single(1, "Decisions/s", "Access decisions per second, every tier and outcome.", "reqps",
			instant("A", "sum ("+rate("leasegate_decisions_total", "")+")", ""))).
		WithPanel(single(2, "Hit ratio",
			"Share of decisions on a token answered from a lease (hit or negative lease) without asking the issuer; stale answers count as misses.",
			"percentunit", instant("A", hitRatio(""), "")).Min(0).Max(1)).
		WithPanel(single(3, "Issuer calls/s", "Validations sent to issuers per second, every outcome.", "reqps",
			instant("A", "sum ("+rate("leasegate_issuer_requests_total", "")+")", ""))).
		WithPanel(single(4, "Revocation bound",
			"Longest a token revoked at its issuer may still be allowed (largest tier window, stale_if_error included).", "s",
			instant("A", `max (leasegate_revocation_bound_seconds{`+sel+`})`, ""))).
		WithPanel(single(5, "Leases held", "Positive leases in the lease caches.", "short",
			instant("A", `sum (leasegate_leases{`+sel+`})`, ""))).
		WithPanel(table.NewPanelBuilder().Id(6).Title("Builds").Description("Running versions (leasegate_build_info).").
			Datasource(ds()).Span(4).Height(4).
			Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"count"})).
			WithTarget(instant("A", `count by (version, revision, goversion) (leasegate_build_info{`+sel+`})`, "").
				Format(prometheus.PromQueryFormatTable)))
}

func decisions(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(dashboard.NewRowBuilder("Decisions").Id(101)).
		WithPanel(series(7, "Decisions by tier and lease outcome",
			"Decisions per second by lease tier and lease outcome (hit, miss, stale, negative, none).", "reqps", 12,
			q("A", "sum by (tier, lease) ("+rate("leasegate_decisions_total", "")+")", "{{tier}} {{lease}}"))).
		WithPanel(series(8, "Decisions by outcome",
			"Decisions per second: allow, deny (401/403/400) and unavailable (503).", "reqps", 12,
			q("A", "sum by (decision) ("+rate("leasegate_decisions_total", "")+")", "{{decision}}"))).
		WithPanel(series(9, "Hit ratio by tier",
			"Per tier: decisions answered from a lease over those that looked one up. A tier with window 0 is always 0.", "percentunit", 12,
			q("A", hitRatio(" by (tier)"), "{{tier}}")).Min(0).Max(1)).
		WithPanel(series(10, "Check latency by tier",
			"Time to decide, p50 and p99, by tier.", "s", 12,
			q("A", quantile("0.5", "leasegate_check_duration_seconds", "tier"), "p50 {{tier}}"),
			q("B", quantile("0.99", "leasegate_check_duration_seconds", "tier"), "p99 {{tier}}")))
}

func issuers(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(dashboard.NewRowBuilder("Issuers").Id(102)).
		WithPanel(series(11, "Issuer calls by outcome",
			"Validations per second by issuer and outcome (active, inactive, invalid, error, circuit_open).", "reqps", 12,
			q("A", "sum by (issuer, outcome) ("+rate("leasegate_issuer_requests_total", "")+")", "{{issuer}} {{outcome}}"))).
		WithPanel(series(12, "Issuer latency",
			"Time per validation with an issuer, p50 and p99.", "s", 12,
			q("A", quantile("0.5", "leasegate_issuer_request_duration_seconds", "issuer"), "p50 {{issuer}}"),
			q("B", quantile("0.99", "leasegate_issuer_request_duration_seconds", "issuer"), "p99 {{issuer}}"))).
		WithPanel(series(13, "Coalesced requests",
			"Requests per second that shared another request's in-flight issuer call instead of making their own.", "reqps", 12,
			q("A", "sum ("+rate("leasegate_coalesced_total", "")+")", "coalesced"))).
		WithPanel(states(14, "Breaker state",
			"Each issuer's circuit breaker: open means checks that need the issuer get 503 (or a stale lease) without a call.",
			stateMap("closed", "green", "open", "red"),
			q("A", `max by (issuer) (leasegate_breaker_open{`+sel+`})`, "{{issuer}}")))
}

func leases(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(dashboard.NewRowBuilder("Leases, revocation and configuration").Id(103)).
		WithPanel(series(15, "Stale serving",
			"Allows per second on a lease past its window because the issuer failed (stale_if_error): revocations at the issuer are not seen meanwhile.", "reqps", 12,
			q("A", "sum by (tier) ("+rate("leasegate_decisions_total", `lease="stale"`)+")", "{{tier}}"))).
		WithPanel(series(16, "Leases held",
			"Positive and negative leases in each replica's lease cache.", "short", 12,
			q("A", `sum by (instance) (leasegate_leases{`+sel+`})`, "leases {{instance}}"),
			q("B", `sum by (instance) (leasegate_negative_leases{`+sel+`})`, "negative {{instance}}"))).
		WithPanel(series(17, "Lease evictions",
			"Leases evicted per second.", "ops", 8,
			q("A", "sum ("+rate("leasegate_lease_evictions_total", "")+")", "evictions"))).
		WithPanel(series(18, "Revocation bound",
			"Longest a token revoked at its issuer may still be allowed, per replica: changes with a reload that changes tier windows.", "s", 8,
			q("A", `max by (instance) (leasegate_revocation_bound_seconds{`+sel+`})`, "{{instance}}"))).
		WithPanel(series(19, "Configuration reloads",
			"SIGHUP reloads by outcome: refused means the new file was invalid and the old configuration is still in force.", "short", 8,
			q("A", `sum by (outcome) (increase(leasegate_config_reloads_total{`+sel+`}[$__rate_interval]))`, "{{outcome}}")).
			DrawStyle(common.GraphDrawStyleBars))
}

func fleet(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.WithRow(dashboard.NewRowBuilder("Fleet (shared lease store)").Id(104)).
		WithPanel(states(20, "Store up",
			"Per replica: 1 while the shared store answers and the replica follows its revocation log (SPEC §8).",
			stateMap("down", "red", "up", "green"),
			q("A", `min by (instance) (leasegate_fleet_store_up{`+sel+`})`, "{{instance}}"))).
		WithPanel(series(21, "Shared-store lookups",
			"Lookups in the shared store after a local miss, by outcome (hit, miss, negative, forged, revoked, error).", "reqps", 12,
			q("A", "sum by (outcome) ("+rate("leasegate_fleet_lease_lookups_total", "")+")", "{{outcome}}"))).
		WithPanel(series(22, "Shared hit ratio",
			"Share of local misses answered by a lease another replica stored.", "percentunit", 8,
			q("A", "sum ("+rate("leasegate_fleet_lease_lookups_total", `outcome=~"hit|negative"`)+")\n/\nsum ("+rate("leasegate_fleet_lease_lookups_total", "")+")", "shared hits")).
			Min(0).Max(1)).
		WithPanel(series(23, "Revocations from other replicas",
			"Revocations made on another replica and applied here, per second, by source.", "ops", 8,
			q("A", "sum by (source) ("+rate("leasegate_fleet_revocations_total", "")+")", "{{source}}"))).
		WithPanel(series(24, "Revocation log lag",
			"Delay from a revocation on one replica to its application on another, p50 and p99 (SPEC §8 goal: well under 100 ms).", "s", 8,
			q("A", quantile("0.5", "leasegate_fleet_revocation_delay_seconds", ""), "p50"),
			q("B", quantile("0.99", "leasegate_fleet_revocation_delay_seconds", ""), "p99")))
}

// JSON renders the dashboard as the committed file is written.
func JSON() ([]byte, error) {
	d, err := Dashboard()
	if err != nil {
		return nil, fmt.Errorf("build dashboard: %w", err)
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render dashboard: %w", err)
	}
	return append(b, '\n'), nil
}
