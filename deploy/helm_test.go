package deploy_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

const (
	chartDir    = "helm/leasegate"
	releaseName = "leasegate"
	releaseNS   = "leasegate"
	// kubeVersion is the chart's floor (Chart.yaml kubeVersion). A helm
	// built from source, as the go.mod tool is, assumes Kubernetes 1.20,
	// which the chart refuses, so every call names the version.
	kubeVersion = "1.30.0"
)

// helm runs the helm binary with a throwaway home; the error carries its
// stderr.
func helm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBin, args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &helmError{args: args, err: err, stderr: stderr.String() + stdout.String()}
	}
	return stdout.Bytes(), nil
}

type helmError struct {
	args   []string
	err    error
	stderr string
}

func (e *helmError) Error() string {
	return "helm " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + e.stderr
}

// valuesFile writes values (YAML; "{{dir}}" stands for dir) into dir.
func valuesFile(t *testing.T, dir, values string) string {
	t.Helper()
	p := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(values, "{{dir}}", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// templateArgs is `helm template` of the chart as release leasegate in
// namespace leasegate with the values file vf.
func templateArgs(vf string) []string {
	return []string{"template", releaseName, chartDir, "--namespace", releaseNS, "--kube-version", kubeVersion, "--values", vf}
}

// renderChart runs helm lint and helm template with vf and decodes every
// object strictly.
func renderChart(t *testing.T, vf string) []any {
	t.Helper()
	if out, err := helm(t, "lint", chartDir, "--strict", "--namespace", releaseNS, "--kube-version", kubeVersion, "--values", vf); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	out, err := helm(t, templateArgs(vf)...)
	if err != nil {
		t.Fatal(err)
	}
	var objs []any
	for _, doc := range documents(t, out) {
		obj, err := decodeTyped(doc, chartKinds)
		if err != nil {
			t.Fatalf("rendered object does not decode strictly: %v\n%s", err, doc)
		}
		objs = append(objs, obj)
	}
	return objs
}

// renderNotes renders the chart's NOTES.txt with helm's own template
// engine: `helm template` leaves the notes out, and `helm install
// --dry-run` needs a cluster.
func renderNotes(t *testing.T, vf string) string {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ReadValuesFile(vf)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: releaseName, Namespace: releaseNS, IsInstall: true}, caps)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		t.Fatal(err)
	}
	notes, ok := files["leasegate/templates/NOTES.txt"]
	if !ok {
		t.Fatal("no NOTES.txt rendered")
	}
	return notes
}

// sidecarMarkers enclose the pod fragment in the sidecar notes.
const (
	sidecarBegin = "# --- leasegate sidecar: begin ---"
	sidecarEnd   = "# --- leasegate sidecar: end ---"
)

// sidecarPod decodes the containers and volumes the sidecar notes tell the
// operator to add, strictly, as a PodSpec fragment.
func sidecarPod(t *testing.T, notes string) corev1.PodSpec {
	t.Helper()
	body, ok := between(notes, sidecarBegin, sidecarEnd)
	if !ok {
		t.Fatalf("sidecar notes lack the %q ... %q block:\n%s", sidecarBegin, sidecarEnd, notes)
	}
	var spec corev1.PodSpec
	if err := strictUnmarshal([]byte(body), &spec); err != nil {
		t.Fatalf("sidecar snippet does not decode strictly as a PodSpec fragment: %v\n%s", err, body)
	}
	return spec
}

// configData is the leasegate configuration in the chart's ConfigMap.
func configData(t *testing.T, objs []any) []byte {
	t.Helper()
	cm := only[*corev1.ConfigMap](t, objs)
	data, ok := cm.Data["leasegate.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no leasegate.yaml: keys %v", cm.Name, keys(cm.Data))
	}
	return []byte(data)
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// podOf is the Deployment's pod spec.
func podOf(t *testing.T, objs []any) corev1.PodSpec {
	t.Helper()
	return only[*appsv1.Deployment](t, objs).Spec.Template.Spec
}
