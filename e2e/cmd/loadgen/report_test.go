package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"google.golang.org/protobuf/proto"
)

func TestSpliceFile(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "B.md")
	md := filepath.Join(dir, "peers.md")
	write(t, doc, "# B\n\n<!-- bench:peers -->\nold table\n<!-- /bench:peers -->\n\nprose kept\n")
	write(t, md, "| new | table |\n")
	if err := spliceFile(doc, "peers="+md); err != nil {
		t.Fatal(err)
	}
	want := "# B\n\n<!-- bench:peers -->\n| new | table |\n<!-- /bench:peers -->\n\nprose kept\n"
	if got := read(t, doc); got != want {
		t.Fatalf("spliced:\n%s\nwant:\n%s", got, want)
	}
	if err := spliceFile(doc, "memory="+md); err == nil || !strings.Contains(err.Error(), "bench:memory") {
		t.Fatalf("an unmarked section: %v, want an error naming it", err)
	}
	if got := read(t, doc); got != want {
		t.Fatal("a failed splice changed the file")
	}
}

func TestGobenchFile(t *testing.T) {
	in := filepath.Join(t.TempDir(), "bench.txt")
	write(t, in, `goos: linux
pkg: github.com/leasegate/leasegate/envoy
BenchmarkCheckHit-2   	  100	      900 ns/op	     208 B/op	       3 allocs/op
BenchmarkCheckHit-2   	  100	      700 ns/op	     208 B/op	       3 allocs/op
BenchmarkCheckHit-2   	  100	      800 ns/op	     208 B/op	       3 allocs/op
pkg: github.com/leasegate/leasegate/leasecache
BenchmarkMemory/max_memory_mb=137-2 	 1	 1 ns/op	 133.5 B/lease	 127.3 heap-MiB
PASS
`)
	var out bytes.Buffer
	if err := gobenchFile(&out, in); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| benchmark | runs | ns/op | B/op | allocs/op | B/lease | heap-MiB |",
		"| envoy CheckHit-2 | 3 | 800 (700–900) | 208 | 3 | – | – |",
		"| leasecache Memory/max_memory_mb=137-2 | 1 | 1 | – | – | 133.5 | 127.3 |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
}

func TestMatrixFile(t *testing.T) {
	in := filepath.Join(t.TempDir(), "peers.jsonl")
	var b strings.Builder
	for _, r := range []Result{
		{Label: "noop/c1", Run: 1, RPS: 1000, ServerCPUUs: 100},
		{Label: "noop/c1", Run: 2, RPS: 2000, ServerCPUUs: 100},
		{Label: "lg/c1", Run: 1, RPS: 900, ServerCPUUs: 110},
		{Label: "lg/c1", Run: 2, RPS: 1900, ServerCPUUs: 120},
		{Label: "lg/c1", Run: 3, RPS: 5000}, // no floor run 3: not paired
		{Label: "noop/c16", Run: 1, RPS: 4000, ServerCPUUs: 50},
		{Label: "noop@lg/c16", Run: 1, RPS: 2000, ServerCPUUs: 50}, // measured beside lg: preferred
		{Label: "lg/c16", Run: 1, RPS: 1000, ServerCPUUs: 100},
		{Label: "unix/c16", Run: 1, RPS: 3000, ServerCPUUs: 40},
		{Label: "fl2/c16", Run: 1, RPS: 2000, ServerCPUUs: 40},
	} {
		j, _ := json.Marshal(r)
		b.Write(append(j, '\n'))
	}
	write(t, in, b.String())
	var out bytes.Buffer
	if err := matrixFile(&out, in, "noop=lg,unix/fl2", map[string]string{"lg": "leasegate"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| throughput ÷ the floor's | 1 stream | 16 streams |",
		"| leasegate | 0.93 (0.90–0.95) | 0.50 |",
		"| unix | – | 1.50 |",
		"| leasegate | 1.15 (1.10–1.20) | 2.00 |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
}

// TestJWTPopulation: the signed population verifies against the JWKS
// served for it, every token has one length, and a template writes token
// n in place.
func TestJWTPopulation(t *testing.T) {
	dir := t.TempDir()
	key, toks := filepath.Join(dir, "k"), filepath.Join(dir, "t")
	if err := writeJWTKey(key); err != nil {
		t.Fatal(err)
	}
	if err := writeJWTTokens(toks, key, "https://jwt.test", 40, 3); err != nil {
		t.Fatal(err)
	}
	list, err := readTokens(toks)
	if err != nil || len(list) != 3 {
		t.Fatalf("tokens: %d, %v", len(list), err)
	}
	set, err := jwk.Parse([]byte(read(t, key+".jwks.json")))
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range list {
		tk, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithIssuer("https://jwt.test"), jwt.WithAudience(jwtAudience))
		if err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		if want := fmt.Sprintf("subject-%012d@example.org", 40+i); tk.Subject() != want {
			t.Fatalf("token %d: sub %q, want %q", i, tk.Subject(), want)
		}
	}
	tm, err := newTokenTemplate("GET", "h.example", "/p", list, 40)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(tm.b))
	tm.fill(buf, 42, 1, 2)
	var req authv3.CheckRequest
	if err := proto.Unmarshal(buf, &req); err != nil {
		t.Fatal(err)
	}
	if got := req.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"]; got != "Bearer "+list[2] {
		t.Fatalf("authorization %q, want token 42 (line 3)", got)
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
