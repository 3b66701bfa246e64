package authz

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/leasegate/leasegate/authz/issuer"
	"github.com/leasegate/leasegate/authz/trust"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
)

// validIntrospection and validJWT are issuers ValidateIssuers accepts.
func validIntrospection() IssuerConfig {
	return IssuerConfig{
		Name: "intro", Issuer: "https://intro.example/", Mode: ModeIntrospection, DefaultForOpaque: true,
		Introspection: issuer.IntrospectionConfig{Endpoint: "http://127.0.0.1:1/introspect", Auth: issuer.AuthNone},
	}
}

func validJWT() IssuerConfig {
	return IssuerConfig{
		Name: "jwt", Issuer: "https://jwt.example/", Mode: ModeJWT,
		JWT:       issuer.JWTConfig{JWKSURI: "http://127.0.0.1:1/jwks"},
		Audiences: []string{"https://storage.example.org"},
	}
}

func TestValidateIssuers(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(intro, jwt *IssuerConfig)
		field string // "" = valid; else "issuers[i].field" of a problem
		msg   string
	}{
		{name: "valid", mod: func(_, _ *IssuerConfig) {}},
		{name: "jwt without audiences", mod: func(_, j *IssuerConfig) { j.Audiences = nil },
			field: "issuers[1].audiences", msg: "is required for a jwt issuer (RFC 9068 §4)"},
		{name: "jwt+introspection without audiences", mod: func(_, j *IssuerConfig) {
			j.Audiences, j.Mode, j.Introspection = nil, ModeJWTIntrospection, issuer.IntrospectionConfig{Endpoint: "https://jwt.example/i", Auth: issuer.AuthNone}
		}, field: "issuers[1].audiences", msg: "is required for a jwt+introspection issuer"},
		{name: "jwt audiences only in issuer.JWTConfig", mod: func(_, j *IssuerConfig) { j.JWT.Audiences, j.Audiences = j.Audiences, nil }},
		{name: "jwt with accept_any_audience", mod: func(_, j *IssuerConfig) { j.Audiences, j.AcceptAnyAudience = nil, true }},
		{name: "accept_any_audience and audiences", mod: func(_, j *IssuerConfig) { j.AcceptAnyAudience = true },
			field: "issuers[1].accept_any_audience", msg: "contradicts audiences"},
		{name: "introspection without audiences", mod: func(i, _ *IssuerConfig) { i.Audiences = nil }},
		{name: "empty audience on an introspection issuer", mod: func(i, _ *IssuerConfig) { i.Audiences = []string{""} },
			field: "issuers[0].audiences", msg: "must not contain an empty string"},
		{name: "empty audience on a jwt issuer", mod: func(_, j *IssuerConfig) { j.Audiences = []string{"a", ""} },
			field: "issuers[1].audiences", msg: "must not contain an empty string"},
		{name: "auth none with a client secret", mod: func(i, _ *IssuerConfig) { i.Introspection.ClientSecret = "s" },
			field: "issuers[0].introspection.client_secret", msg: "would never be sent"},
		{name: "credentials in the endpoint", mod: func(i, _ *IssuerConfig) { i.Introspection.Endpoint = "https://u:p@intro.example/i" },
			field: "issuers[0].introspection.endpoint", msg: "credentials in the URL"},
		{name: "default_for_opaque on jwt+introspection", mod: func(i, j *IssuerConfig) {
			i.DefaultForOpaque, j.DefaultForOpaque = false, true
			j.Mode, j.Introspection = ModeJWTIntrospection, issuer.IntrospectionConfig{Endpoint: "https://jwt.example/i", Auth: issuer.AuthNone}
		}, field: "issuers[1].default_for_opaque", msg: "can never accept an opaque token"},
		{name: "default_for_opaque on jwt", mod: func(i, j *IssuerConfig) { i.DefaultForOpaque, j.DefaultForOpaque = false, true },
			field: "issuers[1].default_for_opaque", msg: "can never accept an opaque token"},
		{name: "two default_for_opaque", mod: func(_, j *IssuerConfig) { *j = validIntrospection(); j.Name, j.Issuer = "other", "https://other/" },
			field: "issuers[1].default_for_opaque", msg: "at most one"},
		{name: "duplicate name", mod: func(i, j *IssuerConfig) { j.Name = i.Name }, field: "issuers[1].name", msg: "used by two issuers"},
		{name: "duplicate iss", mod: func(i, j *IssuerConfig) { j.Issuer = i.Issuer }, field: "issuers[1].issuer", msg: "configured twice"},
		{name: "unknown mode", mod: func(i, _ *IssuerConfig) { i.Mode = "magic" }, field: "issuers[0].mode", msg: `"magic" is not`},
		{name: "negative breaker", mod: func(i, _ *IssuerConfig) { i.BreakerFailures = -1 }, field: "issuers[0].circuit_breaker", msg: "must not be negative"},
		{name: "jwt needs a URL issuer for discovery", mod: func(_, j *IssuerConfig) { j.JWT.JWKSURI, j.Issuer = "", "urn:x" },
			field: "issuers[1].issuer", msg: "OIDC discovery"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			intro, jwt := validIntrospection(), validJWT()
			tc.mod(&intro, &jwt)
			ps := trust.ValidateIssuers([]IssuerConfig{intro, jwt})
			if tc.field == "" {
				if len(ps) > 0 {
					t.Fatalf("refused: %v", ps)
				}
				return
			}
			for _, p := range ps {
				if strings.HasPrefix(p.Error(), tc.field+": ") && strings.Contains(p.Msg, tc.msg) {
					return
				}
			}
			t.Fatalf("problems %v lack %s: …%s…", ps, tc.field, tc.msg)
		})
	}
}

// New refuses exactly what ValidateIssuers reports, so a config that
// passes `leasegate -check` also starts.
func TestNewAgreesWithValidateIssuers(t *testing.T) {
	pol, err := policy.New(policy.Config{Tiers: policy.DefaultTiers(), LeaseMax: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := leasecache.New(leasecache.Config{MaxMemoryMB: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cache.Close() })
	withJWT := func(mod func(*IssuerConfig)) []IssuerConfig {
		j := validJWT()
		mod(&j)
		return []IssuerConfig{validIntrospection(), j}
	}
	for name, issuers := range map[string][]IssuerConfig{
		"valid":                 withJWT(func(*IssuerConfig) {}),
		"jwt without audiences": withJWT(func(j *IssuerConfig) { j.Audiences = nil }),
		"accept_any_audience":   withJWT(func(j *IssuerConfig) { j.Audiences, j.AcceptAnyAudience = nil, true }),
		"empty audience":        withJWT(func(j *IssuerConfig) { j.Audiences = []string{""} }),
		"none with secret": withJWT(func(j *IssuerConfig) {
			*j = validIntrospection()
			j.Name, j.Issuer, j.DefaultForOpaque = "b", "https://b/", false
			j.Introspection.ClientSecret = "s"
		}),
		"endpoint credentials": withJWT(func(j *IssuerConfig) {
			*j = validIntrospection()
			j.Name, j.Issuer, j.DefaultForOpaque = "b", "https://b/", false
			j.Introspection.Endpoint = "http://a:b@h/"
		}),
		"two opaque defaults": withJWT(func(j *IssuerConfig) { *j = validIntrospection(); j.Name, j.Issuer = "b", "https://b/" }),
		"same iss twice":      withJWT(func(j *IssuerConfig) { j.Issuer = validIntrospection().Issuer }),
		"jwt default_for_opaque": withJWT(func(j *IssuerConfig) {
			j.DefaultForOpaque = true
		}),
	} {
		t.Run(name, func(t *testing.T) {
			ps := trust.ValidateIssuers(issuers)
			eng, err := New(context.Background(), Config{Policy: pol, Cache: cache, Issuers: issuers, Logger: discardLogger()})
			if err == nil {
				eng.Close()
			}
			if (len(ps) == 0) != (err == nil) {
				t.Fatalf("ValidateIssuers: %v; New: %v", ps, err)
			}
		})
	}
}

// With accept_any_audience a jwt issuer takes any aud; with audiences it
// takes only those.
func TestEngineAcceptAnyAudience(t *testing.T) {
	key := newTestKey(t, jwa.RS256, "k1", 0)
	jwks := newFakeJWKSIssuer(t, key)
	for _, tc := range []struct {
		name      string
		audiences []string
		anyAud    bool
		aud       string
		allow     bool
	}{
		{name: "any audience, foreign aud", anyAud: true, aud: "https://elsewhere.example", allow: true},
		{name: "audiences, foreign aud", audiences: []string{"https://storage.example.org"}, aud: "https://elsewhere.example"},
		{name: "audiences, own aud", audiences: []string{"https://storage.example.org"}, aud: "https://storage.example.org", allow: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEngEnv(t, engOpts{config: func(c *Config) {
				c.Issuers = []IssuerConfig{{
					Name: "jwt", Issuer: jwks.issuer(), Mode: ModeJWT,
					JWT:       issuer.JWTConfig{JWKSURI: jwks.URL + "/jwks"},
					Audiences: tc.audiences, AcceptAnyAudience: tc.anyAud,
				}}
			}})
			now := env.clock.Now()
			tok := key.sign(t, map[string]any{
				"iss": jwks.issuer(), "sub": "alice", "aud": tc.aud,
				"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "scope": "read",
			}, nil)
			d := env.check("GET", "/f", tok)
			if d.Allow != tc.allow {
				t.Fatalf("allow = %v (%s: %s), want %v", d.Allow, d.Reason, d.Description, tc.allow)
			}
		})
	}
}
