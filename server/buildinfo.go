package server

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Build is what leasegate_build_info and `leasegate -version` say about
// the running binary (SPEC §6).
type Build struct{ Version, Revision, GoVersion string }

// BuildInfo reads the binary's build information (runtime/debug). version
// is the one set at link time (-X main.version); when that is "" or "dev",
// the module version of a `go install module@version` build is used.
// Revision is the VCS commit, "-dirty" added for a modified tree, or
// "unknown" when the build recorded none (-buildvcs=false, no .git).
func BuildInfo(version string) Build {
	b := Build{Version: version, Revision: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if v := bi.Main.Version; (b.Version == "" || b.Version == "dev") && v != "" && v != "(devel)" {
			b.Version = v
		}
		modified := false
		for _, kv := range bi.Settings {
			switch kv.Key {
			case "vcs.revision":
				b.Revision = kv.Value
			case "vcs.modified":
				modified = kv.Value == "true"
			}
		}
		if modified && b.Revision != "unknown" {
			b.Revision += "-dirty"
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	return b
}

// String is the -version line.
func (b Build) String() string {
	return fmt.Sprintf("leasegate %s (revision %s, %s)", b.Version, b.Revision, b.GoVersion)
}
