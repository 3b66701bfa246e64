package storage

import (
	"path/filepath"
	"time"
)

// LeasegateOptions are what a test changes in the shipped leasegate.yaml.
type LeasegateOptions struct {
	// Kind is the proxy ("nginx", "caddy", "envoy"): examples/storage/<kind>/leasegate.yaml.
	Kind     string
	Examples string
	// Issuer is the token issuer's exact iss.
	Issuer string
	// Introspection is its RFC 7662 endpoint, called without client
	// authentication (ORY Hydra's admin port).
	Introspection string
	// ReadWindow replaces the read tier's 60s, so a test can watch it
	// close; zero keeps 60s.
	ReadWindow time.Duration
	// WriteWindow, when set, replaces the write tier's 5s.
	WriteWindow time.Duration
	// ConditionalPrefix, when set, adds a route before the catch-all that
	// marks that prefix conditional_create: true (as for a backend that
	// honours If-None-Match: *).
	ConditionalPrefix string
}

// LeasegateConfig renders the shipped leasegate.yaml for a test: listeners
// on 127.0.0.1:0, the test's issuer, and only the changes o names.
func LeasegateConfig(o LeasegateOptions) ([]byte, error) {
	r := [][2]string{
		{`grpc: "127.0.0.1:9001"`, `grpc: "127.0.0.1:0"`},
		{`admin: "127.0.0.1:9191"`, `admin: "127.0.0.1:0"`},
		{`metrics: "127.0.0.1:9190"`, `metrics: "127.0.0.1:0"`},
		{`issuer: "https://wlcg.cloud.cnaf.infn.it/"`, `issuer: "` + o.Issuer + `"`},
		{`endpoint: "https://wlcg.cloud.cnaf.infn.it/introspect"`, `endpoint: "` + o.Introspection + `"`},
		{"      auth: client_secret_basic\n      client_id: \"storage-gateway\"\n      client_secret: \"${LEASEGATE_CLIENT_SECRET}\"\n",
			"      auth: none\n"},
	}
	if o.Kind != "envoy" {
		r = append(r, [2]string{`http: "127.0.0.1:9002"`, `http: "127.0.0.1:0"`})
	}
	if o.ReadWindow > 0 {
		r = append(r, [2]string{"read:     { window: 60s,", "read:     { window: " + o.ReadWindow.String() + ","})
	}
	if o.WriteWindow > 0 {
		r = append(r, [2]string{"write:    { window: 5s }", "write:    { window: " + o.WriteWindow.String() + " }"})
	}
	if o.ConditionalPrefix != "" {
		r = append(r, [2]string{"routes:\n", "routes:\n  - prefix: " + o.ConditionalPrefix +
			"\n    require: wlcg_storage\n    conditional_create: true\n"})
	}
	return render(filepath.Join(o.Examples, "storage", o.Kind, "leasegate.yaml"), r)
}
