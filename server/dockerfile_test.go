package server_test

// The image is checked here without an engine (issue 14 item 6): the
// Dockerfile's shape is read as text, and the configuration it bakes in
// goes through config.Parse, the checks `leasegate -check` runs.

import (
	"bufio"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/leasegate/leasegate/server/config"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line  int    // first line, 1-based
	cmd   string // upper case: FROM, RUN, COPY, ...
	args  string
	stage int // index of the FROM it belongs to
}

// readDockerfile splits ../Dockerfile into instructions. Comments and
// blank lines are dropped; a line ending in a backslash continues.
func readDockerfile(t *testing.T) []instruction {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	start, stage := 0, -1
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (text == "" || strings.HasPrefix(text, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(text, `\`); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(text)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		out = append(out, instruction{line: start, cmd: cmd, args: strings.Join(strings.Fields(args), " "), stage: stage})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur.Len() != 0 {
		t.Fatalf("Dockerfile ends inside a continued line (from line %d)", start)
	}
	if len(out) == 0 || out[0].cmd != "FROM" {
		t.Fatal("Dockerfile does not start with FROM")
	}
	return out
}

func find(ins []instruction, cmd string, stage int) []instruction {
	var out []instruction
	for _, in := range ins {
		if in.cmd == cmd && (stage < 0 || in.stage == stage) {
			out = append(out, in)
		}
	}
	return out
}

// fromImage is the image of a FROM (flags such as --platform dropped) and
// its stage name, if any.
func fromImage(args string) (image, name string) {
	f := slices.DeleteFunc(strings.Fields(args), func(s string) bool { return strings.HasPrefix(s, "--") })
	if len(f) == 0 {
		return "", ""
	}
	if len(f) >= 3 && strings.EqualFold(f[1], "AS") {
		name = f[2]
	}
	return f[0], name
}

var (
	digestPin = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
	// A version tag: starts with a full x.y.z version (golang:1.26.8-bookworm).
	versionTag = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+([-.][A-Za-z0-9.-]+)?$`)
	numericUID = regexp.MustCompile(`^[0-9]+(:[0-9]+)?$`)
	envRef     = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	goLine     = regexp.MustCompile(`(?m)^go ([0-9]+\.[0-9]+)`)
)

// TestDockerfileBaseImagesPinned: every base image is pinned, by a full
// version tag or by digest; none floats on latest or on no tag. The Go
// image's version is the one go.mod asks for.
func TestDockerfileBaseImagesPinned(t *testing.T) {
	ins := readDockerfile(t)
	stages := map[string]bool{}
	gomod, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := goLine.FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	goMinor := string(m[1])
	sawGo := false
	for _, from := range find(ins, "FROM", -1) {
		image, name := fromImage(from.args)
		if name != "" {
			stages[name] = true
		}
		if stages[image] && image != name {
			continue // FROM an earlier stage
		}
		if strings.Contains(image, "$") {
			t.Errorf("line %d: FROM %s: the base image comes from a build argument, so it is not pinned here", from.line, image)
			continue
		}
		ref, _, _ := strings.Cut(image, "@")
		tag := ""
		if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
			ref, tag = ref[:i], ref[i+1:]
		}
		if tag == "latest" || strings.HasPrefix(tag, "latest-") {
			t.Errorf("line %d: FROM %s: latest is not a pin", from.line, image)
		}
		if !digestPin.MatchString(image) && !versionTag.MatchString(tag) {
			t.Errorf("line %d: FROM %s: pin a full version tag (x.y.z) or a digest (@sha256:...)", from.line, image)
		}
		if path.Base(ref) == "golang" {
			sawGo = true
			if !strings.HasPrefix(tag, goMinor+".") {
				t.Errorf("line %d: FROM %s: go.mod says go %s", from.line, image, goMinor)
			}
		}
	}
	if !sawGo {
		t.Error("no golang build stage")
	}
}

// TestDockerfileUserNumeric: the final stage runs as a numeric, non-root
// uid:gid, so Kubernetes' runAsNonRoot can verify it from the image.
func TestDockerfileUserNumeric(t *testing.T) {
	ins := readDockerfile(t)
	final := ins[len(ins)-1].stage
	users := find(ins, "USER", final)
	if len(users) == 0 {
		t.Fatal("the final stage has no USER: it would run as root")
	}
	u := users[len(users)-1]
	if !numericUID.MatchString(u.args) {
		t.Fatalf("line %d: USER %s: must be numeric uid:gid (runAsNonRoot cannot verify a name)", u.line, u.args)
	}
	for _, id := range strings.Split(u.args, ":") {
		if strings.TrimLeft(id, "0") == "" {
			t.Fatalf("line %d: USER %s: uid and gid must not be 0", u.line, u.args)
		}
	}
}

// makeVar is the default of `NAME ?= value` or `NAME := value` in the Makefile.
func makeVar(t *testing.T, makefile, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `\s*[?:]?=\s*(.*)$`).FindStringSubmatch(makefile)
	if m == nil {
		t.Fatalf("Makefile sets no %s", name)
	}
	return strings.TrimSpace(m[1])
}

// TestDockerfileBuildIsMakeBuild: the binary is built by `make build` for
// $TARGETOS/$TARGETARCH, the Dockerfile never calls go build itself, and
// the binary it copies out is the one the Makefile's build writes.
func TestDockerfileBuildIsMakeBuild(t *testing.T) {
	ins := readDockerfile(t)
	mk, err := os.ReadFile(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	makefile := string(mk)
	recipe := regexp.MustCompile(`(?m)^build:.*\n\t(.*)$`).FindStringSubmatch(makefile)
	if recipe == nil || !strings.HasPrefix(recipe[1], `CGO_ENABLED=0 $(GO) build -tags "$(GOTAGS)" -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) .`) {
		t.Fatalf("the Makefile's build recipe is not the static build this test expects: %q", recipe)
	}
	// The image's binary marshals with go-control-plane's generated code
	// (envoy.Codec); without the tag it would quietly take the slow path.
	if tags := strings.Fields(makeVar(t, makefile, "GOTAGS")); !slices.Contains(tags, "vtprotobuf") {
		t.Errorf("GOTAGS = %q, want vtprotobuf among them", tags)
	}

	var build []instruction
	for _, r := range find(ins, "RUN", -1) {
		if strings.Contains(r.args, "go build") {
			t.Errorf("line %d: RUN %s: build with make build, not go build, so the image and a local build cannot drift", r.line, r.args)
		}
		if strings.Contains(r.args, "make build") {
			build = append(build, r)
		}
	}
	if len(build) != 1 {
		t.Fatalf("want one RUN ... make build, found %d", len(build))
	}
	b := build[0]
	want := "GOOS=$TARGETOS GOARCH=$TARGETARCH make build VERSION=$VERSION"
	if b.args != want {
		t.Errorf("line %d: RUN %s\nwant RUN %s", b.line, b.args, want)
	}
	var args []string
	for _, a := range find(ins, "ARG", b.stage) {
		if a.line < b.line {
			for _, f := range strings.Fields(a.args) {
				n, _, _ := strings.Cut(f, "=")
				args = append(args, n)
			}
		}
	}
	for _, a := range []string{"TARGETOS", "TARGETARCH", "VERSION"} {
		if !slices.Contains(args, a) {
			t.Errorf("ARG %s is not declared in the build stage before line %d", a, b.line)
		}
	}

	// The runtime stage copies the Makefile's $(BIN) from the build
	// stage's WORKDIR.
	workdirs := find(ins, "WORKDIR", b.stage)
	if len(workdirs) == 0 {
		t.Fatal("the build stage has no WORKDIR")
	}
	bin := path.Join(workdirs[len(workdirs)-1].args, makeVar(t, makefile, "BIN"))
	_, stageName := fromImage(find(ins, "FROM", b.stage)[0].args)
	final := ins[len(ins)-1].stage
	found := false
	for _, c := range find(ins, "COPY", final) {
		if strings.HasPrefix(c.args, "--from="+stageName+" ") {
			f := strings.Fields(c.args)
			found = found || f[1] == bin
		}
	}
	if !found {
		t.Errorf("the final stage does not COPY --from=%s %s (what make build writes)", stageName, bin)
	}
}

// containerConfig is the file the Dockerfile installs as the default
// config, checked to be the one CMD passes to -config.
func containerConfig(t *testing.T) string {
	t.Helper()
	ins := readDockerfile(t)
	final := ins[len(ins)-1].stage
	const dest = "/etc/leasegate/leasegate.yaml"
	var src string
	for _, c := range find(ins, "COPY", final) {
		f := strings.Fields(c.args)
		if len(f) == 2 && f[1] == dest {
			src = f[0]
		}
	}
	if src != "examples/container/leasegate.yaml" {
		t.Fatalf("the image's %s is %q, want examples/container/leasegate.yaml", dest, src)
	}
	cmds := find(ins, "CMD", final)
	if len(cmds) == 0 || !strings.Contains(cmds[len(cmds)-1].args, `"-config", "`+dest+`"`) {
		t.Fatalf("CMD does not run -config %s: %v", dest, cmds)
	}
	return filepath.Join("..", filepath.FromSlash(src))
}

// containerEnv is a complete environment for the container config.
var containerEnv = map[string]string{
	"LEASEGATE_ISSUER":                 "https://id.example.org/",
	"LEASEGATE_INTROSPECTION_ENDPOINT": "https://id.example.org/oauth2/introspect",
	"LEASEGATE_CLIENT_ID":              "leasegate",
	"LEASEGATE_CLIENT_SECRET":          "client-s3cret",
	"LEASEGATE_AUDIENCE":               "https://storage.example.org",
	"LEASEGATE_ADMIN_SECRET":           "admin-s3cret",
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// TestContainerConfigPassesCheck: the config baked into the image passes
// the checks -check runs given its environment, listens beyond loopback
// on ports the image EXPOSEs, and fails, naming the variable, when any
// one of its variables is unset or empty.
func TestContainerConfigPassesCheck(t *testing.T) {
	file := containerConfig(t)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, m := range envRef.FindAllStringSubmatch(string(data), -1) {
		if !slices.Contains(refs, m[1]) {
			refs = append(refs, m[1])
		}
	}
	for _, v := range refs {
		if _, ok := containerEnv[v]; !ok {
			t.Fatalf("%s uses ${%s}: add it to containerEnv (and the file's header)", file, v)
		}
		if !strings.Contains(string(data), "#   "+v+" ") {
			t.Errorf("%s does not describe ${%s} in its header", file, v)
		}
	}
	for _, v := range []string{"LEASEGATE_ISSUER", "LEASEGATE_INTROSPECTION_ENDPOINT", "LEASEGATE_CLIENT_ID", "LEASEGATE_CLIENT_SECRET", "LEASEGATE_ADMIN_SECRET"} {
		if !slices.Contains(refs, v) {
			t.Errorf("%s does not take %s from the environment", file, v)
		}
	}

	cfg, err := config.Parse(file, data, lookup(containerEnv))
	if err != nil {
		t.Fatalf("-check refuses the image's config:\n%v", err)
	}
	if got := cfg.Issuers[0].Issuer; got != containerEnv["LEASEGATE_ISSUER"] {
		t.Errorf("issuer = %q, want it from LEASEGATE_ISSUER", got)
	}
	if cfg.Admin.Secret == "" {
		t.Error("admin.secret is empty")
	}

	ins := readDockerfile(t)
	var exposed []string
	for _, e := range find(ins, "EXPOSE", ins[len(ins)-1].stage) {
		exposed = append(exposed, strings.Fields(e.args)...)
	}
	for field, addr := range map[string]string{"listen.grpc": cfg.Listen.GRPC, "listen.http": cfg.Listen.HTTP, "listen.metrics": cfg.Listen.Metrics, "listen.admin": cfg.Listen.Admin} {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("%s = %q: %v", field, addr, err)
			continue
		}
		if host != "" && host != "0.0.0.0" && host != "::" {
			t.Errorf("%s = %q: a container config listens on all interfaces", field, addr)
		}
		if !slices.Contains(exposed, port) {
			t.Errorf("%s = %q: port %s is not EXPOSEd (EXPOSE %v)", field, addr, port, exposed)
		}
	}

	for _, v := range refs {
		t.Run(v, func(t *testing.T) {
			for _, how := range []string{"unset", "empty"} {
				env := map[string]string{}
				for k, val := range containerEnv {
					env[k] = val
				}
				if how == "unset" {
					delete(env, v)
				} else {
					env[v] = ""
				}
				_, err := config.Parse(file, data, lookup(env))
				if err == nil {
					t.Errorf("%s %s: -check accepts the config", v, how)
					continue
				}
				if how == "unset" && !strings.Contains(err.Error(), "environment variable "+v+" is not set") {
					t.Errorf("%s unset: the problems do not name it:\n%v", v, err)
				}
			}
		})
	}
}

// TestDockerignore: the build context leaves out history, caches and
// build output.
func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimPrefix(l, "/"))
		}
	}
	for _, want := range []string{".git", ".cache", "dist", "leasegate", "*.test"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore does not exclude %s (has %v)", want, patterns)
		}
	}
	for _, p := range patterns {
		if strings.HasPrefix(p, "!") {
			t.Errorf(".dockerignore re-includes %s", p)
		}
	}
}
