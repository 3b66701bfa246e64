package deploy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"maps"
	"math/big"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// chartSecrets are the Secrets the default values name.
func chartSecrets() fakeSecrets {
	return fakeSecrets{"leasegate": {"client-secret": []byte("client-s3cret"), "admin-secret": []byte("admin-s3cret")}}
}

// fleetValues turns fleet mode on with every Secret it can use; the mount
// paths point into the case's temp dir so -check can read the files.
const fleetValues = `
fleet:
  enabled: true
  redis:
    addresses: ["redis-0.redis.leasegate.svc:6379", "redis-1.redis.leasegate.svc:6379"]
    username: leasegate
    password: { existingSecret: leasegate-redis, key: password }
    tls:
      enabled: true
      existingSecret: leasegate-redis-tls
      serverName: redis.leasegate.svc
      mountPath: "{{dir}}/redis-tls"
  key:
    existingSecret: leasegate-fleet
    key: fleet.key
    mountPath: "{{dir}}/fleet"
  onStoreLoss: revalidate
`

type chartCase struct {
	name    string
	values  string
	secrets func(t *testing.T) fakeSecrets
	// kinds the release holds, exactly.
	kinds []string
	check func(t *testing.T, c *rendered)
}

// rendered is one value set's output, decoded.
type rendered struct {
	dir    string
	objs   []any
	config []byte
	cfg    map[string]any
	pod    corev1.PodSpec // the Deployment's, or the sidecar notes' fragment
	// secrets are the case's Secrets, for checks that vary them.
	secrets fakeSecrets
	notes   string // the sidecar notes; "" in standalone mode
}

var standaloneKinds = []string{"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "ServiceAccount"}

func TestChart(t *testing.T) {
	cases := []chartCase{{
		name:  "defaults",
		kinds: standaloneKinds,
		check: func(t *testing.T, c *rendered) {
			d := only[*appsv1.Deployment](t, c.objs)
			if d.Spec.Replicas != nil {
				t.Errorf("replicas = %d with the HPA on; the HPA owns the count", *d.Spec.Replicas)
			}
			hpa := only[*autoscalingv2.HorizontalPodAutoscaler](t, c.objs)
			if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != d.Name || ref.APIVersion != "apps/v1" {
				t.Errorf("HPA scales %+v, not Deployment %s", ref, d.Name)
			}
			if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 {
				t.Errorf("HPA minReplicas %v: one replica is a single point of failure for every request", hpa.Spec.MinReplicas)
			}
			lc := leasegateContainer(t, c.pod)
			if _, ok := lc.Resources.Requests["cpu"]; !ok {
				t.Error("no cpu request: the HPA's utilisation target needs one")
			}
			checkEnvFromSecret(t, lc, "LEASEGATE_CLIENT_SECRET", "leasegate", "client-secret")
			checkEnvFromSecret(t, lc, "LEASEGATE_ADMIN_SECRET", "leasegate", "admin-secret")
			if got := str(t, c.cfg, "admin.secret"); got != "${LEASEGATE_ADMIN_SECRET}" {
				t.Errorf("admin.secret = %q", got)
			}
			if got := str(t, c.cfg, "issuers.0.introspection.client_secret"); got != "${LEASEGATE_CLIENT_SECRET}" {
				t.Errorf("client_secret = %q", got)
			}
			if _, ok := lookup(c.cfg, "fleet"); ok {
				t.Error("fleet is configured with fleet.enabled false")
			}
			if _, ok := lookup(c.cfg, "listen.push"); ok {
				t.Error("listen.push rendered with push.port 0: the receivers belong on the admin port")
			}
			checkAntiAffinity(t, d, "preferred")
			if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
				t.Errorf("rolling update %+v may take a pod away before its successor is ready", d.Spec.Strategy.RollingUpdate)
			}
			pre := lc.Lifecycle
			if pre == nil || pre.PreStop == nil || pre.PreStop.Sleep == nil || pre.PreStop.Sleep.Seconds <= 0 {
				t.Errorf("no preStop sleep: %+v", pre)
			} else if grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds; grace == nil || *grace < pre.PreStop.Sleep.Seconds+15 {
				t.Errorf("terminationGracePeriodSeconds %v leaves less than the 15s drain after the %ds preStop sleep", grace, pre.PreStop.Sleep.Seconds)
			}
			// The same config with a secret variable unset is refused, and
			// -check names it: the check above is not vacuous.
			out, ok := runCheck(t, c.config, c.pod, lc, chartSecrets(), "LEASEGATE_ADMIN_SECRET")
			if ok || !strings.Contains(out, "LEASEGATE_ADMIN_SECRET") {
				t.Errorf("-check without LEASEGATE_ADMIN_SECRET: ok=%v\n%s", ok, out)
			}
		},
	}, {
		name:   "hpa off",
		values: "autoscaling: { enabled: false }\nreplicaCount: 3\npodAntiAffinity: hard\n",
		kinds:  []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"},
		check: func(t *testing.T, c *rendered) {
			d := only[*appsv1.Deployment](t, c.objs)
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
				t.Errorf("replicas = %v, want 3", d.Spec.Replicas)
			}
			checkAntiAffinity(t, d, "required")
		},
	}, {
		name:   "fleet",
		values: fleetValues,
		secrets: func(t *testing.T) fakeSecrets {
			s := chartSecrets()
			// As the values' comment makes it: base64 text (a secret file's
			// trailing CR/LF is trimmed, so raw bytes could come up short).
			s["leasegate-fleet"] = map[string][]byte{"fleet.key": []byte(base64.StdEncoding.EncodeToString(randomBytes(t, 48)) + "\n")}
			s["leasegate-redis"] = map[string][]byte{"password": []byte("redis-pw")}
			s["leasegate-redis-tls"] = map[string][]byte{"ca.crt": selfSignedCA(t), "tls.crt": []byte("unused"), "tls.key": []byte("unused")}
			return s
		},
		kinds: standaloneKinds,
		check: func(t *testing.T, c *rendered) {
			if got, want := str(t, c.cfg, "fleet.secret_file"), filepath.Join(c.dir, "fleet", "fleet.key"); got != want {
				t.Errorf("fleet.secret_file = %q, want %q", got, want)
			}
			if got := str(t, c.cfg, "fleet.redis.password"); got != "${LEASEGATE_REDIS_PASSWORD}" {
				t.Errorf("fleet.redis.password = %q", got)
			}
			if got, want := str(t, c.cfg, "fleet.redis.tls.ca_file"), filepath.Join(c.dir, "redis-tls", "ca.crt"); got != want {
				t.Errorf("fleet.redis.tls.ca_file = %q, want %q", got, want)
			}
			if got := str(t, c.cfg, "fleet.on_store_loss"); got != "revalidate" {
				t.Errorf("fleet.on_store_loss = %q", got)
			}
			lc := leasegateContainer(t, c.pod)
			checkEnvFromSecret(t, lc, "LEASEGATE_REDIS_PASSWORD", "leasegate-redis", "password")
			for _, m := range lc.VolumeMounts {
				v := volume(t, c.pod, m.Name)
				if v.Secret == nil {
					continue
				}
				if !m.ReadOnly {
					t.Errorf("Secret %s mounted writable", v.Secret.SecretName)
				}
				if mode := v.Secret.DefaultMode; mode == nil || *mode&0o007 != 0 {
					t.Errorf("Secret %s files are world-readable (defaultMode %v)", v.Secret.SecretName, mode)
				}
			}
			// Without the fleet key in the Secret the pod must not pass.
			s := maps.Clone(c.secrets)
			s["leasegate-fleet"] = map[string][]byte{"fleet.key": []byte("too short")}
			if out, ok := runCheck(t, c.config, c.pod, lc, s); ok || !strings.Contains(out, "fleet") {
				t.Errorf("-check with a 9-byte fleet key: ok=%v\n%s", ok, out)
			}
		},
	}, {
		name:   "http mode",
		values: "http: { enabled: true, port: 9002, mode: nginx }\n",
		kinds:  standaloneKinds,
		check: func(t *testing.T, c *rendered) {
			if p := listenPort(t, c.cfg, "http"); p != 9002 {
				t.Errorf("listen.http port %d", p)
			}
			if got := str(t, c.cfg, "listen.http_mode"); got != "nginx" {
				t.Errorf("listen.http_mode = %q", got)
			}
			svc := only[*corev1.Service](t, c.objs)
			if p := servicePort(t, svc, "http"); p.Port != 9002 {
				t.Errorf("Service http port %d", p.Port)
			}
		},
	}, {
		name:   "admin on loopback without a secret",
		values: "admin: { address: 127.0.0.1 }\nadminSecret: { existingSecret: '' }\n",
		kinds:  standaloneKinds,
		check: func(t *testing.T, c *rendered) {
			if _, ok := lookup(c.cfg, "admin"); ok {
				t.Error("admin: rendered without an admin secret")
			}
			if got := str(t, c.cfg, "listen.admin"); got != "127.0.0.1:9191" {
				t.Errorf("listen.admin = %q", got)
			}
			for _, e := range leasegateContainer(t, c.pod).Env {
				if e.Name == "LEASEGATE_ADMIN_SECRET" {
					t.Error("LEASEGATE_ADMIN_SECRET set without adminSecret.existingSecret")
				}
			}
		},
	}, {
		name:   "push receivers on their own port",
		values: "push: { port: 9193, service: true }\n",
		kinds:  standaloneKinds,
		check: func(t *testing.T, c *rendered) {
			if got := str(t, c.cfg, "listen.push"); got != ":9193" {
				t.Errorf("listen.push = %q, want :9193", got)
			}
			svc := only[*corev1.Service](t, c.objs)
			if p := servicePort(t, svc, "push"); p.Port != 9193 {
				t.Errorf("Service push port %d", p.Port)
			}
			if !strings.Contains(c.notes, "/backchannel-logout, /ssf/events): port 9193") {
				t.Errorf("the notes do not name the push port:\n%s", c.notes)
			}
		},
	}, {
		name:   "servicemonitor",
		values: "serviceMonitor: { enabled: true, labels: { release: kube-prometheus-stack } }\n",
		kinds:  append(slices.Clone(standaloneKinds), "ServiceMonitor"),
		check: func(t *testing.T, c *rendered) {
			sm := only[*monitoringv1.ServiceMonitor](t, c.objs)
			svc := only[*corev1.Service](t, c.objs)
			if sm.Labels["release"] != "kube-prometheus-stack" {
				t.Errorf("ServiceMonitor labels %v lack the Prometheus selector's", sm.Labels)
			}
			sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
			if err != nil || !sel.Matches(labels.Set(svc.Labels)) {
				t.Errorf("ServiceMonitor selector %v does not select Service labels %v (%v)", sm.Spec.Selector, svc.Labels, err)
			}
			if len(sm.Spec.Endpoints) != 1 {
				t.Fatalf("%d endpoints", len(sm.Spec.Endpoints))
			}
			ep := sm.Spec.Endpoints[0]
			if servicePort(t, svc, ep.Port).Port != 9190 || ep.Path != "/metrics" {
				t.Errorf("ServiceMonitor scrapes port %q path %q, want metrics (9190) /metrics", ep.Port, ep.Path)
			}
		},
	}, {
		name:   "sidecar",
		values: "mode: sidecar\nhttp: { enabled: true }\n",
		kinds:  []string{"ConfigMap"},
		check: func(t *testing.T, c *rendered) {
			for key, want := range map[string]string{
				"listen.grpc": "127.0.0.1:9001", "listen.http": "127.0.0.1:9002",
				"listen.admin": "127.0.0.1:9191", "listen.metrics": ":9190",
			} {
				if got := str(t, c.cfg, key); got != want {
					t.Errorf("%s = %q, want %q", key, got, want)
				}
			}
			lc := leasegateContainer(t, c.pod)
			checkEnvFromSecret(t, lc, "LEASEGATE_CLIENT_SECRET", "leasegate", "client-secret")
			for _, p := range lc.Ports {
				if p.Name == "admin" {
					t.Error("the sidecar publishes its admin port")
				}
			}
			if strings.Contains(c.notes, "pipe") {
				t.Errorf("TCP sidecar notes speak of a pipe address:\n%s", c.notes)
			}
		},
	}, {
		name:   "sidecar on a unix socket",
		values: "mode: sidecar\ngrpc: { socket: /run/leasegate/authz.sock }\n",
		kinds:  []string{"ConfigMap"},
		check:  checkSidecarSocket("/run/leasegate/authz.sock", "65532"),
	}, {
		name:   "sidecar socket with its own group",
		values: "mode: sidecar\ngrpc: { socket: /var/run/lg/ext-authz.sock, socketGroup: 1337 }\nhttp: { enabled: true }\n",
		kinds:  []string{"ConfigMap"},
		check:  checkSidecarSocket("/var/run/lg/ext-authz.sock", "1337"),
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &rendered{dir: t.TempDir()}
			vf := valuesFile(t, c.dir, tc.values)
			c.objs = renderChart(t, vf)
			c.notes = renderNotes(t, vf)
			c.config = configData(t, c.objs)
			c.cfg = parseConfig(t, c.config)
			checkKinds(t, c.objs, tc.kinds)
			cm := only[*corev1.ConfigMap](t, c.objs)
			if slices.Contains(tc.kinds, "Deployment") {
				c.pod = podOf(t, c.objs)
				checkPodSecurity(t, c.pod)
				d := only[*appsv1.Deployment](t, c.objs)
				checkChecksum(t, d.Spec.Template.Annotations, c.config)
				checkWiring(t, c.objs)
				if listenPort(t, c.cfg, "grpc") != 9001 || !strings.HasPrefix(str(t, c.cfg, "listen.grpc"), ":") {
					t.Errorf("listen.grpc = %q, want :9001 (all interfaces)", str(t, c.cfg, "listen.grpc"))
				}
			} else {
				c.pod = sidecarPod(t, c.notes)
			}
			lc := leasegateContainer(t, c.pod)
			checkContainerSecurity(t, lc)
			checkProbes(t, lc, c.cfg)
			checkConfigMount(t, c.pod, lc, cm.Name)
			checkMemory(t, lc, c.cfg)
			secrets := chartSecrets()
			if tc.secrets != nil {
				secrets = tc.secrets(t)
			}
			c.secrets = maps.Clone(secrets)
			if out, ok := runCheck(t, c.config, c.pod, lc, secrets); !ok {
				t.Errorf("leasegate -check refuses the rendered config:\n%s\n--- config:\n%s", out, c.config)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

// TestChartRefuses: values that would deploy something broken or open
// fail at helm template (the chart's own checks and values.schema.json),
// and a typo inside config: fails at leasegate -check.
func TestChartRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, values, want string
	}{
		{"listen inside config", "config: { listen: { grpc: ':1' } }\n", "config.listen is written by the chart"},
		{"open admin without a secret", "adminSecret: { existingSecret: '' }\n", "admin.address is not loopback"},
		{"fleet without redis", "fleet: { enabled: true }\n", "fleet.enabled needs fleet.redis.addresses"},
		{"fleet without its key", "fleet: { enabled: true, redis: { addresses: ['r:6379'] }, key: { existingSecret: '' } }\n", "fleet.key.existingSecret"},
		{"unknown value", "replicas: 3\n", "replicas"},
		{"unknown mode", "mode: daemonset\n", "mode"},
		{"unknown store-loss mode", "fleet: { onStoreLoss: allow }\n", "onStoreLoss"},
		{"push on the Service without a port", "push: { service: true }\n", "push.service needs push.port"},
		{"push on the Service of a sidecar", "mode: sidecar\npush: { port: 9193, service: true }\n", "push.service needs mode: standalone"},
		{"socket in standalone mode", "grpc: { socket: /run/leasegate/authz.sock }\n", "grpc.socket needs mode: sidecar"},
		{"relative socket path", "mode: sidecar\ngrpc: { socket: run/authz.sock }\n", "at '/grpc/socket'"},
		{"unclean socket path", "mode: sidecar\ngrpc: { socket: /run/leasegate/../authz.sock }\n", "want a clean absolute path"},
		{"socket in /", "mode: sidecar\ngrpc: { socket: /authz.sock }\n", "in a directory of its own"},
		{"socket path too long", "mode: sidecar\ngrpc: { socket: /run/" + strings.Repeat("x", 100) + ".sock }\n", "at most 107 bytes"},
		{"socket directory too long", "mode: sidecar\ngrpc: { socket: /run/" + strings.Repeat("x", 80) + "/a.sock }\n", "of at most 83"},
		{"socket beside the config", "mode: sidecar\ngrpc: { socket: /etc/leasegate/config/authz.sock }\n", "overlaps the container's mount /etc/leasegate/config"},
		{"socket above the config", "mode: sidecar\ngrpc: { socket: /etc/leasegate/authz.sock }\n", "overlaps the container's mount /etc/leasegate/config"},
		{"probe on the socket's closed port", "mode: sidecar\ngrpc: { socket: /run/leasegate/authz.sock }\nreadinessProbe: { httpGet: null, grpc: { port: 9001 } }\n", "readinessProbe.grpc uses the gRPC port"},
		{"socket without a group", "mode: sidecar\ngrpc: { socket: /run/leasegate/authz.sock }\npodSecurityContext: { fsGroup: null }\n", "grpc.socket needs a group"},
		{"socket mode not octal", "mode: sidecar\ngrpc: { socket: /run/leasegate/authz.sock, socketMode: '0968' }\n", "at '/grpc/socketMode'"},
		{"socket group a name", "mode: sidecar\ngrpc: { socket: /run/leasegate/authz.sock, socketGroup: envoy }\n", "at '/grpc/socketGroup'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vf := valuesFile(t, t.TempDir(), tc.values)
			out, err := helm(t, templateArgs(vf)...)
			if err == nil {
				t.Fatalf("helm template accepted it:\n%s", out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template failed without naming %q: %v", tc.want, err)
			}
		})
	}
	t.Run("typo in config", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		objs := renderChart(t, valuesFile(t, dir, "config: { lease: { max_memory: 256 } }\n"))
		pod := podOf(t, objs)
		out, ok := runCheck(t, configData(t, objs), pod, leasegateContainer(t, pod), chartSecrets())
		if ok || !strings.Contains(out, "max_memory") {
			t.Errorf("-check accepted lease.max_memory (ok=%v):\n%s", ok, out)
		}
	})
}

func checkKinds(t *testing.T, objs []any, want []string) {
	t.Helper()
	var got []string
	for _, o := range objs {
		got = append(got, kindOf(o))
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("rendered kinds %v, want %v", got, want)
	}
}

func kindOf(o any) string {
	switch o.(type) {
	case *corev1.ConfigMap:
		return "ConfigMap"
	case *corev1.Service:
		return "Service"
	case *corev1.ServiceAccount:
		return "ServiceAccount"
	case *appsv1.Deployment:
		return "Deployment"
	case *policyv1.PodDisruptionBudget:
		return "PodDisruptionBudget"
	case *autoscalingv2.HorizontalPodAutoscaler:
		return "HorizontalPodAutoscaler"
	case *monitoringv1.ServiceMonitor:
		return "ServiceMonitor"
	}
	return "?"
}

// checkWiring: Service, PDB and anti-affinity select the Deployment's pods,
// every Service port lands on a container port, and the pods run as the
// chart's ServiceAccount.
func checkWiring(t *testing.T, objs []any) {
	t.Helper()
	d := only[*appsv1.Deployment](t, objs)
	podLabels := labels.Set(d.Spec.Template.Labels)
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Fatalf("Deployment selector %v does not match its pods %v (%v)", d.Spec.Selector, podLabels, err)
	}
	svc := only[*corev1.Service](t, objs)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
		t.Errorf("Service selector %v does not select pods %v", svc.Spec.Selector, podLabels)
	}
	lc := leasegateContainer(t, d.Spec.Template.Spec)
	for _, p := range svc.Spec.Ports {
		if got := containerPort(t, lc, p.TargetPort); got != p.Port {
			t.Errorf("Service port %s %d → container port %d", p.Name, p.Port, got)
		}
	}
	if g := servicePort(t, svc, "grpc"); g.Port != 9001 || g.AppProtocol == nil || *g.AppProtocol != "grpc" {
		t.Errorf("Service grpc port %+v, want 9001 with appProtocol grpc (HTTP/2 from Istio and Envoy Gateway)", g)
	}
	if m := servicePort(t, svc, "metrics"); m.Port != 9190 {
		t.Errorf("Service metrics port %d, want 9190", m.Port)
	}
	pdb := only[*policyv1.PodDisruptionBudget](t, objs)
	if s, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || !s.Matches(podLabels) {
		t.Errorf("PDB selector %v does not select pods %v (%v)", pdb.Spec.Selector, podLabels, err)
	}
	sa := only[*corev1.ServiceAccount](t, objs)
	if d.Spec.Template.Spec.ServiceAccountName != sa.Name {
		t.Errorf("pods run as %q, the chart's ServiceAccount is %q", d.Spec.Template.Spec.ServiceAccountName, sa.Name)
	}
}

func servicePort(t *testing.T, svc *corev1.Service, name string) corev1.ServicePort {
	t.Helper()
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("Service %s has no port %q", svc.Name, name)
	return corev1.ServicePort{}
}

// checkAntiAffinity: one replica per node, preferred or required, by the
// pods' own labels.
func checkAntiAffinity(t *testing.T, d *appsv1.Deployment, kind string) {
	t.Helper()
	a := d.Spec.Template.Spec.Affinity
	if a == nil || a.PodAntiAffinity == nil {
		t.Fatal("no podAntiAffinity")
	}
	var terms []corev1.PodAffinityTerm
	for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		if kind == "preferred" {
			terms = append(terms, w.PodAffinityTerm)
		}
	}
	if kind == "required" {
		terms = a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	}
	if len(terms) != 1 {
		t.Fatalf("%d %s anti-affinity terms: %+v", len(terms), kind, a.PodAntiAffinity)
	}
	sel, err := metav1.LabelSelectorAsSelector(terms[0].LabelSelector)
	if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) || terms[0].TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("anti-affinity term %+v does not spread these pods over nodes (%v)", terms[0], err)
	}
}

func checkEnvFromSecret(t *testing.T, c corev1.Container, name, secret, key string) {
	t.Helper()
	for _, e := range c.Env {
		if e.Name != name {
			continue
		}
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != secret || e.ValueFrom.SecretKeyRef.Key != key {
			t.Errorf("env %s = %+v, want Secret %s key %s", name, e, secret, key)
		}
		return
	}
	t.Errorf("no env %s", name)
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// selfSignedCA is a CA certificate in PEM, for fleet.redis.tls.ca_file.
func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "leasegate test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
