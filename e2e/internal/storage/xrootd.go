package storage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// XRootD is a running xrootd serving examples/storage/xrootd/xrootd-http.cfg
// from a temporary directory.
type XRootD struct {
	// HTTPAddr is XrdHttp's host:port.
	HTTPAddr string
	// Root is the directory behind the export: a request for /data/x is
	// the file Root/data/x.
	Root string
	dir  string
	uid  int
	gid  int
	proc *child
}

// StartXRootD runs xrootd with the shipped config (paths and ports changed)
// in a new temporary directory. As root it runs as Debian's xrootd user
// (XRootD refuses to run as root), so the directory is made theirs.
func StartXRootD(ctx context.Context, examples string) (*XRootD, error) {
	bin, err := lookPath("xrootd")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "leasegate-xrootd-")
	if err != nil {
		return nil, err
	}
	x := &XRootD{Root: filepath.Join(dir, "root"), dir: dir, uid: -1, gid: -1}
	for _, d := range []string{filepath.Join(x.Root, "data"), filepath.Join(dir, "admin"), filepath.Join(dir, "run")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, x.cleanup(err)
		}
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("xrootd")
		if err != nil {
			return nil, x.cleanup(fmt.Errorf("xrootd must not run as root and there is no xrootd user: %w", err))
		}
		x.uid, _ = strconv.Atoi(u.Uid)
		x.gid, _ = strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(x.uid), Gid: uint32(x.gid)}
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, x.cleanup(err)
		}
		if err := x.chownAll(dir); err != nil {
			return nil, x.cleanup(err)
		}
	}
	for attempt := 1; ; attempt++ {
		if x.HTTPAddr, err = FreeAddr(); err != nil {
			return nil, x.cleanup(err)
		}
		_, port, _ := strings.Cut(x.HTTPAddr, ":")
		cfg, err := render(filepath.Join(examples, "storage", "xrootd", "xrootd-http.cfg"), [][2]string{
			{"oss.localroot /srv/xrootd", "oss.localroot " + x.Root},
			{"all.adminpath /var/spool/xrootd", "all.adminpath " + filepath.Join(dir, "admin")},
			{"all.pidpath /run/xrootd", "all.pidpath " + filepath.Join(dir, "run")},
			{"xrd.port 1094", "xrd.port any"},
			{"XrdHttp:8080", "XrdHttp:" + port},
		})
		if err != nil {
			return nil, x.cleanup(err)
		}
		cfgPath := filepath.Join(dir, "xrootd.cfg")
		if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
			return nil, x.cleanup(err)
		}
		logPath := filepath.Join(dir, "xrootd.log")
		cmd := exec.Command(bin, "-c", cfgPath, "-l", logPath, "-n", "leasegate-e2e")
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		x.proc, err = startChild(ctx, "xrootd", cmd, x.HTTPAddr, func() string {
			b, _ := os.ReadFile(filepath.Join(dir, "leasegate-e2e", "xrootd.log"))
			return string(b)
		})
		if err == nil {
			return x, nil
		}
		if attempt == 3 || ctx.Err() != nil {
			return nil, x.cleanup(err)
		}
	}
}

// Path is the file on XRootD's disk for a request path ("/data/atlas/f").
func (x *XRootD) Path(reqPath string) string {
	return filepath.Join(x.Root, filepath.FromSlash(strings.TrimPrefix(reqPath, "/")))
}

// Put writes a file straight onto XRootD's disk (a file that was there
// before the test's clients came), owned like the files XRootD writes.
func (x *XRootD) Put(reqPath string, data []byte) error {
	p := x.Path(reqPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return err
	}
	return x.chownAll(filepath.Join(x.Root, "data"))
}

// Read is the content of a file on XRootD's disk; ok is false when it
// does not exist.
func (x *XRootD) Read(reqPath string) (data []byte, ok bool, err error) {
	b, err := os.ReadFile(x.Path(reqPath))
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	return b, err == nil, err
}

// Running reports whether xrootd is still up.
func (x *XRootD) Running() bool { return x.proc != nil && x.proc.running() }

// Stop ends xrootd and removes its directory.
func (x *XRootD) Stop() error {
	if x.proc != nil {
		x.proc.stop()
	}
	return os.RemoveAll(x.dir)
}

func (x *XRootD) chownAll(dir string) error {
	if x.uid < 0 {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, x.uid, x.gid)
	})
}

func (x *XRootD) cleanup(err error) error {
	if x.proc != nil {
		x.proc.stop()
	}
	_ = os.RemoveAll(x.dir)
	return err
}
