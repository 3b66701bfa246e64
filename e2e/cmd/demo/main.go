// Command demo walks through leasegate's leases against a real ORY Hydra:
// it starts Hydra (opaque tokens) and leasegate on free loopback ports,
// obtains real tokens, sends Envoy-shaped ext_authz checks and prints what
// happened to each (tier, lease outcome, decision, issuer calls so far,
// latency); then revokes tokens at Hydra and in leasegate's admin API and
// shows the revocation bound at work. Then it tells the grid story: a job
// reads and writes a storage element (XRootD behind nginx, from
// examples/storage/nginx) through leasegate with davix, the issuer's
// introspection count beside each step. It builds nothing: `make demo`
// builds Hydra and leasegate first (and `make deps` installs XRootD,
// nginx and davix).
//
//	cd e2e && go run ./cmd/demo -leasegate ../leasegate
//
// It stops everything it started, also on Ctrl-C, and exits 0 when every
// expectation of the script held, 1 otherwise.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	var o options
	flag.StringVar(&o.leasegate, "leasegate", "", "leasegate binary (default: $LEASEGATE_BIN, else built from this checkout)")
	flag.StringVar(&o.hydra, "hydra", "", "ORY Hydra binary (default: $LEASEGATE_HYDRA, else <repo>/.cache/bin/hydra)")
	flag.BoolVar(&o.verbose, "v", false, "copy leasegate's log to stderr")
	flag.BoolVar(&o.keep, "keep", false, "after the script, keep Hydra and leasegate running until Ctrl-C")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o.out = os.Stdout
	if o.verbose {
		o.log = os.Stderr
	}
	err := run(ctx, o)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "demo: interrupted; everything it started has been stopped")
		os.Exit(130)
	default:
		fmt.Fprintln(os.Stderr, "demo FAILED:", err)
		os.Exit(1)
	}
}

type options struct {
	leasegate string
	hydra     string
	verbose   bool
	keep      bool
	out       io.Writer
	log       io.Writer // leasegate's log; nil keeps it in memory only
}
