package envoy

// These tests prove the Envoy configurations in ../examples/envoy are valid
// Envoy v3 bootstrap config, using go-control-plane's generated protos and
// their protoc-gen-validate rules, and that they keep the properties
// leasegate relies on (fail closed, explicit timeout, no request body,
// identity headers). They live here, not beside the examples, because envoy/
// is the one package that imports go-control-plane.
//
// Envoy's own loader rejects unknown fields and validates every typed_config
// after unpacking it. Bootstrap.ValidateAll alone does not do the second part:
// protoc-gen-validate stops at google.protobuf.Any, so validateDeep walks the
// whole tree and validates the content of every Any as well.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlymutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	// Types that appear only inside typed_config Anys must be linked in so
	// protojson and anypb can resolve them; the named imports above register
	// the rest (ext_authz, router, HCM, early header mutation, OpenTelemetry
	// tracer, upstream HTTP protocol options).
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

const (
	examplesRoot = "../examples"
	examplesDir  = examplesRoot + "/envoy"
	brokenDir    = "testdata/broken"

	extAuthzFilterName = "envoy.filters.http.ext_authz"
	routerFilterName   = "envoy.filters.http.router"

	// leasegate's default issuer timeout (SPEC §2); the ext_authz timeout must
	// exceed it so a lease miss can finish and stale_if_error can apply.
	defaultIssuerTimeout = 2 * time.Second
)

var identityHeaders = []string{"x-auth-subject", "x-auth-client-id", "x-auth-scope", "x-auth-issuer"}

// loadBootstrap reads a YAML Envoy bootstrap the way Envoy does: YAML is
// turned into JSON and parsed with the proto3 JSON mapping, unknown fields
// rejected. Every Any's type must be registered for this to succeed.
func loadBootstrap(path string) (*bootstrapv3.Bootstrap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read bootstrap: %w", err)
	}
	js, err := yamlToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var b bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, &b); err != nil {
		return nil, fmt.Errorf("%s: parse bootstrap: %w", path, err)
	}
	return &b, nil
}

// yamlToJSON converts a single YAML document to JSON.
func yamlToJSON(data []byte) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode yaml: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode yaml: more than one document")
	}
	v, err := jsonValue(doc)
	if err != nil {
		return nil, fmt.Errorf("decode yaml: %w", err)
	}
	return json.Marshal(v)
}

// jsonValue rewrites what yaml.v3 decodes into values encoding/json accepts.
func jsonValue(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			jv, err := jsonValue(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = jv
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("mapping key %v is %T, want string", k, k)
			}
			jv, err := jsonValue(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", ks, err)
			}
			out[ks] = jv
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			jv, err := jsonValue(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = jv
		}
		return out, nil
	case nil, string, bool, int, int64, uint64, float64:
		return v, nil
	default:
		return nil, fmt.Errorf("unsupported YAML value %v (%T)", v, v)
	}
}

// validateDeep reports every problem in b: its own validation rules, the
// validation rules of the message inside every Any at any depth (including
// Anys inside unpacked Anys, lists and maps), Anys of unregistered types, and
// any use of a deprecated field or enum value.
func validateDeep(b *bootstrapv3.Bootstrap) error {
	var errs []error
	if err := b.ValidateAll(); err != nil {
		errs = append(errs, fmt.Errorf("bootstrap: %w", err))
	}
	err := walkMessages("bootstrap", b.ProtoReflect(), func(path string, m protoreflect.Message, unpacked bool) error {
		if unpacked {
			v, ok := m.Interface().(interface{ ValidateAll() error })
			if !ok {
				errs = append(errs, fmt.Errorf("%s: %s has no ValidateAll", path, m.Descriptor().FullName()))
			} else if err := v.ValidateAll(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
			}
		}
		errs = append(errs, deprecatedUses(path, m)...)
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// walkMessages calls visit for m and every message below it, in field order
// (map entries in key order). An Any is visited itself and then unpacked; its
// content is visited with unpacked set and walked in turn. An Any that cannot
// be unpacked (type not registered, bad bytes) stops the walk with an error.
func walkMessages(path string, m protoreflect.Message, visit func(path string, m protoreflect.Message, unpacked bool) error) error {
	return walk(path, m, false, visit)
}

func walk(path string, m protoreflect.Message, unpacked bool, visit func(string, protoreflect.Message, bool) error) error {
	if err := visit(path, m, unpacked); err != nil {
		return err
	}
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("%s: unpack Any %q: %w", path, a.GetTypeUrl(), err)
		}
		return walk(fmt.Sprintf("%s<%s>", path, inner.ProtoReflect().Descriptor().FullName()), inner.ProtoReflect(), true, visit)
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			var keys []protoreflect.MapKey
			v.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
			for _, k := range keys {
				if err = walk(fmt.Sprintf("%s[%s]", p, k.String()), v.Map().Get(k).Message(), false, visit); err != nil {
					return false
				}
			}
		case fd.IsList():
			if fd.Message() == nil {
				return true
			}
			for i := range v.List().Len() {
				if err = walk(fmt.Sprintf("%s[%d]", p, i), v.List().Get(i).Message(), false, visit); err != nil {
					return false
				}
			}
		case fd.Message() != nil:
			err = walk(p, v.Message(), false, visit)
		}
		return err == nil
	})
	return err
}

// deprecatedUses lists the deprecated fields and enum values set directly in m.
func deprecatedUses(path string, m protoreflect.Message) []error {
	var errs []error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if opts, ok := fd.Options().(*descriptorpb.FieldOptions); ok && opts.GetDeprecated() {
			errs = append(errs, fmt.Errorf("%s.%s: deprecated field", path, fd.Name()))
		}
		if fd.Enum() == nil || fd.IsMap() {
			return true
		}
		nums := []protoreflect.EnumNumber{}
		if fd.IsList() {
			for i := range v.List().Len() {
				nums = append(nums, v.List().Get(i).Enum())
			}
		} else {
			nums = append(nums, v.Enum())
		}
		for _, n := range nums {
			ev := fd.Enum().Values().ByNumber(n)
			if ev == nil {
				continue
			}
			if opts, ok := ev.Options().(*descriptorpb.EnumValueOptions); ok && opts.GetDeprecated() {
				errs = append(errs, fmt.Errorf("%s.%s: deprecated enum value %s", path, fd.Name(), ev.Name()))
			}
		}
		return true
	})
	return errs
}

// checkConfig is the whole check applied to a file: load, then validateDeep.
func checkConfig(path string) error {
	b, err := loadBootstrap(path)
	if err != nil {
		return err
	}
	return validateDeep(b)
}

// lintLeasegate reports the properties leasegate needs from every
// HttpConnectionManager in b that valid Envoy config may lack. It returns
// errors rather than failing a test so that a fixture can prove each check
// refuses the mistake it is for.
func lintLeasegate(b *bootstrapv3.Bootstrap) error {
	var errs []error
	err := walkMessages("bootstrap", b.ProtoReflect(), func(path string, m protoreflect.Message, _ bool) error {
		if hcm, ok := m.Interface().(*hcmv3.HttpConnectionManager); ok {
			if err := underscoreHeadersProblem(hcm); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
			}
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// underscoreHeadersProblem: with Envoy's default (ALLOW) a client's
// x_auth_subject passes the x-auth-* removals and leasegate's overwrite
// untouched, and a backend that folds "_" into "-" (CGI, PHP-FPM, WSGI,
// Rack) reads it as leasegate's identity header. REJECT_REQUEST or
// DROP_HEADER both close that; the examples use REJECT_REQUEST.
func underscoreHeadersProblem(hcm *hcmv3.HttpConnectionManager) error {
	switch a := hcm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction(); a {
	case corev3.HttpProtocolOptions_REJECT_REQUEST, corev3.HttpProtocolOptions_DROP_HEADER:
		return nil
	default:
		return fmt.Errorf("common_http_protocol_options.headers_with_underscores_action = %v, want REJECT_REQUEST or DROP_HEADER "+
			"(otherwise a client's x_auth_subject reaches backends that fold \"_\" into \"-\")", a)
	}
}

// exampleDirs hold Envoy bootstraps only; the storage gateway's
// leasegate.yaml beside its Envoy config is leasegate's.
var exampleDirs = []string{examplesDir, examplesRoot + "/storage/envoy"}

func exampleFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, dir := range exampleDirs {
		found, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			t.Fatalf("glob examples: %v", err)
		}
		found = slices.DeleteFunc(found, func(f string) bool { return filepath.Base(f) == "leasegate.yaml" })
		if len(found) == 0 {
			t.Fatalf("no examples in %s", dir)
		}
		files = append(files, found...)
	}
	return files
}

func TestExamplesAreValidEnvoyConfig(t *testing.T) {
	for _, file := range exampleFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			if err := checkConfig(file); err != nil {
				t.Fatalf("invalid Envoy config:\n%v", err)
			}
		})
	}
}

// The broken fixtures are this file with one mistake each, so each failure
// below is caused by that mistake alone.
func TestBrokenFixturesControlIsValid(t *testing.T) {
	path := filepath.Join("testdata", "minimal-valid.yaml")
	if err := checkConfig(path); err != nil {
		t.Fatalf("control fixture is invalid:\n%v", err)
	}
	b, err := loadBootstrap(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := lintLeasegate(b); err != nil {
		t.Fatalf("control fixture fails leasegate's checks:\n%v", err)
	}
}

// brokenCase is a fixture in testdata/broken that must fail checkConfig.
type brokenCase struct {
	name string
	file string
	// wantErr must appear in the error.
	wantErr string
	// passesTopLevel: the file parses and Bootstrap.ValidateAll accepts
	// it, so only validateDeep (Any descent or deprecation lint) can
	// catch the problem.
	passesTopLevel bool
	// validEnvoy: the file is valid Envoy config (checkConfig accepts it);
	// only lintLeasegate, leasegate's own requirements, catches the problem.
	validEnvoy bool
}

var brokenCases = []brokenCase{
	{
		name:    "unknown field inside ext_authz",
		file:    "unknown-field.yaml",
		wantErr: `unknown field "failure_mode_alow"`,
	},
	{
		name:           "empty ext_authz cluster name inside typed_config",
		file:           "empty-cluster-name.yaml",
		wantErr:        "GrpcService_EnvoyGrpc.ClusterName: value length must be at least 1 runes",
		passesTopLevel: true,
	},
	{
		name:           "http_service server_uri without timeout",
		file:           "http-service-no-timeout.yaml",
		wantErr:        "HttpUri.Timeout: value is required",
		passesTopLevel: true,
	},
	{
		name:           "per-route override with empty cluster inside typed_per_filter_config map",
		file:           "per-route-empty-cluster.yaml",
		wantErr:        "typed_per_filter_config[envoy.filters.http.ext_authz]<envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute>: invalid ExtAuthzPerRoute.CheckSettings",
		passesTopLevel: true,
	},
	{
		name:    "Go-style duration",
		file:    "go-duration.yaml",
		wantErr: `invalid google.protobuf.Duration value "250ms"`,
	},
	{
		name:    "typed_config of an unregistered type",
		file:    "unregistered-type.yaml",
		wantErr: "example.leasegate.NotAFilter",
	},
	{
		name:           "deprecated authorization_request.allowed_headers",
		file:           "deprecated-allowed-headers.yaml",
		wantErr:        "authorization_request.allowed_headers: deprecated field",
		passesTopLevel: true,
	},
	{
		name:           "headers with underscores allowed (Envoy's default)",
		file:           "underscore-headers-allowed.yaml",
		wantErr:        "headers_with_underscores_action = ALLOW, want REJECT_REQUEST or DROP_HEADER",
		passesTopLevel: true,
		validEnvoy:     true,
	},
}

func TestBrokenConfigsAreRejected(t *testing.T) {
	for _, tt := range brokenCases {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(brokenDir, tt.file)
			if tt.passesTopLevel {
				b, err := loadBootstrap(path)
				if err != nil {
					t.Fatalf("loadBootstrap: %v; want the file to parse", err)
				}
				if err := b.ValidateAll(); err != nil {
					t.Fatalf("Bootstrap.ValidateAll: %v; want it to pass so the case proves the deep check", err)
				}
			}
			err := checkConfig(path)
			if tt.validEnvoy {
				if err != nil {
					t.Fatalf("checkConfig: %v; want valid Envoy config so the case proves lintLeasegate", err)
				}
				b, lerr := loadBootstrap(path)
				if lerr != nil {
					t.Fatal(lerr)
				}
				err = lintLeasegate(b)
			}
			if err == nil {
				t.Fatalf("checkConfig(%s) = nil, want error containing %q", tt.file, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("checkConfig(%s) error:\n%v\nwant it to contain %q", tt.file, err, tt.wantErr)
			}
		})
	}
}

// Every file in testdata/broken must have a case in brokenCases, so a fixture
// cannot silently stop being tested.
func TestBrokenFixturesAreAllListed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(brokenDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(brokenCases) {
		t.Errorf("%d fixtures in %s, %d cases in brokenCases", len(files), brokenDir, len(brokenCases))
	}
	for _, f := range files {
		if !slices.ContainsFunc(brokenCases, func(c brokenCase) bool { return c.file == filepath.Base(f) }) {
			t.Errorf("%s has no case in brokenCases", f)
		}
	}
}

func TestValidateDeepRejectsUnregisteredAny(t *testing.T) {
	// protojson already refuses an unknown @type, so build the message
	// directly, as a control plane pushing binary config would.
	b := &bootstrapv3.Bootstrap{
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Listeners: []*listenerv3.Listener{{
				Name: "l",
				FilterChains: []*listenerv3.FilterChain{{
					Filters: []*listenerv3.Filter{{
						Name: "f",
						ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: &anypb.Any{
							TypeUrl: "type.googleapis.com/example.leasegate.NotAFilter",
						}},
					}},
				}},
			}},
		},
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("Bootstrap.ValidateAll: %v; want nil", err)
	}
	err := validateDeep(b)
	if err == nil || !strings.Contains(err.Error(), `unpack Any "type.googleapis.com/example.leasegate.NotAFilter"`) {
		t.Fatalf("validateDeep = %v, want unpack error for the unregistered type", err)
	}
}

func TestWalkMessagesDescendsIntoNestedAnys(t *testing.T) {
	// An HCM inside a listener filter holds the ext_authz filter in another
	// Any, and a route's typed_per_filter_config map holds a third.
	b, err := loadBootstrap(filepath.Join(examplesDir, "front-proxy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = walkMessages("bootstrap", b.ProtoReflect(), func(_ string, m protoreflect.Message, unpacked bool) error {
		if unpacked {
			got = append(got, string(m.Descriptor().FullName()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
		"envoy.extensions.filters.http.router.v3.Router",
		"envoy.config.trace.v3.OpenTelemetryConfig",
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("walk did not unpack %s; unpacked: %v", want, got)
		}
	}
}

// exampleExpectation is what one example must configure beyond the
// properties every example shares.
type exampleExpectation struct {
	file string // relative to examplesRoot
	// service is "grpc" or "http": the ext_authz transport.
	service string
	// tierRoutes maps a route prefix to the leasegate.tier context extension
	// it must set.
	tierRoutes map[string]string
	// pipe, when set, is the Unix socket the ext_authz cluster must reach
	// leasegate on (a pipe address), and leasegateConfig the leasegate
	// example (examples/) that must listen there.
	pipe, leasegateConfig string
}

var exampleExpectations = []exampleExpectation{
	{file: "envoy/front-proxy.yaml", service: "grpc", tierRoutes: map[string]string{"/admin/": "critical"}},
	{file: "envoy/sidecar.yaml", service: "grpc", tierRoutes: map[string]string{"/admin/": "critical"},
		pipe: "/run/leasegate/authz.sock", leasegateConfig: "sidecar.yaml"},
	{file: "envoy/storage-gateway.yaml", service: "grpc"},
	{file: "envoy/http-service.yaml", service: "http"},
	{file: "storage/envoy/xrootd-gateway.yaml", service: "grpc"},
}

func TestEveryExampleHasExpectations(t *testing.T) {
	for _, file := range exampleFiles(t) {
		rel, err := filepath.Rel(examplesRoot, file)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(exampleExpectations, func(e exampleExpectation) bool { return e.file == filepath.ToSlash(rel) }) {
			t.Errorf("%s is not listed in exampleExpectations", rel)
		}
	}
}

func TestExamplesKeepLeasegateProperties(t *testing.T) {
	for _, ex := range exampleExpectations {
		t.Run(ex.file, func(t *testing.T) {
			b, err := loadBootstrap(filepath.Join(examplesRoot, ex.file))
			if err != nil {
				t.Fatal(err)
			}
			clusters := map[string]*clusterv3.Cluster{}
			for _, c := range b.GetStaticResources().GetClusters() {
				clusters[c.GetName()] = c
			}
			hcms := findAll[*hcmv3.HttpConnectionManager](t, b)
			if len(hcms) == 0 {
				t.Fatal("no http_connection_manager")
			}
			for i, hcm := range hcms {
				t.Run(fmt.Sprintf("hcm%d", i), func(t *testing.T) {
					checkHCM(t, hcm, clusters)
					authz := extAuthzOf(t, hcm)
					checkExtAuthz(t, authz, ex.service, clusters)
					checkRoutes(t, hcm, ex.tierRoutes)
					if ex.pipe != "" {
						checkPipe(t, clusters[authz.GetGrpcService().GetEnvoyGrpc().GetClusterName()], ex.pipe, ex.leasegateConfig)
					}
				})
			}
		})
	}
}

// findAll returns every message of type T anywhere in b, Anys unpacked.
func findAll[T proto.Message](t *testing.T, b *bootstrapv3.Bootstrap) []T {
	t.Helper()
	var out []T
	err := walkMessages("bootstrap", b.ProtoReflect(), func(_ string, m protoreflect.Message, _ bool) error {
		if x, ok := m.Interface().(T); ok {
			out = append(out, x)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func unpack[T proto.Message](t *testing.T, what string, a *anypb.Any) T {
	t.Helper()
	m, err := a.UnmarshalNew()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	x, ok := m.(T)
	if !ok {
		var zero T
		t.Fatalf("%s is %T, want %T", what, m, zero)
	}
	return x
}

func checkHCM(t *testing.T, hcm *hcmv3.HttpConnectionManager, clusters map[string]*clusterv3.Cluster) {
	t.Helper()
	filters := hcm.GetHttpFilters()
	if len(filters) < 2 {
		t.Fatalf("http_filters = %d, want ext_authz and router", len(filters))
	}
	if got := filters[0].GetName(); got != extAuthzFilterName {
		t.Errorf("first http filter = %q, want %q (authorise before anything else runs)", got, extAuthzFilterName)
	}
	last := filters[len(filters)-1]
	if last.GetName() != routerFilterName {
		t.Errorf("last http filter = %q, want %q", last.GetName(), routerFilterName)
	}
	unpack[*routerv3.Router](t, "router typed_config", last.GetTypedConfig())

	if !hcm.GetGenerateRequestId().GetValue() {
		t.Error("generate_request_id is not true")
	}
	if err := underscoreHeadersProblem(hcm); err != nil {
		t.Error(err)
	}
	if !hcm.GetNormalizePath().GetValue() || !hcm.GetMergeSlashes() ||
		hcm.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST {
		t.Error("path is not normalised (normalize_path, merge_slashes, REJECT_REQUEST on escaped slashes)")
	}
	// Client-sent identity headers must be gone before any filter runs, so
	// neither a route without ext_authz nor a header leasegate leaves unset
	// lets a client choose them.
	var removed []string
	for _, ext := range hcm.GetEarlyHeaderMutationExtensions() {
		hm := unpack[*earlymutationv3.HeaderMutation](t, "early_header_mutation "+ext.GetName(), ext.GetTypedConfig())
		for _, m := range hm.GetMutations() {
			if r := m.GetRemove(); r != "" {
				removed = append(removed, strings.ToLower(r))
			}
		}
	}
	for _, h := range identityHeaders {
		if !slices.Contains(removed, h) {
			t.Errorf("early_header_mutation_extensions do not remove client-sent %s", h)
		}
	}

	provider := hcm.GetTracing().GetProvider()
	if provider.GetName() != "envoy.tracers.opentelemetry" {
		t.Errorf("tracing provider = %q, want envoy.tracers.opentelemetry", provider.GetName())
	} else {
		otel := unpack[*tracev3.OpenTelemetryConfig](t, "tracer typed_config", provider.GetTypedConfig())
		name := otel.GetGrpcService().GetEnvoyGrpc().GetClusterName()
		if _, ok := clusters[name]; !ok {
			t.Errorf("OpenTelemetry tracer cluster %q is not defined", name)
		}
	}
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if c := r.GetRoute().GetCluster(); c != "" {
				if _, ok := clusters[c]; !ok {
					t.Errorf("route %v: cluster %q is not defined", r.GetMatch(), c)
				}
			}
		}
	}
}

func extAuthzOf(t *testing.T, hcm *hcmv3.HttpConnectionManager) *extauthzv3.ExtAuthz {
	t.Helper()
	var found []*extauthzv3.ExtAuthz
	for _, f := range hcm.GetHttpFilters() {
		if f.GetName() == extAuthzFilterName {
			found = append(found, unpack[*extauthzv3.ExtAuthz](t, "ext_authz typed_config", f.GetTypedConfig()))
		}
	}
	if len(found) != 1 {
		t.Fatalf("ext_authz filters = %d, want 1", len(found))
	}
	return found[0]
}

func checkExtAuthz(t *testing.T, a *extauthzv3.ExtAuthz, service string, clusters map[string]*clusterv3.Cluster) {
	t.Helper()
	if a.GetFailureModeAllow() {
		t.Error("failure_mode_allow = true, want false (fail closed)")
	}
	if a.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		t.Errorf("transport_api_version = %v, want V3", a.GetTransportApiVersion())
	}
	if a.GetWithRequestBody() != nil {
		t.Error("with_request_body is set; leasegate must never receive the body")
	}
	if a.GetIncludePeerCertificate() {
		t.Error("include_peer_certificate = true, want false")
	}
	if got := a.GetStatusOnError().GetCode(); got != typev3.StatusCode_ServiceUnavailable {
		t.Errorf("status_on_error = %v, want ServiceUnavailable", got)
	}

	switch service {
	case "grpc":
		g := a.GetGrpcService()
		if g == nil {
			t.Fatal("grpc_service is not set")
		}
		checkTimeout(t, "grpc_service.timeout", g.GetTimeout())
		name := g.GetEnvoyGrpc().GetClusterName()
		c, ok := clusters[name]
		if !ok {
			t.Fatalf("ext_authz cluster %q is not defined", name)
		}
		checkHTTP2(t, c)
	case "http":
		h := a.GetHttpService()
		if h == nil {
			t.Fatal("http_service is not set")
		}
		checkTimeout(t, "http_service.server_uri.timeout", h.GetServerUri().GetTimeout())
		if _, ok := clusters[h.GetServerUri().GetCluster()]; !ok {
			t.Errorf("http_service cluster %q is not defined", h.GetServerUri().GetCluster())
		}
		if h.GetPathPrefix() != "/authz" || h.GetPathOverride() != "" {
			t.Errorf("path_prefix = %q, path_override = %q; want /authz and no override", h.GetPathPrefix(), h.GetPathOverride())
		}
		checkExact(t, "allowed_headers", a.GetAllowedHeaders(),
			"authorization", "destination", "source", "overwrite", "if-none-match", "depth",
			"x-http-method-override", "x-http-method", "x-method-override", "x-request-id")
		// The storage decision's If-None-Match overwrites the client's
		// (SPEC §5, conditional create).
		checkExact(t, "allowed_upstream_headers", h.GetAuthorizationResponse().GetAllowedUpstreamHeaders(),
			append(slices.Clone(identityHeaders), "if-none-match")...)
		checkExact(t, "allowed_client_headers", h.GetAuthorizationResponse().GetAllowedClientHeaders(),
			"www-authenticate", "retry-after", "content-type")
	default:
		t.Fatalf("unknown service kind %q", service)
	}
}

func checkTimeout(t *testing.T, what string, d *durationpb.Duration) {
	t.Helper()
	if d == nil {
		t.Errorf("%s is not set (Envoy's default is 200ms, shorter than an issuer call)", what)
		return
	}
	if got := d.AsDuration(); got <= defaultIssuerTimeout {
		t.Errorf("%s = %v, want more than leasegate's issuer timeout %v", what, got, defaultIssuerTimeout)
	}
}

// checkPipe: every endpoint of the ext_authz cluster is the pipe address
// path, and the leasegate example beside it listens there.
func checkPipe(t *testing.T, c *clusterv3.Cluster, path, leasegateConfig string) {
	t.Helper()
	n := 0
	for _, eps := range c.GetLoadAssignment().GetEndpoints() {
		for _, ep := range eps.GetLbEndpoints() {
			n++
			if got := ep.GetEndpoint().GetAddress().GetPipe().GetPath(); got != path {
				t.Errorf("cluster %q endpoint %v, want pipe %s", c.GetName(), ep.GetEndpoint().GetAddress(), path)
			}
		}
	}
	if n == 0 {
		t.Errorf("cluster %q has no endpoint", c.GetName())
	}
	b, err := os.ReadFile(filepath.Join(examplesDir, "..", leasegateConfig))
	if err != nil {
		t.Fatal(err)
	}
	if want := `grpc: "unix://` + path + `"`; !strings.Contains(string(b), want) {
		t.Errorf("examples/%s does not listen on %s (%s)", leasegateConfig, path, want)
	}
}

func checkHTTP2(t *testing.T, c *clusterv3.Cluster) {
	t.Helper()
	const key = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	a, ok := c.GetTypedExtensionProtocolOptions()[key]
	if !ok {
		t.Errorf("cluster %q has no %s (gRPC needs HTTP/2)", c.GetName(), key)
		return
	}
	opts := unpack[*upstreamhttpv3.HttpProtocolOptions](t, key, a)
	if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Errorf("cluster %q does not use explicit HTTP/2", c.GetName())
	}
}

func checkExact(t *testing.T, what string, m *matcherv3.ListStringMatcher, want ...string) {
	t.Helper()
	var got []string
	for _, p := range m.GetPatterns() {
		if e := p.GetExact(); e != "" {
			got = append(got, strings.ToLower(e))
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s lacks %q (has %v)", what, w, got)
		}
	}
}

func checkRoutes(t *testing.T, hcm *hcmv3.HttpConnectionManager, tierRoutes map[string]string) {
	t.Helper()
	filterNames := map[string]bool{}
	for _, f := range hcm.GetHttpFilters() {
		filterNames[f.GetName()] = true
	}
	healthzOpen := false
	gotTiers := map[string]string{}
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		if len(vh.GetTypedPerFilterConfig()) > 0 {
			t.Errorf("virtual host %q: per-filter config on a virtual host; keep it on routes", vh.GetName())
		}
		for _, r := range vh.GetRoutes() {
			where := routeName(r)
			for name := range r.GetTypedPerFilterConfig() {
				if !filterNames[name] {
					t.Errorf("route %s: typed_per_filter_config key %q names no filter in the chain", where, name)
				}
			}
			a, ok := r.GetTypedPerFilterConfig()[extAuthzFilterName]
			if !ok {
				continue
			}
			per := unpack[*extauthzv3.ExtAuthzPerRoute](t, "ExtAuthzPerRoute", a)
			if per.GetDisabled() && where == "/healthz" {
				healthzOpen = true
			}
			if tier, ok := per.GetCheckSettings().GetContextExtensions()["leasegate.tier"]; ok {
				if !slices.Contains([]string{"read", "write", "critical"}, tier) {
					t.Errorf("route %s: leasegate.tier = %q, not a default tier", where, tier)
				}
				gotTiers[where] = tier
			}
		}
	}
	if !healthzOpen {
		t.Error("no /healthz route with ext_authz disabled")
	}
	for prefix, want := range tierRoutes {
		if got := gotTiers[prefix]; got != want {
			t.Errorf("route %s: leasegate.tier = %q, want %q", prefix, got, want)
		}
	}
}

func routeName(r *routev3.Route) string {
	m := r.GetMatch()
	switch {
	case m.GetPath() != "":
		return m.GetPath()
	case m.GetPrefix() != "":
		return m.GetPrefix()
	default:
		return r.GetName()
	}
}

// TestStorageExamplesPassConditionalCreate: the storage gateways' Check
// requests carry the headers the storage policy reads (Depth for PROPFIND
// Depth: 0 under storage.create, If-None-Match for a create), and nothing
// removes the If-None-Match the CheckResponse sets or the client's own,
// which reaches the backend when leasegate leaves it alone (SPEC §5).
func TestStorageExamplesPassConditionalCreate(t *testing.T) {
	for _, file := range []string{"envoy/storage-gateway.yaml", "storage/envoy/xrootd-gateway.yaml"} {
		t.Run(file, func(t *testing.T) {
			b, err := loadBootstrap(filepath.Join(examplesRoot, file))
			if err != nil {
				t.Fatal(err)
			}
			for _, hcm := range findAll[*hcmv3.HttpConnectionManager](t, b) {
				a := extAuthzOf(t, hcm)
				if a.GetWithRequestBody() != nil {
					t.Error("with_request_body is set: uploads would be buffered for the check")
				}
				if ah := a.GetAllowedHeaders(); ah != nil {
					for _, h := range []string{"authorization", "depth", "if-none-match", "destination", "source", "overwrite"} {
						if !slices.ContainsFunc(ah.GetPatterns(), func(m *matcherv3.StringMatcher) bool { return m.GetExact() == h }) {
							t.Errorf("allowed_headers lacks %s", h)
						}
					}
				}
				for _, ext := range hcm.GetEarlyHeaderMutationExtensions() {
					hm := unpack[*earlymutationv3.HeaderMutation](t, "early_header_mutation", ext.GetTypedConfig())
					for _, m := range hm.GetMutations() {
						if r := strings.ToLower(m.GetRemove()); r == "if-none-match" || r == "depth" {
							t.Errorf("early header mutation removes %s", r)
						}
					}
				}
			}
		})
	}
}
