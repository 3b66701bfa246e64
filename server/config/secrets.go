package config

import (
	"fmt"
	"os"
	"strings"
)

// readSecretFiles resolves the *_file keys of the secrets (SPEC §6).
func (c *Config) readSecretFiles(ps *Problems) {
	for i := range c.Issuers {
		in := &c.Issuers[i].Introspection
		c.readSecret(ps, fmt.Sprintf("issuers[%d].introspection.client_secret", i), in.ClientSecretFile, &in.ClientSecret)
	}
	c.readSecret(ps, "admin.secret", c.Admin.SecretFile, &c.Admin.Secret)
	if f := c.Fleet; f != nil {
		c.readSecret(ps, "fleet.redis.password", f.Redis.PasswordFile, &f.Redis.Password)
		// fleet.secret has no inline form: only secret_file names it.
		c.readSecret(ps, "fleet.secret", f.SecretFile, &f.secret)
	}
}

// readSecret sets *dst, the secret at field, from file when one is named.
// A secret given both ways is an error, and so is one given inline. So is a
// secret that is configured but empty: an empty file, a ${VAR} set to "" or
// a bare "" must never read as "no secret", which for admin.secret would
// turn admin authentication off.
func (c *Config) readSecret(ps *Problems, field, file string, dst *string) {
	fileField := field + "_file"
	_, keyed := c.lines[field]
	_, fileKeyed := c.lines[fileField]
	switch {
	case ps.has(field) || ps.has(fileField):
		// An unset ${VAR} or a value of the wrong type: said already.
	case file == "" && fileKeyed:
		c.problem(ps, fileField, "is configured but empty")
	case file == "" && *dst != "" && !c.fromEnv[field]:
		c.problem(ps, field, "inline secrets are refused: use ${ENV_VAR} or "+fileField[strings.LastIndexByte(fileField, '.')+1:])
	case file == "" && keyed && strings.TrimSpace(*dst) == "":
		how := "an empty value"
		if c.fromEnv[field] {
			how = "its environment variable is empty"
		}
		c.problem(ps, field, "is configured but empty ("+how+"); remove the key for no secret")
	case file == "":
	case keyed:
		c.problem(ps, field, "set either the secret or its _file, not both")
	default:
		b, err := os.ReadFile(file)
		if err != nil {
			c.problem(ps, fileField, fmt.Sprintf("read secret: %v", err))
			return
		}
		*dst = strings.TrimRight(string(b), "\r\n")
		if strings.TrimSpace(*dst) == "" {
			c.problem(ps, fileField, fmt.Sprintf("%s is empty or blank; a configured secret must not be", file))
		}
	}
}
