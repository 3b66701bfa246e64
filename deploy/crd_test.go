package deploy_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// crdSchema validates custom resources as the API server does for one CRD
// version: fields the schema does not know (pruning, reported as
// fieldValidation=Strict would), defaults, the OpenAPI schema, and the
// x-kubernetes-validations CEL rules.
type crdSchema struct {
	apiVersion string // group/version
	kind       string
	structural *schema.Structural
	openAPI    validation.SchemaValidator
	cel        *cel.Validator // nil when the schema has no CEL rules
}

var (
	crdMu    sync.Mutex
	crdCache = map[string]*crdSchema{}
)

// loadCRD finds the CRD for group/Kind in a multi-document stream and
// builds the validator of its version (once per test binary).
func loadCRD(t *testing.T, stream []byte, group, version, kind string) *crdSchema {
	t.Helper()
	crdMu.Lock()
	defer crdMu.Unlock()
	key := group + "/" + version + "/" + kind
	if c, ok := crdCache[key]; ok {
		return c
	}
	c := findCRD(t, stream, group, version, kind)
	crdCache[key] = c
	return c
}

func findCRD(t *testing.T, stream []byte, group, version, kind string) *crdSchema {
	t.Helper()
	for _, doc := range documents(t, stream) {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(doc, &crd); err != nil || crd.Kind != "CustomResourceDefinition" {
			continue
		}
		if crd.Spec.Group != group || crd.Spec.Names.Kind != kind {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if v.Name != version || v.Schema == nil {
				continue
			}
			var internal apiextensions.CustomResourceValidation
			if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(v.Schema, &internal, nil); err != nil {
				t.Fatal(err)
			}
			s, err := schema.NewStructural(internal.OpenAPIV3Schema)
			if err != nil {
				t.Fatalf("CRD %s: not a structural schema: %v", crd.Name, err)
			}
			openAPI, _, err := validation.NewSchemaValidator(internal.OpenAPIV3Schema)
			if err != nil {
				t.Fatal(err)
			}
			return &crdSchema{
				apiVersion: group + "/" + version,
				kind:       kind,
				structural: s,
				openAPI:    openAPI,
				cel:        cel.NewValidator(s, true, celconfig.PerCallLimit),
			}
		}
		t.Fatalf("CRD %s has no version %s with a schema", crd.Name, version)
	}
	t.Fatalf("no CRD for %s %s in the stream", group, kind)
	return nil
}

// validate returns every problem the API server would refuse doc for.
func (c *crdSchema) validate(doc []byte) []string {
	// Integers stay int64, as the API server decodes them.
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return []string{err.Error()}
	}
	var obj map[string]any
	if err := k8sjson.UnmarshalCaseSensitivePreserveInts(js, &obj); err != nil {
		return []string{err.Error()}
	}
	var problems []string
	if obj["apiVersion"] != c.apiVersion || obj["kind"] != c.kind {
		problems = append(problems, fmt.Sprintf("object is %v %v, the schema is for %s %s", obj["apiVersion"], obj["kind"], c.apiVersion, c.kind))
	}
	unknown := pruning.PruneWithOptions(obj, c.structural, true, schema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, p := range unknown {
		problems = append(problems, "unknown field "+p)
	}
	defaulting.Default(obj, c.structural)
	for _, e := range validation.ValidateCustomResource(nil, obj, c.openAPI) {
		problems = append(problems, e.Error())
	}
	if c.cel != nil {
		errs, _ := c.cel.Validate(context.Background(), nil, c.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		for _, e := range errs {
			problems = append(problems, e.Error())
		}
	}
	return problems
}

// moduleDir is where the go command keeps a required module's files.
func moduleDir(t *testing.T, module string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", module, exitStderr(err))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" || !filepath.IsAbs(dir) {
		t.Fatalf("go list -m %s: no module directory (%q)", module, dir)
	}
	return dir
}
