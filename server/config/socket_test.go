package config

import (
	"os/user"
	"strings"
	"testing"

	"github.com/leasegate/leasegate/server/unixsocket"
)

const socketBase = `
issuers:
  - name: hydra
    issuer: "http://127.0.0.1:4444"
    default_for_opaque: true
    introspection: { endpoint: "http://127.0.0.1:4445/introspect", auth: none }
listen:
`

func TestParseUnixSocket(t *testing.T) {
	cfg, err := Parse("unix.yaml", []byte(socketBase+`  grpc: "unix:///run/leasegate/authz.sock"
  grpc_socket: { user: "0", group: "0" }
`), testEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	path, unix := cfg.Listen.UnixSocket()
	mode, merr := cfg.Listen.GRPCSocket.FileMode()
	uid, gid, oerr := cfg.Listen.GRPCSocket.Owner()
	if !unix || path != "/run/leasegate/authz.sock" || merr != nil || mode != 0o660 || oerr != nil || uid != 0 || gid != 0 {
		t.Fatalf("unix socket %q (%v), mode %v (%v), owner %d:%d (%v)", path, unix, mode, merr, uid, gid, oerr)
	}
	if u, err := user.Current(); err == nil {
		c2, err := Parse("names.yaml", []byte(socketBase+`  grpc: "unix:///run/leasegate/authz.sock"
  grpc_socket: { mode: "0600", user: "`+u.Username+`" }
`), testEnv(nil))
		if err != nil {
			t.Fatalf("user by name: %v", err)
		}
		if uid, gid, err := c2.Listen.GRPCSocket.Owner(); err != nil || uid < 0 || gid != -1 {
			t.Fatalf("owner of %s: %d:%d, %v", u.Username, uid, gid, err)
		}
	}
}

func TestParseUnixSocketProblems(t *testing.T) {
	long := "/" + strings.Repeat("d", unixsocket.MaxPath)
	longDir := "/" + strings.Repeat("d", unixsocket.MaxDir) + "/a.sock"
	tests := []struct{ listen, want string }{
		{`grpc: "unix://run/authz.sock"`, "listen.grpc: \"unix://run/authz.sock\": a unix socket needs a clean absolute path"},
		{`grpc: "unix:///run/../authz.sock"`, "a unix socket needs a clean absolute path"},
		{`grpc: "unix://` + long + `"`, "listen.grpc: socket path is 108 bytes, at most 107"},
		{`grpc: "unix://` + longDir + `"`, "listen.grpc: socket directory is 84 bytes, at most 83"},
		{"grpc: \"unix:///run/a.sock\"\n  grpc_socket: { mode: \"0999\" }", `listen.grpc_socket.mode: "0999" is not an octal file mode`},
		{"grpc: \"unix:///run/a.sock\"\n  grpc_socket: { mode: \"1777\" }", `listen.grpc_socket.mode: "1777" is not an octal file mode`},
		{"grpc: \"unix:///run/a.sock\"\n  grpc_socket: { user: \"no-such-user-here\" }", `listen.grpc_socket.user: user "no-such-user-here"`},
		{"grpc: \"unix:///run/a.sock\"\n  grpc_socket: { group: \"no-such-group-here\" }", `listen.grpc_socket.group: group "no-such-group-here"`},
		{"grpc: \"127.0.0.1:9001\"\n  grpc_socket: { mode: \"0600\" }", "listen.grpc_socket: applies only to a unix:// listen.grpc"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			_, err := Parse("socket.yaml", []byte(socketBase+"  "+tc.listen+"\n"), testEnv(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
