// Command leasegate is an Envoy ext_authz v3 service that validates bearer
// tokens with lease caching. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/leasegate/leasegate/server"
	"github.com/leasegate/leasegate/server/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	configPath := flag.String("config", "", "path to the YAML configuration")
	check := flag.Bool("check", false, "validate the configuration, print every problem, and exit")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()

	if *showVersion {
		fmt.Println(server.BuildInfo(version))
		return
	}
	if *configPath == "" {
		fmt.Fprintln(os.Stderr, "leasegate: -config FILE is required")
		flag.Usage()
		os.Exit(2)
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		var ps *config.Problems
		if errors.As(err, &ps) {
			fmt.Fprintln(os.Stderr, ps.Error())
			fmt.Fprintf(os.Stderr, "%d problem(s) in %s\n", len(ps.List), *configPath)
		} else {
			fmt.Fprintln(os.Stderr, "leasegate:", err)
		}
		os.Exit(1)
	}
	if *check {
		fmt.Println(cfg.Summary())
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	reload := make(chan os.Signal, 1)
	signal.Notify(reload, syscall.SIGHUP)
	if err := server.Run(ctx, server.Options{ConfigPath: *configPath, Config: cfg, Version: version, Reload: reload, MemoryLimit: true}); err != nil {
		fmt.Fprintln(os.Stderr, "leasegate:", err)
		os.Exit(1)
	}
}
