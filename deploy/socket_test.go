package deploy_test

import (
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The blocks of the socket sidecar notes that go into the Envoy container
// and Envoy's leasegate cluster.
const (
	envoyMountBegin   = "# --- Envoy container: add ---"
	envoyAddressBegin = "# --- Envoy leasegate cluster: endpoint address ---"
	envoyEnd          = "# --- Envoy: end ---"
)

// envoySidecarExample is the Envoy configuration the notes refer to.
const envoySidecarExample = "../examples/envoy/sidecar.yaml"

// checkSidecarSocket: with grpc.socket set, leasegate serves gRPC on that
// socket only, on a writable emptyDir mounted at the socket's directory
// (the root filesystem stays read-only), and the notes give Envoy the
// same volume at the same path and a pipe address shaped as in the Envoy
// sidecar example.
func checkSidecarSocket(socket, group string) func(*testing.T, *rendered) {
	return func(t *testing.T, c *rendered) {
		if got := str(t, c.cfg, "listen.grpc"); got != "unix://"+socket {
			t.Errorf("listen.grpc = %q, want unix://%s", got, socket)
		}
		if got := str(t, c.cfg, "listen.grpc_socket.mode"); got != "0660" {
			t.Errorf("listen.grpc_socket.mode = %q, want 0660 (Envoy connects through the group)", got)
		}
		if got := str(t, c.cfg, "listen.grpc_socket.group"); got != group {
			t.Errorf("listen.grpc_socket.group = %q, want %s", got, group)
		}
		lc := leasegateContainer(t, c.pod)
		for _, p := range lc.Ports {
			if p.Name == "grpc" || p.ContainerPort == 9001 {
				t.Errorf("container port %+v: the gRPC listener is the socket", p)
			}
		}
		m := socketMount(t, lc, path.Dir(socket))
		if m.ReadOnly {
			t.Errorf("socket volume %s mounted read-only: leasegate cannot create the socket", m.Name)
		}
		if v := volume(t, c.pod, m.Name); v.EmptyDir == nil {
			t.Errorf("socket volume %s is %+v, want an emptyDir the pod's containers share", m.Name, v.VolumeSource)
		}
		checkEnvoyMount(t, c.notes, m)
		checkEnvoyAddress(t, c.notes, socket)
		if want := "securityContext.fsGroup " + group; !strings.Contains(c.notes, want) {
			t.Errorf("notes do not ask for %q (Envoy needs the socket's group):\n%s", want, c.notes)
		}
	}
}

// socketMount is the container's mount at dir, which must be the only
// one holding the socket.
func socketMount(t *testing.T, c corev1.Container, dir string) corev1.VolumeMount {
	t.Helper()
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir })
	if i < 0 {
		t.Fatalf("nothing is mounted at the socket's directory %s: mounts %+v", dir, c.VolumeMounts)
	}
	for _, m := range c.VolumeMounts {
		if m.MountPath != dir && strings.HasPrefix(dir, m.MountPath+"/") {
			t.Errorf("the socket's directory %s is inside mount %s", dir, m.MountPath)
		}
	}
	return c.VolumeMounts[i]
}

// checkEnvoyMount: the notes' Envoy volumeMounts decode strictly and mount
// leasegate's socket volume where leasegate has it.
func checkEnvoyMount(t *testing.T, notes string, want corev1.VolumeMount) {
	t.Helper()
	body, ok := between(notes, envoyMountBegin, envoyAddressBegin)
	if !ok {
		t.Fatalf("notes lack the Envoy container block %q:\n%s", envoyMountBegin, notes)
	}
	var frag struct {
		VolumeMounts []corev1.VolumeMount `json:"volumeMounts"`
	}
	if err := strictUnmarshal([]byte(body), &frag); err != nil {
		t.Fatalf("Envoy container block does not decode strictly: %v\n%s", err, body)
	}
	if len(frag.VolumeMounts) != 1 {
		t.Fatalf("Envoy container block mounts %+v, want the socket volume", frag.VolumeMounts)
	}
	if got := frag.VolumeMounts[0]; got.Name != want.Name || got.MountPath != want.MountPath {
		t.Errorf("Envoy mounts %s at %s; leasegate has %s at %s", got.Name, got.MountPath, want.Name, want.MountPath)
	}
}

// checkEnvoyAddress: the notes' endpoint address is a pipe to the socket,
// with the same fields as the leasegate cluster's address in the Envoy
// sidecar example (which go-control-plane's protos check in the main
// module's tests).
func checkEnvoyAddress(t *testing.T, notes, socket string) {
	t.Helper()
	body, ok := between(notes, envoyAddressBegin, envoyEnd)
	if !ok {
		t.Fatalf("notes lack the Envoy address block %q:\n%s", envoyAddressBegin, notes)
	}
	var got struct {
		Address map[string]any `json:"address"`
	}
	if err := yaml.UnmarshalStrict([]byte(body), &got); err != nil {
		t.Fatalf("Envoy address block: %v\n%s", err, body)
	}
	want := exampleLeasegateAddress(t)
	// The example's socket is the chart's suggested one; compare the
	// shape with this case's path in it.
	if pipe, ok := want["pipe"].(map[string]any); ok {
		pipe["path"] = socket
	}
	if !reflect.DeepEqual(got.Address, want) {
		t.Errorf("notes give Envoy the address %v, want %v (the example's, with path %s)", got.Address, want, socket)
	}
}

// exampleLeasegateAddress is the endpoint address of the leasegate cluster
// in the Envoy sidecar example.
func exampleLeasegateAddress(t *testing.T) map[string]any {
	t.Helper()
	var cfg struct {
		StaticResources struct {
			Clusters []struct {
				Name           string `json:"name"`
				LoadAssignment struct {
					Endpoints []struct {
						LbEndpoints []struct {
							Endpoint struct {
								Address map[string]any `json:"address"`
							} `json:"endpoint"`
						} `json:"lb_endpoints"`
					} `json:"endpoints"`
				} `json:"load_assignment"`
			} `json:"clusters"`
		} `json:"static_resources"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.FromSlash(envoySidecarExample)), &cfg); err != nil {
		t.Fatalf("%s: %v", envoySidecarExample, err)
	}
	for _, c := range cfg.StaticResources.Clusters {
		if c.Name != "leasegate" {
			continue
		}
		if len(c.LoadAssignment.Endpoints) != 1 || len(c.LoadAssignment.Endpoints[0].LbEndpoints) != 1 {
			t.Fatalf("%s: cluster leasegate has %d endpoint groups, want one endpoint", envoySidecarExample, len(c.LoadAssignment.Endpoints))
		}
		a := c.LoadAssignment.Endpoints[0].LbEndpoints[0].Endpoint.Address
		if _, ok := a["pipe"]; !ok {
			t.Fatalf("%s: cluster leasegate's address %v is not a pipe", envoySidecarExample, a)
		}
		return a
	}
	t.Fatalf("%s has no cluster leasegate", envoySidecarExample)
	return nil
}
