package deploy_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// nonRootUID is the image's numeric user (distroless nonroot).
const nonRootUID = 65532

// fakeSecrets stands in for the cluster's Secrets: name → key → value.
type fakeSecrets map[string]map[string][]byte

// leasegateContainer is the pod's leasegate container.
func leasegateContainer(t *testing.T, pod corev1.PodSpec) corev1.Container {
	t.Helper()
	for _, c := range pod.Containers {
		if c.Name == "leasegate" {
			return c
		}
	}
	t.Fatalf("no leasegate container in %d containers", len(pod.Containers))
	return corev1.Container{}
}

// checkContainerSecurity: what a restricted Pod Security Standard and
// runAsNonRoot with a numeric user need, set on the container itself so
// the sidecar snippet carries it into any pod.
func checkContainerSecurity(t *testing.T, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("container has no securityContext")
	}
	switch {
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Error("runAsNonRoot is not true")
	case sc.RunAsUser == nil || *sc.RunAsUser != nonRootUID:
		t.Errorf("runAsUser = %v, want %d", sc.RunAsUser, nonRootUID)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("capabilities = %+v, want drop [ALL] and no add", sc.Capabilities)
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile = %+v, want RuntimeDefault", sc.SeccompProfile)
	}
}

func checkPodSecurity(t *testing.T, pod corev1.PodSpec) {
	t.Helper()
	sc := pod.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != nonRootUID {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot and runAsUser %d", sc, nonRootUID)
	}
	if sc != nil && (sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
		t.Errorf("pod seccompProfile = %+v, want RuntimeDefault", sc.SeccompProfile)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token; leasegate never calls the API")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("pod shares a host namespace")
	}
}

// containerPort resolves a probe or Service target port against c.
func containerPort(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Fatalf("port %q is not a port of container %s", p.StrVal, c.Name)
	return 0
}

// checkProbes: liveness on /healthz and readiness on /readyz, both on the
// metrics listener the config opens.
func checkProbes(t *testing.T, c corev1.Container, cfg map[string]any) {
	t.Helper()
	metrics := listenPort(t, cfg, "metrics")
	if metrics != 9190 {
		t.Errorf("listen.metrics port = %d, want SPEC's 9190", metrics)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe is not an httpGet: %+v", p.name, p.probe)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path {
			t.Errorf("%s probe path %q, want %q", p.name, g.Path, p.path)
		}
		if port := containerPort(t, c, g.Port); int(port) != metrics {
			t.Errorf("%s probe on port %d, the metrics listener is on %d", p.name, port, metrics)
		}
		if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
			t.Errorf("%s probe scheme %s", p.name, g.Scheme)
		}
	}
}

// parseConfig reads the rendered leasegate configuration as plain YAML.
func parseConfig(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("rendered config is not YAML: %v\n%s", err, data)
	}
	return cfg
}

// lookup walks dotted keys (a number indexes a list) through the config.
func lookup(cfg map[string]any, dotted string) (any, bool) {
	var cur any = cfg
	for _, k := range strings.Split(dotted, ".") {
		switch v := cur.(type) {
		case map[string]any:
			var ok bool
			if cur, ok = v[k]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func str(t *testing.T, cfg map[string]any, dotted string) string {
	t.Helper()
	v, ok := lookup(cfg, dotted)
	if !ok {
		t.Fatalf("config has no %s", dotted)
	}
	s, ok := v.(string)
	if !ok {
		t.Fatalf("config %s = %v (%T), want a string", dotted, v, v)
	}
	return s
}

// listenPort is the port of listen.<name>.
func listenPort(t *testing.T, cfg map[string]any, name string) int {
	t.Helper()
	addr := str(t, cfg, "listen."+name)
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen.%s %q: %v", name, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("listen.%s %q: %v", name, addr, err)
	}
	return n
}

// checkConfigMount: the container reads -config from the ConfigMap volume.
func checkConfigMount(t *testing.T, pod corev1.PodSpec, c corev1.Container, configMap string) {
	t.Helper()
	i := slices.Index(c.Args, "-config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("args %q have no -config FILE", c.Args)
	}
	file := c.Args[i+1]
	for _, m := range c.VolumeMounts {
		v := volume(t, pod, m.Name)
		if v.ConfigMap == nil || v.ConfigMap.Name != configMap {
			continue
		}
		if path.Join(m.MountPath, "leasegate.yaml") != file {
			t.Errorf("-config %s, but ConfigMap %s is mounted at %s", file, configMap, m.MountPath)
		}
		if !m.ReadOnly {
			t.Errorf("config mount %s is writable", m.MountPath)
		}
		return
	}
	t.Errorf("ConfigMap %s is not mounted in the container", configMap)
}

func volume(t *testing.T, pod corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("volumeMount %s has no volume", name)
	return corev1.Volume{}
}

// checkMemory: the container's limit leaves ~100 MiB above the lease
// cache's bound (lease.max_memory_mb), as the config's comment asks.
func checkMemory(t *testing.T, c corev1.Container, cfg map[string]any) {
	t.Helper()
	v, ok := lookup(cfg, "lease.max_memory_mb")
	if !ok {
		return
	}
	mb, ok := v.(float64)
	if !ok {
		t.Fatalf("lease.max_memory_mb = %v (%T)", v, v)
	}
	limit, ok := c.Resources.Limits[corev1.ResourceMemory]
	want := resource.MustParse(fmt.Sprintf("%dMi", int(mb)+100))
	if !ok || limit.Cmp(want) < 0 {
		t.Errorf("memory limit %v, want at least %v (lease.max_memory_mb %v + 100Mi)", limit.String(), want.String(), mb)
	}
}

// checkChecksum: the pod template carries the config's digest, so a
// config change rolls the pods.
func checkChecksum(t *testing.T, annotations map[string]string, config []byte) {
	t.Helper()
	sum := sha256.Sum256([]byte(strings.TrimSuffix(string(config), "\n")))
	if got, want := annotations["checksum/config"], hex.EncodeToString(sum[:]); got != want {
		t.Errorf("checksum/config = %q, want the config's sha256 %q", got, want)
	}
}

// runCheck runs `leasegate -check` on config with the environment and
// secret files the container would have: env from its env entries (Secret
// keys from secrets), and every mounted Secret volume materialised under
// its mountPath (the test's values point those into a temp dir). It
// returns the combined output and whether -check accepted the config.
func runCheck(t *testing.T, config []byte, pod corev1.PodSpec, c corev1.Container, secrets fakeSecrets, dropEnv ...string) (string, bool) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "leasegate.yaml")
	if err := os.WriteFile(file, config, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	for _, e := range c.Env {
		if slices.Contains(dropEnv, e.Name) {
			continue
		}
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, ok := secrets[ref.Name][ref.Key]
			if !ok {
				t.Fatalf("env %s: Secret %s has no key %s (the pod would not start)", e.Name, ref.Name, ref.Key)
			}
			env = append(env, e.Name+"="+string(v))
		default:
			t.Fatalf("env %s: unsupported source %+v", e.Name, e.ValueFrom)
		}
	}
	for _, m := range c.VolumeMounts {
		v := volume(t, pod, m.Name)
		if v.Secret != nil {
			materialise(t, m.MountPath, v.Secret, secrets)
		}
	}
	cmd := exec.Command(leasegateBin, "-config", file, "-check")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
		return string(out), false
	}
	return string(out), true
}

// materialise writes a Secret volume's files as the kubelet would.
func materialise(t *testing.T, dir string, sv *corev1.SecretVolumeSource, secrets fakeSecrets) {
	t.Helper()
	if !strings.HasPrefix(dir, os.TempDir()) {
		t.Fatalf("Secret %s mounts at %s; the test's values must point it into a temp dir", sv.SecretName, dir)
	}
	data, ok := secrets[sv.SecretName]
	if !ok {
		t.Fatalf("Secret %s is not among the test's secrets", sv.SecretName)
	}
	files := map[string][]byte{}
	if len(sv.Items) == 0 {
		for k, v := range data {
			files[k] = v
		}
	}
	for _, it := range sv.Items {
		v, ok := data[it.Key]
		if !ok {
			t.Fatalf("Secret %s has no key %s", sv.SecretName, it.Key)
		}
		files[it.Path] = v
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), v, 0o400); err != nil {
			t.Fatal(err)
		}
	}
}
