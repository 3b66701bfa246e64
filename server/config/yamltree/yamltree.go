// Package yamltree decodes YAML strictly through its yaml.Node tree:
// ${VAR} expansion on the tree (a value can never change the structure),
// a walk that refuses what yaml.v3's KnownFields decoder would, each
// problem at its node's line and field path, and the line of every key.
package yamltree

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Problem is one decoding problem, at its node's line and field path.
type Problem struct {
	Line  int
	Field string
	Msg   string
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.Msg
	}
	return p.Field + ": " + p.Msg
}

// Decode reads data into v, a pointer to a struct: ${VAR} expansion on
// the tree (lookupEnv; each expanded value's path goes in fromEnv), a
// strict walk against v's type recording each key's line in lines, then
// yaml's own decoding of the same tree for the values. Problems are
// appended to ps. It reports false when nothing more can be checked.
func Decode(data []byte, v any, lookupEnv func(string) (string, bool), lines map[string]int, fromEnv map[string]bool, ps *[]Problem) bool {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		// There is no tree to take a position from: the parser's message,
		// which says where, is all there is.
		*ps = append(*ps, Problem{Msg: "YAML syntax: " + strings.TrimPrefix(err.Error(), "yaml: ")})
		return false
	}
	if len(root.Content) == 0 {
		return true // an empty file: every key takes its default
	}
	doc := root.Content[0]
	env := envExpander{lookup: lookupEnv, fromEnv: fromEnv, nodes: map[*yaml.Node]bool{}, ps: ps}
	env.expand(doc, "")
	sd := newStrictDecoder(lines, env.nodes, ps)
	sd.walk(doc, reflect.TypeOf(v).Elem(), "")
	err := doc.Decode(v)
	var te *yaml.TypeError
	switch {
	case err == nil:
		return true
	case sd.refused == 0:
		// The walk and yaml disagree (FuzzParse looks for this): say
		// what yaml said rather than accept the file.
		*ps = append(*ps, Problem{Line: doc.Line, Msg: "YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")})
	}
	return errors.As(err, &te) // a TypeError leaves the rest decoded
}

// strictDecoder walks a node tree against a Go type as yaml.v3's strict
// decoder (KnownFields) would, and reports what it would refuse, each at
// the offending node's line and field path: a key the type does not have,
// a key given twice, a node of the wrong kind, a scalar its field cannot
// hold. It records the line of every key and list item it meets in lines.
// Values are left to yaml: the walk decodes nothing but leaves on trial.
type strictDecoder struct {
	lines   map[string]int
	env     map[*yaml.Node]bool // scalars whose value came from ${VAR}
	ps      *[]Problem
	refused int            // what the walk refused, said or not
	seen    map[visit]bool // (node, type) pairs walked, so aliases cost once
	budget  int            // nodes left to walk: no alias bomb makes it slow
}

type visit struct {
	n *yaml.Node
	t reflect.Type
}

// walkBudget is far beyond any real configuration; yaml's own decoder
// refuses excessive aliasing on its own terms.
const walkBudget = 1 << 20

func newStrictDecoder(lines map[string]int, env map[*yaml.Node]bool, ps *[]Problem) *strictDecoder {
	return &strictDecoder{lines: lines, env: env, ps: ps, seen: map[visit]bool{}, budget: walkBudget}
}

var durationType = reflect.TypeFor[time.Duration]()

func (d *strictDecoder) add(n *yaml.Node, path, msg string) {
	d.refused++
	if path == "" {
		msg = "the configuration " + msg
	}
	*d.ps = append(*d.ps, Problem{Line: n.Line, Field: path, Msg: msg})
}

// walk checks n against t at path.
func (d *strictDecoder) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if d.seen[visit{n, t}] || !d.spend(n) {
		return
	}
	d.seen[visit{n, t}] = true
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.DocumentNode && len(n.Content) == 1:
		d.walk(n.Content[0], t, path)
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		// null is every type's zero value
	case t.Kind() == reflect.Struct || t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.add(n, path, fmt.Sprintf("must be %s, not %s", describeType(t), d.describe(n)))
			return
		}
		d.mapping(n, t, path, nil)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.add(n, path, fmt.Sprintf("must be %s, not %s", describeType(t), d.describe(n)))
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = item.Line
			d.walk(item, t.Elem(), p)
		}
	default:
		d.leaf(n, t, path)
	}
}

// spend takes one node off the budget; the first node over it is the
// one problem reported for it.
func (d *strictDecoder) spend(n *yaml.Node) bool {
	d.budget--
	if d.budget == -1 {
		d.add(n, "", "has too many nodes or aliases to read")
	}
	return d.budget >= 0
}

// mapping checks the keys and values of mapping n against the struct or
// map type t. merged is nil for a mapping in its own right; for a merge
// source (<<) it is the keys already set, which yaml skips.
func (d *strictDecoder) mapping(n *yaml.Node, t reflect.Type, path string, merged map[string]bool) {
	d.duplicates(n, path)
	var merge *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if isMerge(k) {
			merge = v // yaml merges the last; a second << is a duplicate
			continue
		}
		name, ok := d.key(k, path)
		if !ok || merged[name] {
			continue
		}
		if merged != nil {
			merged[name] = true
		}
		p := joinPath(path, name)
		ft, known := fieldType(t, name)
		if !known {
			d.add(k, p, "unknown key; "+knownKeys(t, path))
			continue
		}
		if _, ok := d.lines[p]; !ok {
			d.lines[p] = k.Line
		}
		d.walk(v, ft, p)
	}
	if merge != nil {
		d.merge(n, merge, t, path, merged)
	}
}

// merge checks the sources of a << key in parent, as yaml applies them:
// a key set in parent or an earlier source is skipped.
func (d *strictDecoder) merge(parent, src *yaml.Node, t reflect.Type, path string, merged map[string]bool) {
	if merged == nil {
		merged = map[string]bool{}
		for i := 0; i < len(parent.Content); i += 2 {
			merged[resolveAlias(parent.Content[i]).Value] = true
		}
	}
	sources := []*yaml.Node{src}
	if src.Kind == yaml.SequenceNode {
		sources = src.Content
	}
	for _, s := range sources {
		s = resolveAlias(s)
		if s.Kind != yaml.MappingNode {
			d.add(s, path, "<< must merge a mapping or a list of mappings")
			return
		}
		if d.spend(s) {
			d.mapping(s, t, path, merged)
		}
	}
}

// duplicates reports each key of n given a second time, as yaml compares
// them: by kind and text.
func (d *strictDecoder) duplicates(n *yaml.Node, path string) {
	type id struct {
		kind  yaml.Kind
		value string
	}
	first := map[id]int{}
	for i := 0; i < len(n.Content); i += 2 {
		k := n.Content[i]
		if line, dup := first[id{k.Kind, k.Value}]; dup {
			d.add(k, joinPath(path, k.Value), fmt.Sprintf("is given twice (first on line %d)", line))
			continue
		}
		first[id{k.Kind, k.Value}] = k.Line
	}
}

// key reads mapping key k as yaml does; a null key is skipped, as yaml
// skips it.
func (d *strictDecoder) key(k *yaml.Node, path string) (string, bool) {
	if r := resolveAlias(k); r.Kind == yaml.ScalarNode && r.ShortTag() == "!!null" {
		return "", false
	}
	var name string
	err := k.Decode(&name)
	var te *yaml.TypeError
	switch {
	case err == nil:
		return name, true
	case errors.As(err, &te):
		d.add(k, path, fmt.Sprintf("has a key that is %s, not a name", d.describe(resolveAlias(k))))
	default:
		d.add(k, path, "has a key that cannot be read: "+strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return "", false
}

// leaf checks that n decodes into a t, a scalar type.
func (d *strictDecoder) leaf(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode {
		d.add(n, path, fmt.Sprintf("must be %s, not %s", describeType(t), d.describe(n)))
		return
	}
	err := n.Decode(reflect.New(t).Interface())
	var te *yaml.TypeError
	switch {
	case err == nil:
	case slices.ContainsFunc(*d.ps, func(p Problem) bool { return p.Field == path }): // an unset ${VAR}: said already
		d.refused++
	case errors.As(err, &te):
		d.add(n, path, fmt.Sprintf("%s is not %s", d.describe(n), describeType(t)))
	default: // a tag yaml cannot apply, as !!binary to bad base64
		d.add(n, path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
}

// describe names what n is, for a problem; a value from the environment
// is not repeated, it may be a secret.
func (d *strictDecoder) describe(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case d.env[n]:
		return "the value of its environment variable"
	}
	v := n.Value
	if utf8.RuneCountInString(v) > 40 {
		v = string([]rune(v)[:37]) + "..."
	}
	return strconv.Quote(v)
}

// describeType says what a field of type t holds, in YAML's words.
func describeType(t reflect.Type) string {
	if t == durationType {
		return "a duration (90s, 5m, 1h)"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice:
		return "a list"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("a whole number from 0 to %d", uint64(math.MaxUint64)>>(64-t.Bits()))
	}
	return t.String()
}

// fieldType is the type of the value at key name in a mapping decoded
// into t: a map's element type, or the struct field whose yaml name
// (tag, else lower-case field name, as yaml.v3 reads it) is name.
func fieldType(t reflect.Type, name string) (reflect.Type, bool) {
	if t.Kind() == reflect.Map {
		return t.Elem(), true
	}
	for f := range t.Fields() {
		if n := yamlName(f); n != "" && n == name {
			return f.Type, true
		}
	}
	return nil, false
}

// knownKeys lists the keys a struct type t takes, for an unknown-key
// problem.
func knownKeys(t reflect.Type, path string) string {
	var names []string
	for f := range t.Fields() {
		if n := yamlName(f); n != "" {
			names = append(names, n)
		}
	}
	where := "the top level"
	if path != "" {
		where = path
	}
	return where + " takes " + strings.Join(names, ", ")
}

// yamlName is the key of struct field f, "" for none.
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return strings.ToLower(f.Name)
	}
	return name
}

// isMerge is yaml.v3's test for a merge key (<<).
func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge")
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// envExpander replaces ${VAR} in scalar values. It works on the parsed
// tree, so a variable's value can never change the YAML structure; an
// expanded value is always a string (!!str), whatever it looks like.
type envExpander struct {
	lookup  func(string) (string, bool)
	fromEnv map[string]bool     // paths of expanded values
	nodes   map[*yaml.Node]bool // expanded nodes
	ps      *[]Problem
}

func (e *envExpander) expand(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			e.expand(n.Content[i+1], joinPath(path, n.Content[i].Value))
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			e.expand(v, fmt.Sprintf("%s[%d]", path, i))
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			name := ref[2 : len(ref)-1]
			v, ok := e.lookup(name)
			if !ok {
				*e.ps = append(*e.ps, Problem{Line: n.Line, Field: path, Msg: fmt.Sprintf("environment variable %s is not set", name)})
			}
			return v
		})
		n.Tag = "!!str"
		e.fromEnv[path] = true
		e.nodes[n] = true
	}
}
