package server

import (
	"fmt"
	"os"
	"strings"
)

// readSecretFiles resolves *_file keys; a secret given both ways is an
// error. So is a secret that is configured but empty (SPEC §6): an empty
// file, a ${VAR} set to "" or a bare "" must never read as "no secret",
// which for admin.secret would turn admin authentication off.
func (c *Config) readSecretFiles(ps *Problems) {
	read := func(field, file string, dst *string) {
		fileField := field + "_file"
		_, keyed := c.lines[field]
		_, fileKeyed := c.lines[fileField]
		switch {
		case ps.has(field) || ps.has(fileField):
			// An unset ${VAR}: said already.
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
	for i := range c.Issuers {
		read(fmt.Sprintf("issuers[%d].introspection.client_secret", i), c.Issuers[i].Introspection.ClientSecretFile, &c.Issuers[i].Introspection.ClientSecret)
	}
	read("admin.secret", c.Admin.SecretFile, &c.Admin.Secret)
}
