# leasegate — build, test and demo. Everything a fresh machine needs is
# installed from the Go module proxy and Debian packages.
GO      ?= go
BIN     ?= leasegate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 5s

.PHONY: all build test unit fuzz e2e demo hydra deps bench clean

all: build

## build: static binary ./leasegate (the Dockerfile runs exactly this)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) .

## test: vet, unit tests with -race, short fuzz runs, then end-to-end against real Hydra and nginx
test: deps unit fuzz e2e

## deps: Debian packages the tests drive for real (nginx with auth_request)
deps:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
		echo "installing nginx (Debian) for the HTTP-mode end-to-end test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1 || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }

unit:
	gofmt -l . | tee /dev/stderr | (! read)
	$(GO) vet ./...
	LEASEGATE_E2E_REQUIRE=1 $(GO) test -race -count=1 ./...

## fuzz: every native fuzz target for FUZZTIME (corpora in testdata/fuzz/)
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
			echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg >/dev/null || \
				{ $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; exit 1; }; \
		done; \
	done

## hydra: build ORY Hydra (pinned in e2e/go.mod) into .cache/bin/hydra, once
hydra:
	bash e2e/build-hydra.sh

e2e: build hydra
	cd e2e && LEASEGATE_E2E_REQUIRE=1 LEASEGATE_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout 15m ./...

## demo: a scripted walk through leases, revocation and metrics against a real Hydra
demo: build hydra
	cd e2e && $(GO) run ./cmd/demo -leasegate $(CURDIR)/$(BIN)

## bench: Go microbenchmarks (see BENCHMARKS.md for the full procedure)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./policy/ ./leasecache/ ./authz/ ./authz/issuer/ ./envoy/ | tee bench.out

clean:
	rm -f $(BIN) bench.out
