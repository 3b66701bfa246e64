package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// strictUnmarshal decodes YAML into v as the API server does with
// fieldValidation=Strict: keys are case-sensitive, and an unknown or
// duplicated field is an error.
func strictUnmarshal(doc []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := k8sjson.UnmarshalStrict(js, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// documents splits a multi-document YAML stream, dropping documents that
// hold only comments or nothing.
func documents(t *testing.T, stream []byte) [][]byte {
	t.Helper()
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var out [][]byte
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("split YAML: %v", err)
		}
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			t.Fatalf("YAML document: %v\n%s", err, doc)
		}
		if len(probe) > 0 {
			out = append(out, doc)
		}
	}
}

// chartKinds is every kind the chart may render, with its typed object.
// Anything else in the output fails the test.
var chartKinds = map[string]func() any{
	"v1/ConfigMap":                            func() any { return new(corev1.ConfigMap) },
	"v1/Service":                              func() any { return new(corev1.Service) },
	"v1/ServiceAccount":                       func() any { return new(corev1.ServiceAccount) },
	"apps/v1/Deployment":                      func() any { return new(appsv1.Deployment) },
	"policy/v1/PodDisruptionBudget":           func() any { return new(policyv1.PodDisruptionBudget) },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return new(monitoringv1.ServiceMonitor) },
}

// decodeTyped decodes one document into the typed object its apiVersion
// and kind name, from kinds.
func decodeTyped(doc []byte, kinds map[string]func() any) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("unexpected kind %s %s", tm.APIVersion, tm.Kind)
	}
	obj := newObj()
	if err := strictUnmarshal(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return obj, nil
}

// only returns the one object of type T, failing unless there is exactly one.
func only[T any](t *testing.T, objs []any) T {
	t.Helper()
	got := all[T](objs)
	if len(got) != 1 {
		var zero T
		t.Fatalf("want one %T, have %d", zero, len(got))
	}
	return got[0]
}

func all[T any](objs []any) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// between returns the lines of s strictly between the lines begin and end.
func between(s, begin, end string) (string, bool) {
	_, rest, ok := strings.Cut(s, begin+"\n")
	if !ok {
		return "", false
	}
	body, _, ok := strings.Cut(rest, end)
	return body, ok
}

// TestStrictDecodingRefuses: the decoder the chart tests rely on refuses
// what a strict API server would.
func TestStrictDecodingRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":   "apiVersion: apps/v1\nkind: Deployment\nspec: { replica: 2 }\n",
		"wrong case":      "apiVersion: v1\nkind: Service\nspec: { Ports: [{ port: 1 }] }\n",
		"duplicate field": "apiVersion: v1\nkind: ConfigMap\ndata: { a: x }\ndata: { b: y }\n",
		"wrong type":      "apiVersion: v1\nkind: Service\nspec: { ports: [{ port: http }] }\n",
		"unexpected kind": "apiVersion: v1\nkind: Secret\ndata: {}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if obj, err := decodeTyped([]byte(doc), chartKinds); err == nil {
				t.Errorf("decoded %+v", obj)
			}
		})
	}
}
