// Command loadgen measures an Envoy ext_authz v3 server (leasegate, or the
// no-op floor it can serve itself) over real gRPC connections, and serves
// the fake RFC 7662 issuer those measurements need. bench.sh in this
// directory runs the issue 9 suite with it.
//
// Modes, one per process:
//
//	loadgen -target HOST:PORT [load flags]   drive Check, report throughput and latency
//	loadgen -noop-server ADDR                serve a no-op ext_authz v3 server (the floor)
//	loadgen -issuer ADDR [-delay D]          serve a fake introspection endpoint
//	loadgen -summarize FILE [-ratio a=b]     median tables from -json results
//	loadgen -ghz-data FILE -tokens N         write a ghz data file with the same requests
//	loadgen -protoset FILE                   write the ext_authz protoset ghz needs
//	loadgen -free-ports N                    print N free loopback ports
//	loadgen -jwt-keygen FILE                 an RS256 key, its JWKS in FILE.jwks.json
//	loadgen -jwt-tokens FILE -jwt-key K      sign a population of JWTs
//	loadgen -jwks ADDR -jwt-key K            serve the key's JWKS
//	loadgen -gobench FILE                    median tables from go test -bench output
//	loadgen -splice FILE -section NAME=MD    replace a marked section of FILE
//
// Requests look like Envoy's: the headers map with lower-case names and the
// :method, :path, :authority and :scheme pseudo-headers, a fresh
// x-request-id per request, and authorization: Bearer tok-<n> with n zero
// padded to 12 digits. Each request is spliced from a pre-marshalled
// template (token digits and request id written in place), so the client
// spends as little of the shared CPUs as it can and every server sees the
// same bytes.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	var o loadOptions
	flag.StringVar(&o.target, "target", "", "ext_authz gRPC server to load, host:port")
	flag.IntVar(&o.conns, "conns", 1, "gRPC connections (HTTP/2), shared round-robin by the workers")
	flag.IntVar(&o.concurrency, "concurrency", 16, "concurrent streams: closed-loop workers, one request in flight each")
	flag.Float64Var(&o.rate, "rate", 0, "open loop: total requests/s spread evenly over the workers (0: closed loop, as fast as answers come)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before the measured time, not recorded")
	flag.IntVar(&o.tokens, "tokens", 10000, "token population tok-B .. tok-(B+N-1), B from -token-base")
	flag.Uint64Var(&o.tokenBase, "token-base", 0, "first token number B of the population")
	flag.StringVar(&o.dist, "dist", "uniform", "token popularity: uniform or zipf")
	flag.Float64Var(&o.zipfS, "zipf-s", 1.1, "Zipf exponent s (> 1)")
	flag.StringVar(&o.mix, "mix", "GET=100", "method mix, weights: GET=85,PUT=12,DELETE=3")
	flag.Float64Var(&o.newFrac, "new-frac", 0, "fraction of requests carrying a never-seen token (a lease miss)")
	flag.BoolVar(&o.prime, "prime", false, "before the warmup, send one GET per token (fills the leases)")
	flag.BoolVar(&o.primeOnly, "prime-only", false, "prime, report, and exit")
	flag.StringVar(&o.primeMethod, "prime-method", "GET", "method of the priming requests (DELETE, a window-0 tier, revalidates every lease)")
	flag.StringVar(&o.host, "host", "storage.example.org", ":authority of the requests")
	flag.StringVar(&o.path, "path", "/atlas/data/run3/file-000042.root", ":path of the requests")
	flag.Uint64Var(&o.seed, "seed", 1, "random seed (token and method choice)")
	flag.StringVar(&o.label, "label", "", "label for the result (summaries group by it)")
	flag.IntVar(&o.run, "run", 0, "run number, recorded in the result (ratios pair equal runs)")
	flag.BoolVar(&o.json, "json", false, "print the result as one JSON line on stdout")
	flag.IntVar(&o.serverPID, "server-pid", 0, "pid of the server process: report its CPU time per request")
	flag.StringVar(&o.tokenFile, "token-file", "", "population tokens, one per line of one length (-jwt-tokens writes them); token B+i is line i")

	noopAddr := flag.String("noop-server", "", "serve a no-op ext_authz v3 server on this address (host:port or unix:///path)")
	streamWorkers := flag.Uint("stream-workers", 0, "no-op server: grpc.NumStreamWorkers instead of leasegate's (0: leasegate's)")
	work := flag.Duration("work", 0, "no-op server: burn this much CPU per Check (a floor with synthetic work)")
	richOK := flag.Bool("rich-ok", false, "no-op server: answer with an OK shaped like leasegate's hit (4 upstream headers, 6-field dynamic_metadata)")
	issuerAddr := flag.String("issuer", "", "serve a fake RFC 7662 introspection issuer on this address")
	delay := flag.Duration("delay", 0, "issuer mode: answer after this long")
	issuerIss := flag.String("issuer-iss", "", "issuer mode: iss value in answers (none when empty)")
	addrFile := flag.String("addr-file", "", "server modes: write the bound address to this file")

	summarize := flag.String("summarize", "", "read -json results from this file and print median tables")
	ratio := flag.String("ratio", "", "summarize: throughput ratios of label prefixes, e.g. leasegate=noop")
	ghzData := flag.String("ghz-data", "", "write a ghz JSON data file (one message per token) and exit")
	protoset := flag.String("protoset", "", "write the ext_authz v3 FileDescriptorSet (for ghz --protoset) and exit")
	freePorts := flag.Int("free-ports", 0, "print this many free 127.0.0.1 ports and exit (for config files)")
	jwtKeygen := flag.String("jwt-keygen", "", "write a new RS256 signing key to this file (and its JWKS to FILE.jwks.json) and exit")
	jwtKey := flag.String("jwt-key", "", "-jwt-tokens, -jwks: the signing key file")
	jwtTokens := flag.String("jwt-tokens", "", "sign -tokens JWTs (from -token-base, issuer -issuer-iss) with -jwt-key into this file and exit")
	jwksAddr := flag.String("jwks", "", "serve -jwt-key's JWKS on this address")
	matrix := flag.String("matrix", "", "with -summarize: the ratio table DEN=NUM,NUM (labels NUM/c<N> over DEN/c<N>) instead of the full summary")
	names := flag.String("names", "", "with -matrix: display names, NUM=name;NUM=name")
	gobench := flag.String("gobench", "", "print median tables of this go test -bench output and exit")
	splice := flag.String("splice", "", "replace the marked sections (-section) of this markdown file and exit")
	section := flag.String("section", "", "with -splice: NAME=FILE[,NAME=FILE], each replacing <!-- bench:NAME --> … <!-- /bench:NAME -->")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch {
	case *jwtKeygen != "":
		err = writeJWTKey(*jwtKeygen)
	case *jwtTokens != "":
		err = writeJWTTokens(*jwtTokens, *jwtKey, *issuerIss, o.tokenBase, o.tokens)
	case *jwksAddr != "":
		err = serveJWKS(ctx, *jwksAddr, *jwtKey, *addrFile)
	case *noopAddr != "":
		err = serveNoop(ctx, *noopAddr, *addrFile, floorOptions{streamWorkers: uint32(*streamWorkers), richOK: *richOK, work: *work})
	case *issuerAddr != "":
		err = serveIssuer(ctx, issuerOptions{addr: *issuerAddr, delay: *delay, iss: *issuerIss, addrFile: *addrFile})
	case *summarize != "" && *matrix != "":
		err = matrixFile(os.Stdout, *summarize, *matrix, parseNames(*names))
	case *summarize != "":
		err = summarizeFile(os.Stdout, *summarize, *ratio)
	case *gobench != "":
		err = gobenchFile(os.Stdout, *gobench)
	case *splice != "":
		err = spliceFile(*splice, *section)
	case *ghzData != "":
		err = writeGhzData(*ghzData, o)
	case *protoset != "":
		err = writeProtoset(*protoset)
	case *freePorts > 0:
		err = printFreePorts(*freePorts)
	case o.target != "":
		err = runLoad(ctx, o)
	default:
		fmt.Fprintln(os.Stderr, "loadgen: one of -target, -noop-server, -issuer, -summarize, -ghz-data, -protoset, -free-ports is required")
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// parseNames reads -names: NUM=name;NUM=name.
func parseNames(s string) map[string]string {
	m := map[string]string{}
	for part := range strings.SplitSeq(s, ";") {
		if k, v, ok := strings.Cut(part, "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// printFreePorts lets a script write a config for a server that logs its
// addresses only at info level.
func printFreePorts(n int) error {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// writeAddr tells a script which port a ":0" listener got.
func writeAddr(file, addr string) error {
	if file == "" {
		return nil
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o644); err != nil {
		return fmt.Errorf("write address: %w", err)
	}
	return os.Rename(tmp, file)
}
