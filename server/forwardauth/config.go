package forwardauth

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Modes: the proxy conventions (listen.http_mode).
const (
	// ModeEnvoy: Envoy's http_service repeats the original method and
	// sends PathPrefix + the original path and query as the request target.
	ModeEnvoy = "envoy"
	// ModeNginx: nginx auth_request; the original request travels in
	// X-Original-Method, X-Original-URI and X-Original-Host, all three
	// required (SPEC §4).
	ModeNginx = "nginx"
	// ModeForwarded: Traefik ForwardAuth and Caddy forward_auth;
	// X-Forwarded-Method, X-Forwarded-Uri and X-Forwarded-Host, all three
	// required.
	ModeForwarded = "forwarded"
	// ModeAuto picks nginx when X-Original-Method or X-Original-URI is
	// present, else forwarded when X-Forwarded-Method or X-Forwarded-Uri is,
	// else envoy; a convention so chosen needs all three of its headers.
	// Only safe when the proxy in front always overwrites (or always drops)
	// all of those headers: otherwise a client chooses the convention and
	// the method the tier is picked by.
	ModeAuto = "auto"
)

// DefaultMode is the Mode of a Config that names none.
const DefaultMode = ModeEnvoy

// DefaultPathPrefix is the Envoy http_service path_prefix stripped in
// envoy mode when Config.PathPrefix is empty.
const DefaultPathPrefix = "/authz"

// ErrNoEngine is returned by New when Config.Engine is nil.
var ErrNoEngine = errors.New("forwardauth: Config.Engine is required")

// Config configures New: the operator's settings (Mode, PathPrefix, Realm),
// which SetDefaults completes and Validate checks, and the dependencies
// (Engine, Logger).
type Config struct {
	// Mode is the proxy convention: ModeEnvoy (DefaultMode, when empty),
	// ModeNginx, ModeForwarded or ModeAuto.
	Mode string
	// PathPrefix is Envoy's http_service path_prefix, stripped in envoy
	// mode: "" means DefaultPathPrefix, "/" means no prefix. A request
	// target that does not start with it is refused (400).
	PathPrefix string
	// Realm is put in the challenge of the denials the handler makes on
	// its own (malformed proxy headers, an identity it cannot pass, an
	// underscore twin); the engine's own denials carry its realm, which it
	// should equal. Empty: no realm attribute.
	Realm string
	// Engine returns the current engine (swapped on reload); called once per
	// request, so it must be cheap. A nil Checker fails closed with 503.
	Engine func() Checker
	// Logger receives denials the handler makes and its faults;
	// slog.Default() when nil. Never a token.
	Logger *slog.Logger
}

// SetDefaults fills the settings left empty: Mode DefaultMode, PathPrefix
// DefaultPathPrefix. It is idempotent.
func (c *Config) SetDefaults() {
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	if c.PathPrefix == "" {
		c.PathPrefix = DefaultPathPrefix
	}
}

// Problem is one reason Validate refuses a Config. Field is the setting as
// spelled here ("mode", "path_prefix"), for the caller to map onto its own
// configuration key; Msg does not repeat it.
type Problem struct{ Field, Msg string }

func (p Problem) Error() string { return p.Field + ": " + p.Msg }

// Validate reports every problem of the operator's settings, after
// defaults, with no I/O: an unknown Mode, a PathPrefix that is not an
// absolute path without query or fragment. New refuses exactly these, and
// a nil Engine besides.
func (c Config) Validate() []Problem {
	c.SetDefaults()
	var ps []Problem
	switch c.Mode {
	case ModeEnvoy, ModeNginx, ModeForwarded, ModeAuto:
	default:
		ps = append(ps, Problem{"mode", fmt.Sprintf("%q is not one of envoy, nginx, forwarded, auto", c.Mode)})
	}
	if p := c.PathPrefix; p[0] != '/' || strings.ContainsAny(p, "?#") || !isURIText(p) {
		ps = append(ps, Problem{"path_prefix", fmt.Sprintf("%q must be an absolute path without query or fragment", p)})
	}
	return ps
}
