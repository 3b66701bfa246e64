package issuer

import (
	"go/build"
	"strings"
	"testing"
)

// The issuer clients know nothing of the engine: the import direction is
// authz → authz/issuer, never back, and no lease, tier or route reaches
// here. Any leasegate package in the transitive imports would be a direct
// import of this one; its own subpackage (jwks) is the one allowed.
func TestImportsNoLeasegatePackage(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkg.Imports {
		if strings.HasPrefix(p, "github.com/leasegate/leasegate/") && p != "github.com/leasegate/leasegate/authz/issuer/jwks" {
			t.Errorf("authz/issuer imports %s", p)
		}
	}
}
