package storage

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Proxy is nginx or Caddy in front of XRootD, started from the shipped
// example, listening with TLS on a loopback port.
type Proxy struct {
	// Kind is "nginx" or "caddy".
	Kind string
	// URL is the base URL clients use, https://127.0.0.1:port.
	URL string
	// CertDir is an OpenSSL-hashed CA directory trusting the proxy's
	// certificate (X509_CERT_DIR for davix and gfal2).
	CertDir string
	// CertPEM is that certificate.
	CertPEM []byte
	dir     string
	proc    *child
}

// ProxyOptions says where the proxy sends what.
type ProxyOptions struct {
	// Kind is "nginx" or "caddy".
	Kind string
	// Examples is the repository's examples directory.
	Examples string
	// Leasegate is leasegate's HTTP-mode listener (host:port), nginx
	// mode behind nginx, forwarded behind Caddy.
	Leasegate string
	// Upstream is the storage's HTTP address (host:port).
	Upstream string
}

// StartProxy runs the shipped examples/storage/<kind> proxy config with
// only its listen address, upstream addresses and certificate changed.
func StartProxy(ctx context.Context, o ProxyOptions) (*Proxy, error) {
	dir, err := os.MkdirTemp("", "leasegate-"+o.Kind+"-")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Kind: o.Kind, dir: dir, CertDir: filepath.Join(dir, "certificates")}
	fail := func(err error) (*Proxy, error) {
		_ = p.Stop()
		return nil, err
	}
	cert, key, err := selfSigned()
	if err != nil {
		return fail(err)
	}
	p.CertPEM = cert
	certFile, keyFile := filepath.Join(dir, "hostcert.pem"), filepath.Join(dir, "hostkey.pem")
	if err := os.WriteFile(certFile, cert, 0o644); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		return fail(err)
	}
	if err := hashedCertDir(p.CertDir, certFile); err != nil {
		return fail(err)
	}
	for attempt := 1; ; attempt++ {
		addr, err := FreeAddr()
		if err != nil {
			return fail(err)
		}
		p.URL = "https://" + addr
		switch o.Kind {
		case "nginx":
			p.proc, err = startNginx(ctx, o, dir, addr, certFile, keyFile)
		case "caddy":
			p.proc, err = startCaddy(ctx, o, dir, addr, certFile, keyFile)
		default:
			return fail(fmt.Errorf("unknown proxy %q", o.Kind))
		}
		if err == nil {
			return p, nil
		}
		if attempt == 3 || ctx.Err() != nil || strings.Contains(err.Error(), "occurs") {
			return fail(err)
		}
	}
}

// Logs is the proxy's output and error log, for a failing test.
func (p *Proxy) Logs() string {
	if p.proc == nil {
		return ""
	}
	return p.proc.logs()
}

// Stop ends the proxy and removes its directory.
func (p *Proxy) Stop() error {
	if p.proc != nil {
		p.proc.stop()
	}
	return os.RemoveAll(p.dir)
}

func startNginx(ctx context.Context, o ProxyOptions, dir, addr, certFile, keyFile string) (*child, error) {
	bin, err := lookPath("nginx")
	if err != nil {
		return nil, err
	}
	site, err := render(filepath.Join(o.Examples, "storage", "nginx", "xrootd.conf"), [][2]string{
		{"listen 443 ssl;", "listen " + addr + " ssl;"},
		{"server 127.0.0.1:9002;", "server " + o.Leasegate + ";"},
		{"server 127.0.0.1:8080;", "server " + o.Upstream + ";"},
		{"/etc/grid-security/hostcert.pem", certFile},
		{"/etc/grid-security/hostkey.pem", keyFile},
	})
	if err != nil {
		return nil, err
	}
	sitePath := filepath.Join(dir, "xrootd.conf")
	if err := os.WriteFile(sitePath, site, 0o644); err != nil {
		return nil, err
	}
	// A minimal nginx.conf around the site, as Debian's includes conf.d/:
	// every path nginx writes is in dir.
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n" // workers must reach the private temp dir
	}
	main := fmt.Sprintf(`%sworker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    default_type application/octet-stream;
    include %[3]s;
}
`, user, dir, sitePath)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(main), 0o644); err != nil {
		return nil, err
	}
	errLog := filepath.Join(dir, "error.log")
	cmd := exec.Command(bin, "-p", dir+"/", "-c", conf, "-e", errLog, "-g", "daemon off;")
	return startChild(ctx, "nginx", cmd, addr, func() string {
		b, _ := os.ReadFile(errLog)
		return string(b)
	})
}

func startCaddy(ctx context.Context, o ProxyOptions, dir, addr, certFile, keyFile string) (*child, error) {
	bin, err := lookPath("caddy")
	if err != nil {
		return nil, err
	}
	conf, err := render(filepath.Join(o.Examples, "storage", "caddy", "Caddyfile"), [][2]string{
		{"admin localhost:2019", "admin off"},
		{"storage.example.org {", "https://" + addr + " {"},
		{"forward_auth 127.0.0.1:9002 {", "forward_auth " + o.Leasegate + " {"},
		{"reverse_proxy 127.0.0.1:8080 {", "reverse_proxy " + o.Upstream + " {"},
		{"/etc/grid-security/hostcert.pem", certFile},
		{"/etc/grid-security/hostkey.pem", keyFile},
	})
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	// Caddy keeps its state (certificates, autosaved config) under
	// HOME/XDG directories: the temp dir, never the machine's.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}
	return startChild(ctx, "caddy", cmd, addr, nil)
}

// selfSigned is a certificate for storage.example.org and 127.0.0.1.
func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "storage.example.org"},
		DNSNames:              []string{"storage.example.org"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// hashedCertDir makes dir a CA directory as grid clients read it
// (X509_CERT_DIR): the certificate under its OpenSSL subject hash.
func hashedCertDir(dir, certFile string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bin, err := lookPath("openssl")
	if err != nil {
		return err
	}
	out, err := exec.Command(bin, "x509", "-hash", "-noout", "-in", certFile).Output()
	if err != nil {
		return fmt.Errorf("openssl x509 -hash: %w", err)
	}
	b, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, strings.TrimSpace(string(out))+".0"), b, 0o644)
}
