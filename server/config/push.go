package config

import (
	"fmt"

	"github.com/leasegate/leasegate/server/push"
)

// The push revocation settings (SPEC §9): listen.push (config.go) and,
// per issuer, backchannel_logout and ssf. Their checks are push's.

// BackchannelLogoutConfig is an issuer's OpenID Connect Back-Channel
// Logout receiver.
type BackchannelLogoutConfig struct {
	// ClientIDs are the accepted aud of its logout tokens: the client ids
	// registered with backchannel_logout_uri pointing at leasegate.
	// Default none: no back-channel logout from this issuer.
	ClientIDs []string `yaml:"client_ids"`
}

// SSFConfig is an issuer's Security Event Token receiver (RFC 8935); the
// issuer is the transmitter.
type SSFConfig struct {
	// Audience is the aud its SETs must carry. Default "": no SETs.
	Audience string `yaml:"audience"`
}

// PushIssuers is the receivers' view of the issuers.
func (c *Config) PushIssuers() []push.IssuerConfig {
	out := make([]push.IssuerConfig, 0, len(c.Issuers))
	for _, is := range c.Issuers {
		out = append(out, push.IssuerConfig{
			Name: is.Name, Issuer: is.Issuer, JWKSURI: is.JWKSURI, ClockSkew: is.ClockSkew,
			ClientIDs: is.BackchannelLogout.ClientIDs, Audience: is.SSF.Audience,
		})
	}
	return out
}

// checkPush runs the receivers' own checks (push.Validate, which push.New
// runs too); a key already refused is not refused twice.
func (c *Config) checkPush(ps *Problems) {
	for _, p := range push.Validate(c.PushIssuers()) {
		f := fmt.Sprintf("issuers[%d].%s", p.Issuer, p.Field)
		if !ps.has(f) {
			c.problem(ps, f, p.Msg)
		}
	}
}
