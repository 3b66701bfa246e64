package forwardauth

import (
	"errors"
	"slices"
	"testing"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.Mode != ModeEnvoy || c.PathPrefix != DefaultPathPrefix {
		t.Errorf("defaults %+v, want mode %s, prefix %s", c, ModeEnvoy, DefaultPathPrefix)
	}
	c = Config{Mode: ModeNginx, PathPrefix: "/"}
	c.SetDefaults()
	if c.Mode != ModeNginx || c.PathPrefix != "/" {
		t.Errorf("SetDefaults changed settings given: %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []Problem
	}{
		{name: "zero value", cfg: Config{}},
		{name: "every mode", cfg: Config{Mode: ModeAuto, PathPrefix: "/ext-authz"}},
		{name: "no prefix", cfg: Config{Mode: ModeForwarded, PathPrefix: "/"}},
		{
			name: "unknown mode", cfg: Config{Mode: "haproxy"},
			want: []Problem{{"mode", `"haproxy" is not one of envoy, nginx, forwarded, auto`}},
		},
		{
			name: "every problem at once", cfg: Config{Mode: "Envoy", PathPrefix: "/a z"},
			want: []Problem{
				{"mode", `"Envoy" is not one of envoy, nginx, forwarded, auto`},
				{"path_prefix", `"/a z" must be an absolute path without query or fragment`},
			},
		},
		{
			name: "prefix with a fragment", cfg: Config{PathPrefix: "/authz#x"},
			want: []Problem{{"path_prefix", `"/authz#x" must be an absolute path without query or fragment`}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.Validate(); !slices.Equal(got, tc.want) {
				t.Errorf("Validate() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestNewRefusesWhatValidateReports: New and Validate never disagree, and
// the engine is a dependency New requires besides.
func TestNewRefusesWhatValidateReports(t *testing.T) {
	engine := func() Checker { return &fakeChecker{} }
	bad := Config{Mode: "haproxy", PathPrefix: "x", Engine: engine}
	_, err := New(bad)
	for _, p := range bad.Validate() {
		if !errors.Is(err, p) {
			t.Errorf("New error %v lacks %v", err, p)
		}
	}
	if _, err := New(Config{}); !errors.Is(err, ErrNoEngine) {
		t.Errorf("New(Config{}) = %v, want ErrNoEngine", err)
	}
}
