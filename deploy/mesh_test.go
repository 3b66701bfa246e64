package deploy_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	envoygateway "github.com/envoyproxy/gateway"
	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1 "istio.io/api/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/yaml"
)

// The mesh examples are checked against what the chart renders with its
// default values: the Service they call, its gRPC port, and the issuer
// timeout their own timeouts must exceed.
type chartTarget struct {
	host          string // the Service's cluster DNS name
	name          string // the Service's name
	grpcPort      int32
	issuerTimeout time.Duration // the longest issuers[].introspection.timeout
}

func defaultChart(t *testing.T) chartTarget {
	t.Helper()
	objs := renderChart(t, valuesFile(t, t.TempDir(), ""))
	svc := only[*corev1.Service](t, objs)
	cfg := parseConfig(t, configData(t, objs))
	ct := chartTarget{
		host:     svc.Name + "." + releaseNS + ".svc.cluster.local",
		name:     svc.Name,
		grpcPort: servicePort(t, svc, "grpc").Port,
	}
	issuers, _ := lookup(cfg, "issuers")
	list, _ := issuers.([]any)
	if len(list) == 0 {
		t.Fatal("the chart's config has no issuers")
	}
	for i := range list {
		d := 2 * time.Second // leasegate's default
		if v, ok := lookup(cfg, "issuers."+strconv.Itoa(i)+".introspection.timeout"); ok {
			var err error
			if d, err = time.ParseDuration(v.(string)); err != nil {
				t.Fatal(err)
			}
		}
		ct.issuerTimeout = max(ct.issuerTimeout, d)
	}
	return ct
}

// protoStrict decodes YAML into a proto message with protojson, which
// refuses unknown fields and bad enum values.
func protoStrict(doc []byte, m proto.Message) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	return protojson.UnmarshalOptions{}.Unmarshal(js, m)
}

// crObject is a custom resource whose spec is a proto message (Istio's):
// the envelope decodes strictly into the Kubernetes types, the spec with
// protojson.
type crObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              json.RawMessage `json:"spec"`
}

func decodeProtoCR(doc []byte, spec proto.Message) (crObject, error) {
	var cr crObject
	if err := strictUnmarshal(doc, &cr); err != nil {
		return cr, err
	}
	return cr, protojson.UnmarshalOptions{}.Unmarshal(cr.Spec, spec)
}

func istioCRDs(t *testing.T) []byte {
	t.Helper()
	return readFile(t, filepath.Join(moduleDir(t, "istio.io/api"), "kubernetes", "customresourcedefinitions.gen.yaml"))
}

// leasegateProvider is the extension provider meshconfig.yaml declares.
func leasegateProvider(t *testing.T) (*meshv1alpha1.MeshConfig_ExtensionProvider, *meshv1alpha1.MeshConfig) {
	t.Helper()
	var mc meshv1alpha1.MeshConfig
	if err := protoStrict(readFile(t, "istio/meshconfig.yaml"), &mc); err != nil {
		t.Fatalf("istio/meshconfig.yaml is not a MeshConfig: %v", err)
	}
	var found *meshv1alpha1.MeshConfig_ExtensionProvider
	for _, p := range mc.GetExtensionProviders() {
		if p.GetEnvoyExtAuthzGrpc() != nil {
			if found != nil {
				t.Fatal("more than one envoyExtAuthzGrpc provider")
			}
			found = p
		}
	}
	if found == nil {
		t.Fatal("no envoyExtAuthzGrpc extension provider")
	}
	return found, &mc
}

func TestIstioExtensionProvider(t *testing.T) {
	ct := defaultChart(t)
	p, _ := leasegateProvider(t)
	g := p.GetEnvoyExtAuthzGrpc()
	if g.GetService() != ct.host || g.GetPort() != uint32(ct.grpcPort) {
		t.Errorf("provider calls %s:%d, the chart's gRPC Service is %s:%d", g.GetService(), g.GetPort(), ct.host, ct.grpcPort)
	}
	if g.GetFailOpen() {
		t.Error("failOpen: a down leasegate would let every token through")
	}
	if g.GetStatusOnError() != "503" {
		t.Errorf("statusOnError %q, want 503", g.GetStatusOnError())
	}
	if g.GetIncludeRequestBodyInCheck() != nil {
		t.Error("includeRequestBodyInCheck buffers uploads; leasegate never reads bodies")
	}
	if to := g.GetTimeout().AsDuration(); to <= ct.issuerTimeout {
		t.Errorf("timeout %v is not above the issuer timeout %v", to, ct.issuerTimeout)
	}
}

func TestIstioAuthorizationPolicy(t *testing.T) {
	doc := readFile(t, "istio/authorizationpolicy.yaml")
	var ap securityv1.AuthorizationPolicy
	cr, err := decodeProtoCR(doc, &ap)
	if err != nil {
		t.Fatalf("not an AuthorizationPolicy: %v", err)
	}
	crd := loadCRD(t, istioCRDs(t), "security.istio.io", "v1", "AuthorizationPolicy")
	if problems := crd.validate(doc); len(problems) > 0 {
		t.Errorf("the CRD schema refuses it:\n%s", strings.Join(problems, "\n"))
	}
	p, _ := leasegateProvider(t)
	if ap.GetAction() != securityv1.AuthorizationPolicy_CUSTOM || ap.GetProvider().GetName() != p.GetName() {
		t.Errorf("action %v provider %q, want CUSTOM with provider %q", ap.GetAction(), ap.GetProvider().GetName(), p.GetName())
	}
	// An AuthorizationPolicy without rules matches no request.
	if len(ap.GetRules()) == 0 {
		t.Error("no rules: the policy would send nothing to leasegate")
	}
	if cr.Namespace == "" || len(ap.GetSelector().GetMatchLabels()) == 0 {
		t.Errorf("policy %s/%s selects no workload", cr.Namespace, cr.Name)
	}
}

func TestEnvoyGatewaySecurityPolicy(t *testing.T) {
	ct := defaultChart(t)
	spDoc := readFile(t, "envoy-gateway/securitypolicy.yaml")
	rgDoc := readFile(t, "envoy-gateway/referencegrant.yaml")
	var sp egv1a1.SecurityPolicy
	if err := strictUnmarshal(spDoc, &sp); err != nil {
		t.Fatalf("not a SecurityPolicy: %v", err)
	}
	var rg gwapiv1beta1.ReferenceGrant
	if err := strictUnmarshal(rgDoc, &rg); err != nil {
		t.Fatalf("not a ReferenceGrant: %v", err)
	}
	for _, c := range []struct {
		doc                  []byte
		group, version, kind string
	}{
		{spDoc, egv1a1.GroupName, "v1alpha1", egv1a1.KindSecurityPolicy},
		{rgDoc, gwapiv1beta1.GroupName, "v1beta1", "ReferenceGrant"},
	} {
		crd := loadCRD(t, envoygateway.GatewayCRDs, c.group, c.version, c.kind)
		if problems := crd.validate(c.doc); len(problems) > 0 {
			t.Errorf("the %s CRD schema refuses it:\n%s", c.kind, strings.Join(problems, "\n"))
		}
	}
	ea := sp.Spec.ExtAuth
	if ea == nil || ea.GRPC == nil || ea.HTTP != nil {
		t.Fatalf("extAuth %+v is not gRPC ext_authz", ea)
	}
	if len(ea.GRPC.BackendRefs) != 1 {
		t.Fatalf("%d backendRefs", len(ea.GRPC.BackendRefs))
	}
	ref := ea.GRPC.BackendRefs[0].BackendObjectReference
	if ref.Kind != nil && *ref.Kind != "Service" || ref.Group != nil && *ref.Group != "" {
		t.Errorf("backendRef is a %v/%v, not a Service", ref.Group, ref.Kind)
	}
	if string(ref.Name) != ct.name || ref.Namespace == nil || string(*ref.Namespace) != releaseNS || ref.Port == nil || int32(*ref.Port) != ct.grpcPort {
		t.Errorf("backendRef %s/%v:%v, the chart's gRPC Service is %s/%s:%d", ref.Name, ref.Namespace, ref.Port, releaseNS, ct.name, ct.grpcPort)
	}
	if ea.FailOpen == nil || *ea.FailOpen {
		t.Error("failOpen is not false: a down leasegate would let every token through")
	}
	if ea.Timeout == nil {
		t.Error("no timeout")
	} else if to, err := time.ParseDuration(string(*ea.Timeout)); err != nil || to <= ct.issuerTimeout {
		t.Errorf("timeout %s is not above the issuer timeout %v (%v)", *ea.Timeout, ct.issuerTimeout, err)
	}
	// The cross-namespace backendRef needs the ReferenceGrant.
	if rg.Namespace != releaseNS {
		t.Errorf("ReferenceGrant in %q, the Service is in %q", rg.Namespace, releaseNS)
	}
	if !slices.ContainsFunc(rg.Spec.From, func(f gwapiv1beta1.ReferenceGrantFrom) bool {
		return f.Group == egv1a1.GroupName && f.Kind == egv1a1.KindSecurityPolicy && string(f.Namespace) == sp.Namespace
	}) {
		t.Errorf("ReferenceGrant from %+v does not admit SecurityPolicies of %s", rg.Spec.From, sp.Namespace)
	}
	if !slices.ContainsFunc(rg.Spec.To, func(to gwapiv1beta1.ReferenceGrantTo) bool {
		return to.Group == "" && to.Kind == "Service" && (to.Name == nil || string(*to.Name) == ct.name)
	}) {
		t.Errorf("ReferenceGrant to %+v does not cover Service %s", rg.Spec.To, ct.name)
	}
}

// TestMeshValidatorsRefuse: each check above fails on a broken example,
// so a passing run means the files are right, not that nothing looked.
func TestMeshValidatorsRefuse(t *testing.T) {
	edit := func(t *testing.T, file, old, new string) []byte {
		t.Helper()
		s := string(readFile(t, file))
		if !strings.Contains(s, old) {
			t.Fatalf("%s has no %q", file, old)
		}
		return []byte(strings.Replace(s, old, new, 1))
	}
	t.Run("mesh config field spelled wrong", func(t *testing.T) {
		var mc meshv1alpha1.MeshConfig
		if err := protoStrict(edit(t, "istio/meshconfig.yaml", "failOpen:", "failopen:"), &mc); err == nil {
			t.Error("protojson accepted failopen")
		}
	})
	t.Run("authorization policy action unknown", func(t *testing.T) {
		doc := edit(t, "istio/authorizationpolicy.yaml", "action: CUSTOM", "action: EXTERNAL")
		if _, err := decodeProtoCR(doc, &securityv1.AuthorizationPolicy{}); err == nil {
			t.Error("protojson accepted action EXTERNAL")
		}
		if p := loadCRD(t, istioCRDs(t), "security.istio.io", "v1", "AuthorizationPolicy").validate(doc); !mentions(p, "spec.action") {
			t.Errorf("the CRD schema did not refuse action EXTERNAL: %q", p)
		}
	})
	eg := func(t *testing.T) *crdSchema {
		return loadCRD(t, envoygateway.GatewayCRDs, egv1a1.GroupName, "v1alpha1", egv1a1.KindSecurityPolicy)
	}
	t.Run("security policy timeout not a Gateway API duration", func(t *testing.T) {
		doc := edit(t, "envoy-gateway/securitypolicy.yaml", "timeout: 2500ms", "timeout: 2.5s")
		if p := eg(t).validate(doc); !mentions(p, "spec.extAuth.timeout") {
			t.Errorf("the CRD schema did not refuse timeout 2.5s: %q", p)
		}
	})
	t.Run("security policy with grpc and http", func(t *testing.T) {
		doc := edit(t, "envoy-gateway/securitypolicy.yaml", "  extAuth:\n", "  extAuth:\n    http: { backendRefs: [{ name: other, port: 80 }] }\n")
		if p := eg(t).validate(doc); !mentions(p, "only one of grpc or http") {
			t.Errorf("the CEL rule did not refuse grpc and http together: %q", p)
		}
	})
	t.Run("security policy unknown field", func(t *testing.T) {
		doc := edit(t, "envoy-gateway/securitypolicy.yaml", "failOpen: false", "failOpen: false\n    failClosed: true")
		if err := strictUnmarshal(doc, &egv1a1.SecurityPolicy{}); err == nil {
			t.Error("strict decoding accepted failClosed")
		}
		if p := eg(t).validate(doc); !mentions(p, "unknown field spec.extAuth.failClosed") {
			t.Errorf("the CRD schema did not refuse failClosed: %q", p)
		}
	})
}

func mentions(problems []string, sub string) bool {
	return slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, sub) })
}
