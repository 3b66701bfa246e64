package push

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/leasegate/leasegate/authz/denylog"
	"github.com/leasegate/leasegate/authz/issuer"
)

// Sources: the receivers, as revocations, metrics and logs name them.
const (
	SourceBackchannel = "backchannel"
	SourceSSF         = "ssf"
)

// Paths the receivers are served at (SPEC §9).
const (
	PathBackchannel = "/backchannel-logout"
	PathSSF         = "/ssf/events"
)

// MaxBodyBytes bounds a request body: a logout token or SET is a few KiB.
const MaxBodyBytes = 64 << 10

// DefaultClockSkew is IssuerConfig.ClockSkew's default, the issuers'.
const DefaultClockSkew = 60 * time.Second

// IssuerConfig is one issuer's receivers. An issuer with neither
// ClientIDs nor Audience pushes nothing and is left out.
type IssuerConfig struct {
	Name   string // leasegate's issuer name, as revocations name it
	Issuer string // the exact iss of its tokens
	// JWKSURI is its key set; "" finds it by OIDC discovery from Issuer.
	JWKSURI string
	// ClockSkew: a logout token's iat must lie within it of now, a SET's
	// iat at most it ahead. Default DefaultClockSkew.
	ClockSkew time.Duration
	// ClientIDs are the accepted aud of its logout tokens
	// (backchannel_logout.client_ids); none: no back-channel logout.
	ClientIDs []string
	// Audience is the aud its SETs must carry (ssf.audience); "": no SETs.
	Audience string
}

func (c IssuerConfig) pushes() bool { return len(c.ClientIDs) > 0 || c.Audience != "" }

// Config is what New needs.
type Config struct {
	Issuers []IssuerConfig
	// Revoker applies what a verified signal names; required.
	Revoker Revoker
	// Replay remembers the jti of accepted tokens. Pass the same one to the
	// Receivers of every configuration generation, so a reload forgets
	// nothing; nil: New makes one of DefaultReplayEntries.
	Replay *Replay
	// LeaseMax is lease.max: a SET issued longer ago (plus the skew) is
	// accepted and ignored, since every lease validated before its event
	// has expired by then. Default 10m.
	LeaseMax time.Duration
	// Now is the clock; time.Now when nil.
	Now            func() time.Time
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	// Metrics: nil counts nothing.
	Metrics *Metrics
	// RefusalLog limits the "push signal refused" lines
	// (log.denials_per_second, a bucket of their own, so a flood of
	// garbage pushes cannot flood the log or use up the check denials'
	// lines); nil logs every one. Accepted pushes are always logged.
	RefusalLog *denylog.Limit
}

// Problem is one reason Validate refuses a configuration: Issuer indexes
// Config.Issuers, Field is the key inside it as SPEC §9 spells it
// ("backchannel_logout.client_ids", "ssf.audience", "jwks_uri").
type Problem struct {
	Issuer int
	Field  string
	Msg    string
}

func (p Problem) Error() string { return fmt.Sprintf("issuers[%d].%s: %s", p.Issuer, p.Field, p.Msg) }

// Validate reports every problem of the receivers' settings without I/O;
// New refuses exactly these (and a missing Revoker).
func Validate(issuers []IssuerConfig) []Problem {
	var ps []Problem
	add := func(i int, field, msg string) { ps = append(ps, Problem{i, field, msg}) }
	for i, c := range issuers {
		if !c.pushes() {
			continue
		}
		if slices.Contains(c.ClientIDs, "") {
			add(i, "backchannel_logout.client_ids", "must not contain an empty string")
		}
		// The key set's own checks: issuer, jwks_uri, clock_skew.
		for _, p := range c.jwtConfig().Validate() {
			add(i, p.Field, p.Msg)
		}
	}
	return ps
}

// jwtConfig is the key set's configuration: the issuer's keys, nothing of
// its access-token rules.
func (c IssuerConfig) jwtConfig() issuer.JWTConfig {
	return issuer.JWTConfig{Name: c.Name, Issuer: c.Issuer, JWKSURI: c.JWKSURI, ClockSkew: c.ClockSkew}
}
