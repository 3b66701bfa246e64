//go:build unix

package fleet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and
// "redis.test", and a client certificate, as PEM files in dir.
func testPKI(t *testing.T, dir string) (ca, srvCert, srvKey, cliCert, cliKey string) {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fleet test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{"redis.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	sDER, sKey := leaf(2, "redis.test", x509.ExtKeyUsageServerAuth)
	cDER, cKey := leaf(3, "leasegate", x509.ExtKeyUsageClientAuth)
	return write("ca.pem", "CERTIFICATE", caDER),
		write("server.pem", "CERTIFICATE", sDER), write("server-key.pem", "PRIVATE KEY", keyDER(sKey)),
		write("client.pem", "CERTIFICATE", cDER), write("client-key.pem", "PRIVATE KEY", keyDER(cKey))
}

// TestTLS: Redis with TLS only and client certificates required.
func TestTLS(t *testing.T) {
	requireRedis(t)
	dir := t.TempDir()
	ca, sc, sk, cc, ck := testPKI(t, dir)
	srv, err := newRedis(dir, true, "--tls-cert-file", sc, "--tls-key-file", sk, "--tls-ca-cert-file", ca, "--tls-auth-clients", "yes")
	if err != nil {
		if strings.Contains(err.Error(), "tls") {
			t.Skipf("this redis-server has no TLS: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(srv.kill)
	e := newEnv(t, "tls", []string{srv.addr()}, nil)
	full := TLSConfig{CAFile: ca, CertFile: cc, KeyFile: ck, ServerName: "redis.test"}
	a, _ := e.open(t, func(c *Config) { c.TLS = full })
	b, _ := e.open(t, func(c *Config) { c.TLS = full; c.TLS.ServerName = "" }) // verified by IP SAN
	k := tokenKey(a, "tls")
	if err := a.Store(bg, k, testLease("nina"), time.Minute, a.Position(), stampNow(t, a)); err != nil {
		t.Fatal(err)
	}
	if _, o, err := b.Lookup(bg, k); err != nil || o != Hit {
		t.Fatal(o, err)
	}
	for name, tc := range map[string]TLSConfig{
		"no client certificate": {CAFile: ca, ServerName: "redis.test"},
		"system roots":          {CertFile: cc, KeyFile: ck, ServerName: "redis.test"},
		"wrong server name":     {CAFile: ca, CertFile: cc, KeyFile: ck, ServerName: "other.test"},
	} {
		s, err := Open(bg, e.config(func(c *Config) { c.TLS = tc }), Hooks{})
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
			continue
		}
		// With TLS 1.3 the server refuses a missing client certificate
		// after the client's handshake is done: the client may see the
		// alert (ErrRefused) or only a reset (ErrUnavailable).
		if !errors.Is(err, ErrRefused) && name != "no client certificate" {
			t.Errorf("%s: %v, want ErrRefused", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

// TestSentinel: Addresses are the Sentinels, MasterName the set.
func TestSentinel(t *testing.T) {
	requireRedis(t)
	if redisSent == "" {
		if os.Getenv("LEASEGATE_E2E_REQUIRE") != "" {
			t.Fatal("LEASEGATE_E2E_REQUIRE is set: redis-sentinel is not installed")
		}
		t.Skip("redis-sentinel is not installed")
	}
	master := startRedis(t)
	dir := t.TempDir()
	var port int
	var cmd *exec.Cmd
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		conf := filepath.Join(dir, "sentinel.conf")
		body := "port " + strconv.Itoa(port) + "\nbind 127.0.0.1\ndir " + dir + "\n" +
			"sentinel monitor fleetmaster 127.0.0.1 " + strconv.Itoa(master.port) + " 1\n" +
			"sentinel down-after-milliseconds fleetmaster 1000\n"
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(redisSent, conf, "--logfile", filepath.Join(dir, "sentinel.log"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sent := &redisServer{port: port}
		ok := false
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if sent.ping() == nil {
				ok = true
				break
			}
		}
		if ok {
			break
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if attempt == 3 {
			b, _ := os.ReadFile(filepath.Join(dir, "sentinel.log"))
			t.Fatalf("redis-sentinel did not start:\n%s", lastLines(string(b), 20))
		}
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	e := newEnv(t, "sentinel", []string{"127.0.0.1:" + strconv.Itoa(port)}, rawClient(t, master.addr()))
	viaSentinel := func(c *Config) { c.MasterName = "fleetmaster" }
	a, _ := e.open(t, viaSentinel)
	b, rec := e.open(t, viaSentinel)
	k := tokenKey(a, "sentinel")
	if err := a.Store(bg, k, testLease("oscar"), time.Minute, a.Position(), stampNow(t, a)); err != nil {
		t.Fatal(err)
	}
	if _, o, err := b.Lookup(bg, k); err != nil || o != Hit {
		t.Fatal(o, err)
	}
	if n, _ := e.raw.Do(bg, e.raw.B().Exists().Key(a.ks.lease(k)).Build()).AsInt64(); n != 1 {
		t.Fatal("the lease is not on the master the Sentinel names")
	}
	if err := a.Revoke(bg, k); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, time.Second, "the revocation", func() bool { return len(rec.revs) == 1 })
}

// TestTLSRootsLoadedBeforeDial: without ca_file the system roots are
// read when the configuration is loaded, so the first handshake's
// deadline covers the network only (under load, parsing them took longer
// than the dial's second and a wrong CA read as "unavailable").
func TestTLSRootsLoadedBeforeDial(t *testing.T) {
	cfg, err := TLSConfig{ServerName: "redis.test"}.load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs == nil {
		t.Fatal("RootCAs is nil: the roots would be parsed inside the first handshake")
	}
}
