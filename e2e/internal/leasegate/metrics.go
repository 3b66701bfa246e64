package leasegate

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Metrics is one scrape of the Prometheus text format: every sample by
// name with its labels.
type Metrics map[string][]Sample

// Sample is one line of the exposition.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Sum adds the samples of name whose labels include every pair in match
// (a subset match; nil matches all). A missing series counts as 0, which is
// what a counter that was never incremented means.
func (m Metrics) Sum(name string, match map[string]string) float64 {
	var sum float64
	for _, s := range m[name] {
		if s.matches(match) {
			sum += s.Value
		}
	}
	return sum
}

// Delta is m.Sum(name, match) - before.Sum(name, match).
func (m Metrics) Delta(before Metrics, name string, match map[string]string) float64 {
	return m.Sum(name, match) - before.Sum(name, match)
}

func (s Sample) matches(match map[string]string) bool {
	for k, v := range match {
		if s.Labels[k] != v {
			return false
		}
	}
	return true
}

// ParseMetrics reads the Prometheus text exposition format (comments,
// `name value`, `name{a="b",...} value [timestamp]`, label values with \\,
// \" and \n escapes).
func ParseMetrics(b []byte) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d %q: %w", n, line, err)
		}
		m[name] = append(m[name], s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return m, nil
}

func parseSample(line string) (string, Sample, error) {
	s := Sample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return "", s, fmt.Errorf("no value")
	}
	name, rest := line[:i], line[i:]
	if rest[0] == '{' {
		var err error
		if rest, err = parseLabels(rest[1:], s.Labels); err != nil {
			return "", s, err
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 || len(fields) > 2 {
		return "", s, fmt.Errorf("want a value and an optional timestamp")
	}
	v, err := parseValue(fields[0])
	if err != nil {
		return "", s, err
	}
	s.Value = v
	return name, s, nil
}

// parseLabels reads `a="b",c="d"}` and returns what follows the brace.
func parseLabels(s string, into map[string]string) (string, error) {
	for {
		s = strings.TrimLeft(s, " \t,")
		if strings.HasPrefix(s, "}") {
			return s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return "", fmt.Errorf("bad label near %q", s)
		}
		key := strings.TrimSpace(s[:eq])
		var val strings.Builder
		j := eq + 2
		for ; j < len(s) && s[j] != '"'; j++ {
			c := s[j]
			if c == '\\' && j+1 < len(s) {
				j++
				switch s[j] {
				case 'n':
					c = '\n'
				default:
					c = s[j]
				}
			}
			val.WriteByte(c)
		}
		if j >= len(s) {
			return "", fmt.Errorf("unterminated label value for %s", key)
		}
		into[key] = val.String()
		s = s[j+1:]
	}
}

func parseValue(f string) (float64, error) {
	switch f {
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	return strconv.ParseFloat(f, 64)
}
