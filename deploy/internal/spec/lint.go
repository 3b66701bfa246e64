package spec

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// grafanaInterval matches Grafana's interval variables ($__rate_interval,
// ${__interval}, ...), which stand where PromQL wants a duration.
var grafanaInterval = regexp.MustCompile(`\$\{?__\w+\}?`)

// alternation is a regex of plain label values, a|b|c, whose values can
// be checked one by one.
var alternation = regexp.MustCompile(`^[a-z_]+(\|[a-z_]+)*$`)

// rangeFuncs are the functions a counter (or a histogram's buckets, sum
// and count) may be read through.
var rangeFuncs = []string{"rate", "irate", "increase"}

// Lint parses expr (Grafana's interval variables read as 5m) and checks it
// against All: every selector names a known series, every matcher a label
// that series has and, for a closed set, a value it takes; every grouping
// or matching label comes from a series below it; counters and histogram
// buckets are read through rate, irate or increase.
func Lint(expr string) error {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaInterval.ReplaceAllString(expr, "5m"))
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	var errs []error
	parser.Inspect(e, func(n parser.Node, path []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			errs = append(errs, lintSelector(n, path)...)
		case *parser.AggregateExpr:
			if !n.Without {
				errs = append(errs, lintGrouping("by", n.Grouping, n.Expr)...)
			}
		case *parser.BinaryExpr:
			if vm := n.VectorMatching; vm != nil && vm.On {
				errs = append(errs, lintGrouping("on", vm.MatchingLabels, n.LHS, n.RHS)...)
			}
		}
		return nil
	})
	return errors.Join(errs...)
}

// family resolves a selector's metric name: the series, and whether the
// name is one of a histogram's _bucket, _sum or _count.
func family(name string) (Series, string, bool) {
	if s, ok := All[name]; ok {
		return s, "", true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if s, ok := All[strings.TrimSuffix(name, suffix)]; ok && s.Kind == Histogram && strings.HasSuffix(name, suffix) {
			return s, suffix, true
		}
	}
	return Series{}, "", false
}

// labelsOf is what a selector of s (with suffix) may be matched or grouped on.
func labelsOf(s Series, suffix string) []string {
	ls := append(slices.Clone(s.Labels), scrapeLabels...)
	if suffix == "_bucket" {
		ls = append(ls, "le")
	}
	return ls
}

func lintSelector(v *parser.VectorSelector, path []parser.Node) []error {
	if v.Name == "" {
		return []error{fmt.Errorf("%s: select series by name", v)}
	}
	s, suffix, ok := family(v.Name)
	if !ok {
		return []error{fmt.Errorf("%s: %s is not a series SPEC §6 names", v, v.Name)}
	}
	var errs []error
	if (s.Kind == Counter || s.Kind == Histogram) && !inRangeFunc(path) {
		errs = append(errs, fmt.Errorf("%s: a counter is read through %s, not as a value", v, strings.Join(rangeFuncs, ", ")))
	}
	known := labelsOf(s, suffix)
	for _, m := range v.LabelMatchers {
		if m.Name == model.MetricNameLabel {
			continue
		}
		if !slices.Contains(known, m.Name) {
			errs = append(errs, fmt.Errorf("%s: %s has no label %q (it has %v)", v, v.Name, m.Name, known))
			continue
		}
		errs = append(errs, lintValue(v, s, m)...)
	}
	return errs
}

func lintValue(v *parser.VectorSelector, s Series, m *labels.Matcher) []error {
	vals, closed := s.Values[m.Name]
	if !closed || strings.Contains(m.Value, "$") {
		return nil
	}
	var want []string
	switch m.Type {
	case labels.MatchEqual, labels.MatchNotEqual:
		want = []string{m.Value}
	default:
		if !alternation.MatchString(m.Value) {
			return nil
		}
		want = strings.Split(m.Value, "|")
	}
	var errs []error
	for _, w := range want {
		if !slices.Contains(vals, w) {
			errs = append(errs, fmt.Errorf("%s: %s{%s} is never %q (values: %v)", v, v.Name, m.Name, w, vals))
		}
	}
	return errs
}

// inRangeFunc: the selector is a range (its parent a MatrixSelector)
// passed to rate, irate or increase.
func inRangeFunc(path []parser.Node) bool {
	if len(path) < 2 {
		return false
	}
	if _, ok := path[len(path)-1].(*parser.MatrixSelector); !ok {
		return false
	}
	c, ok := path[len(path)-2].(*parser.Call)
	return ok && slices.Contains(rangeFuncs, c.Func.Name)
}

// lintGrouping wants each of ls on some series selected under exprs.
func lintGrouping(kw string, ls []string, exprs ...parser.Expr) []error {
	var have []string
	for _, e := range exprs {
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			if v, ok := n.(*parser.VectorSelector); ok {
				if s, suffix, ok := family(v.Name); ok {
					have = append(have, labelsOf(s, suffix)...)
				}
			}
			return nil
		})
	}
	var errs []error
	for _, l := range ls {
		if !slices.Contains(have, l) {
			errs = append(errs, fmt.Errorf("%s (%s): no series below has label %q", kw, strings.Join(ls, ", "), l))
		}
	}
	return errs
}
