# leasegate — build, test and demo. Everything a fresh machine needs is
# installed from the Go module proxy and Debian packages.
GO      ?= go
BIN     ?= leasegate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Build tags of the binary, its tests and benchmarks: vtprotobuf compiles
# go-control-plane's generated marshallers, which envoy.Codec uses (the
# Dockerfile and make release build through make build, so they carry it).
GOTAGS  ?= vtprotobuf
FUZZTIME ?= 5s
# Linters, pinned and run from the module proxy: no go.mod change, no
# install step, the same version on every machine.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEADCODE    ?= $(GO) run golang.org/x/tools/cmd/deadcode@v0.52.0
TESTCLOCK   := github.com/leasegate/leasegate/internal/testclock
TESTREDIS   := github.com/leasegate/leasegate/internal/testredis
# make release: the platforms it builds and the SBOM tool, pinned, from the
# module proxy (it reads go.mod and the module cache, no network of its own).
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64
CYCLONEDX ?= $(GO) run github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0

.PHONY: all build release test lint unit deploy-test fuzz e2e demo hydra deps bench clean

all: build

## build: static binary ./leasegate (the Dockerfile runs exactly this)
build:
	CGO_ENABLED=0 $(GO) build -tags "$(GOTAGS)" -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) .

## release: dist/leasegate-linux-{amd64,arm64}, each built by the build
## recipe above with GOOS/GOARCH set, a CycloneDX SBOM (dist/sbom.cdx.json)
## and dist/SHA256SUMS over all three. Not part of make test.
release:
	rm -rf dist && mkdir -p dist
	@set -e; for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		GOOS=$$os GOARCH=$$arch $(MAKE) --no-print-directory build VERSION=$(VERSION) BIN=dist/$(BIN)-$$os-$$arch; \
	done
	$(CYCLONEDX) mod -licenses=false -json -output dist/sbom.cdx.json
	cd dist && sha256sum $(BIN)-* sbom.cdx.json > SHA256SUMS
	@ls -l dist

## test: lint, unit tests with -race, short fuzz runs, then end-to-end against real Hydra and nginx
test: deps lint unit deploy-test fuzz e2e

## deps: Debian packages the tests drive for real (nginx with auth_request;
## redis-server, redis-cli and redis-sentinel for fleet mode; prometheus and promtool for
## the dashboard and alert rules; caddy, XRootD with XrdHttp, davix and gfal2
## for the storage gateway)
STORAGE_PKGS := caddy xrootd-server xrootd-plugins davix gfal2 gfal2-plugin-http gfal2-plugin-file gfal2-util-scripts python3-gfal2-util openssl
deps:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
		echo "installing nginx (Debian) for the HTTP-mode end-to-end test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1 || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }
	@{ command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; } && \
		{ command -v redis-cli >/dev/null 2>&1 || [ -x /usr/bin/redis-cli ]; } && \
		{ command -v redis-sentinel >/dev/null 2>&1 || [ -x /usr/bin/redis-sentinel ]; } || { \
		echo "installing redis-server, redis-tools and redis-sentinel (Debian) for the fleet end-to-end tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools redis-sentinel >/dev/null; }
	@{ command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ]; } && \
		{ command -v promtool >/dev/null 2>&1 || [ -x /usr/bin/promtool ]; } || { \
		echo "installing prometheus (Debian, with promtool) for the dashboard and alert tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@for c in caddy xrootd davix-put gfal-copy openssl; do command -v $$c >/dev/null 2>&1 || missing=1; done; \
		ls /usr/lib/*/libXrdHttp-5.so >/dev/null 2>&1 || missing=1; \
		[ -z "$$missing" ] || { echo "installing $(STORAGE_PKGS) (Debian) for the storage-gateway end-to-end tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(STORAGE_PKGS) >/dev/null; }

## lint: gofmt, go vet and staticcheck on both modules; deadcode on the main
## module (it must print nothing); internal/testclock and internal/testredis
## imported by tests only; no production package over 1,500 lines and no
## production function over 80 (internal/tools/linelimit).
## deadcode skips e2e/: its packages are test harness, and helpers that only
## tests call are what deadcode reports.
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt -l: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd e2e && $(GO) vet ./...
	$(STATICCHECK) ./...
	cd e2e && $(STATICCHECK) ./...
	@# internal/testclock and internal/testredis are unreachable from main by design: tests are their only callers.
	@out=$$($(DEADCODE) ./...) || exit 1; out=$$(echo "$$out" | grep -v '^internal/test\(clock\|redis\)/'); \
		if [ -n "$$out" ]; then echo "deadcode: unreachable code:"; echo "$$out"; exit 1; fi
	@bad=$$($(GO) list -f '{{range .Imports}}{{if or (eq . "$(TESTCLOCK)") (eq . "$(TESTREDIS)")}}{{$$.ImportPath}} {{end}}{{end}}' ./...) || exit 1; \
		if [ -n "$$bad" ]; then echo "internal/testclock and internal/testredis are for _test.go files; imported by: $$bad"; exit 1; fi
	$(GO) run ./internal/tools/linelimit

unit:
	LEASEGATE_E2E_REQUIRE=1 $(GO) test -race -count=1 -tags "$(GOTAGS)" ./...
	@# without the generated marshallers (a plain go build) the codec must stay correct too
	$(GO) test -race -count=1 ./envoy/

## deploy-test: the deploy/ module (dashboard, alert rules, Helm chart,
## Istio and Envoy Gateway examples): vet, staticcheck, and its tests with
## promtool required; the chart's config goes through the built binary's
## -check. helm is the go.mod tool: its first build takes 3-4 minutes.
deploy-test: build
	cd deploy && $(GO) vet ./...
	cd deploy && $(STATICCHECK) ./...
	cd deploy && LEASEGATE_E2E_REQUIRE=1 LEASEGATE_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout 15m ./...

## fuzz: every native fuzz target for FUZZTIME (corpora in testdata/fuzz/);
## a bare fuzz-coordinator deadline (Go 1.26, no failing input) is run again once
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) GOTAGS="$(GOTAGS)" bash internal/tools/fuzz/run.sh

## hydra: build ORY Hydra (pinned in e2e/go.mod) into .cache/bin/hydra, once
hydra:
	bash e2e/build-hydra.sh

e2e: build hydra
	cd e2e && LEASEGATE_E2E_REQUIRE=1 LEASEGATE_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -tags "$(GOTAGS)" -timeout 15m ./...

## demo: a scripted walk through leases, revocation and metrics against a real Hydra,
## then a grid job reading and writing XRootD through leasegate with davix
demo: deps build hydra
	cd e2e && $(GO) run ./cmd/demo -leasegate $(CURDIR)/$(BIN)

## bench: Go microbenchmarks (see BENCHMARKS.md for the full procedure)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 -tags "$(GOTAGS)" ./policy/... ./leasecache/ ./authz/ ./authz/issuer/ ./envoy/ | tee bench.out

clean:
	rm -f $(BIN) bench.out
	rm -rf dist
