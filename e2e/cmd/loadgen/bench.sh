#!/usr/bin/env bash
# leasegate's measurements (BENCHMARKS.md): the lease-hit path and its peers
# against the no-op gRPC floor, the in-process hit, memory, the issuer load
# of the Zipf replay, a ghz cross-check and the miss path.
#
#   e2e/cmd/loadgen/bench.sh [peers|micro|memory|replay|hit|ghz|miss|fleet|all|update]...
#
# `all` runs peers, micro, memory and replay (what BENCHMARKS.md's tables
# are made of); `update` then writes their results into BENCHMARKS.md's
# marked sections (<!-- bench:NAME -->), so the tables are regenerated, not
# copied by hand: on a quiet machine, `bench.sh all update`.
#
# Environment: RUNS (5), DURATION (10s), WARMUP (2s), OUT (/tmp/leasegate-bench),
# RATES ("2000 5000": open-loop rates for the 64-stream latency runs; "" for none),
# MEM_RUNS (RUNS), GHZ (ghz on PATH or ~/go/bin/ghz), STREAMS ("1 16 64"),
# OPA_ENVOY (the opa-envoy-plugin binary; default .cache/bin/opa-envoy-plugin,
# built by build_opa), REPLAY_REQUESTS (1000000), PARTIAL (1: peers runs
# without the fleet or OPA rows when redis-server or OPA is missing).
# Results: $OUT/<suite>.jsonl (one JSON line per run) and $OUT/<suite>.md
# (median and min–max over runs). Every server and client here shares the
# machine's CPUs; runs of the two servers alternate so background load hits
# both alike, and the server CPU time per request is reported because it
# depends far less on that load than throughput does.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${OUT:-/tmp/leasegate-bench}
RUNS=${RUNS:-5}
MEM_RUNS=${MEM_RUNS:-$RUNS}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
RATES=${RATES-2000 5000}
GHZ=${GHZ:-$(command -v ghz || echo "$HOME/go/bin/ghz")}
mkdir -p "$OUT"
LG=$OUT/leasegate
LOADGEN=$OUT/loadgen

PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

log() { echo "== $*" >&2; }

# The build tags of make build: the bench measures the binary that ships.
TAGS=$(awk -F'[?:]?= *' '/^GOTAGS/ {print $2; exit}' "$ROOT/Makefile")
STREAMS=${STREAMS:-1 16 64}

build() {
	log "building leasegate and loadgen (tags: $TAGS)"
	(cd "$ROOT" && go build -tags "$TAGS" -o "$LG" .)
	(cd "$ROOT/e2e" && go build -tags "$TAGS" -o "$LOADGEN" ./cmd/loadgen)
	{
		echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
		echo "kernel: $(uname -r); $(go version)"
		echo "commit: $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- . ':!e2e' ':!BENCHMARKS.md' || echo ' (+ uncommitted changes)')"
	} >"$OUT/env.txt"
	cat "$OUT/env.txt" >&2
}

wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timeout waiting for $1" >&2; return 1; }

# start_issuer DELAY: sets ISSUER_ADDR, ISSUER_PID
start_issuer() {
	rm -f "$OUT/issuer.addr"
	"$LOADGEN" -issuer 127.0.0.1:0 -delay "$1" -addr-file "$OUT/issuer.addr" 2>>"$OUT/issuer.log" &
	ISSUER_PID=$!
	PIDS+=("$ISSUER_PID")
	wait_file "$OUT/issuer.addr"
	ISSUER_ADDR=$(cat "$OUT/issuer.addr")
}

issuer_calls() { curl -fsS "http://$ISSUER_ADDR/calls"; }

# start_noop: sets NOOP_ADDR, NOOP_PID
start_noop() {
	rm -f "$OUT/noop.addr"
	"$LOADGEN" -noop-server 127.0.0.1:0 -addr-file "$OUT/noop.addr" 2>>"$OUT/noop.log" &
	NOOP_PID=$!
	PIDS+=("$NOOP_PID")
	wait_file "$OUT/noop.addr"
	NOOP_ADDR=$(cat "$OUT/noop.addr")
}

# start_leasegate MAX_MEMORY_MB [EXTRA_YAML]: sets LG_ADDR, LG_ADMIN, LG_PID. Read
# window 10m (= lease.max), so a primed token stays a hit for the run.
# LG_LISTEN (unix:///path) replaces the TCP gRPC address, LG_ISSUERS the
# issuers block (default: the fake introspection issuer); LG_NAME names the
# config and log files (several leasegates run at once in some suites).
start_leasegate() {
	local ports name=${LG_NAME:-leasegate}
	mapfile -t ports < <("$LOADGEN" -free-ports 3)
	LG_ADDR=${LG_LISTEN:-127.0.0.1:${ports[0]}}
	LG_ADMIN=127.0.0.1:${ports[1]}
	cat >"$OUT/$name.yaml" <<EOF
listen:
  grpc: "$LG_ADDR"
  admin: "$LG_ADMIN"
  metrics: "127.0.0.1:${ports[2]}"
realm: leasegate
issuers:
${LG_ISSUERS:-$(introspection_issuer)}
tiers:
  read:     { methods: [GET, HEAD, OPTIONS, PROPFIND], window: 10m }
  write:    { methods: [PUT, POST, PATCH, MKCOL, COPY, MOVE, PROPPATCH, LOCK, UNLOCK], window: 5s }
  critical: { methods: [DELETE], window: 0s }
lease:
  max: 10m
  max_memory_mb: $1
log: { level: warn }
tracing: { exporter: none }
${2:-}
EOF
	OTEL_SDK_DISABLED=true "$LG" -config "$OUT/$name.yaml" 2>>"$OUT/$name.log" &
	LG_PID=$!
	PIDS+=("$LG_PID")
	for _ in $(seq 100); do
		curl -fsS "http://$LG_ADMIN/readyz" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "leasegate ($name) did not become ready" >&2
	return 1
}

introspection_issuer() {
	cat <<EOF
  - name: bench
    issuer: "https://issuer.bench.example"
    mode: introspection
    default_for_opaque: true
    introspection:
      endpoint: "http://$ISSUER_ADDR/introspect"
      auth: none
      timeout: 2s
EOF
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

metric() { curl -fsS "http://$LG_ADMIN/metrics" | awk -v m="$1" '$1 == m {printf "%.0f", $2}'; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure SERVER_LABEL ADDR PID RUN [loadgen flags]
measure() {
	local label=$1 addr=$2 pid=$3 run=$4
	shift 4
	"$LOADGEN" -target "$addr" -server-pid "$pid" -label "$label" -run "$run" -json \
		-duration "$DURATION" -warmup "$WARMUP" "$@"
}

suite_hit() {
	local f=$OUT/hit.jsonl
	: >"$f"
	start_issuer 0
	start_noop
	start_leasegate 256
	local calls=0 before
	for run in $(seq "$RUNS"); do
		# The read window is 10m and a hit never restarts it: revalidate
		# every lease (DELETE is window 0) so none lapses during the run.
		log "hit: run $run/$RUNS, (re)validating 10k leases"
		"$LOADGEN" -target "$LG_ADDR" -tokens 10000 -concurrency 16 -prime-only -prime-method DELETE
		before=$(issuer_calls)
		for c in 1 16 64; do
			log "hit: run $run/$RUNS, concurrency $c"
			# Alternate which server goes first.
			if ((run % 2)); then
				measure noop/c$c "$NOOP_ADDR" "$NOOP_PID" "$run" -concurrency "$c" -tokens 10000 >>"$f"
				measure leasegate/c$c "$LG_ADDR" "$LG_PID" "$run" -concurrency "$c" -tokens 10000 >>"$f"
			else
				measure leasegate/c$c "$LG_ADDR" "$LG_PID" "$run" -concurrency "$c" -tokens 10000 >>"$f"
				measure noop/c$c "$NOOP_ADDR" "$NOOP_PID" "$run" -concurrency "$c" -tokens 10000 >>"$f"
			fi
		done
		for r in $RATES; do
			log "hit: run $run/$RUNS, 64 streams open loop at $r/s"
			measure noop/c64-r$r "$NOOP_ADDR" "$NOOP_PID" "$run" -concurrency 64 -rate "$r" -tokens 10000 >>"$f"
			measure leasegate/c64-r$r "$LG_ADDR" "$LG_PID" "$run" -concurrency 64 -rate "$r" -tokens 10000 >>"$f"
		done
		calls=$((calls + $(issuer_calls) - before))
	done
	{
		cat "$OUT/env.txt"
		echo "issuer calls during the measured runs: $calls (0: every leasegate request was a lease hit)"
		echo
		"$LOADGEN" -summarize "$f" -ratio leasegate=noop
		echo
		echo "leasegate's own decision time for the read-tier hits (leasegate_check_duration_seconds, cumulative):"
		curl -fsS "http://$LG_ADMIN/metrics" | awk '/^leasegate_check_duration_seconds_bucket\{.*lease="hit".*tier="read"/ {
			match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5); n[++k] = $2; b[k] = le }
			END { for (i = 1; i <= k; i++) printf "  <= %s s: %.4f%%\n", b[i], 100 * n[i] / n[k] }'
	} >"$OUT/hit.md"
	cat "$OUT/hit.md"
	stop "$LG_PID"
	stop "$NOOP_PID"
	stop "$ISSUER_PID"
}

# ghz_measure LABEL ADDR PID RUN C: one ghz run as a loadgen-style JSON line.
ghz_measure() {
	local label=$1 addr=$2 pid=$3 run=$4 c=$5
	local t0 t1 raw=$OUT/ghz-last.json
	"$GHZ" --insecure --protoset "$OUT/authz.protoset" --call envoy.service.auth.v3.Authorization.Check \
		-D "$OUT/ghz-10k.json" -c "$c" --connections 1 -z "$WARMUP" -O json "$addr" >/dev/null
	t0=$(cpu_ticks "$pid")
	"$GHZ" --insecure --protoset "$OUT/authz.protoset" --call envoy.service.auth.v3.Authorization.Check \
		-D "$OUT/ghz-10k.json" -c "$c" --connections 1 -z "$DURATION" -O json "$addr" >"$raw"
	t1=$(cpu_ticks "$pid")
	jq -c --arg lbl "$label" --argjson run "$run" --argjson c "$c" --argjson ticks "$((t1 - t0))" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '
		def pct(p): ((.latencyDistribution // []) | map(select(.percentage == p)) | (.[0].latency // 0)) / 1000;
		{"label": $lbl, "run": $run, target: "ghz", conns: 1, concurrency: $c, duration_s: (.total / 1e9),
		 requests: (.statusCodeDistribution.OK // 0), errors: ((.count) - (.statusCodeDistribution.OK // 0)),
		 rps: ((.statusCodeDistribution.OK // 0) / (.total / 1e9)),
		 all: {n: (.statusCodeDistribution.OK // 0), p50_us: pct(50), p90_us: pct(90), p99_us: pct(99), p999_us: 0, max_us: (.slowest / 1000)},
		 server_cpu_us_per_req: ($ticks * 10000 / ((.statusCodeDistribution.OK // 1))), loadavg: $load}' "$raw"
}

suite_ghz() {
	if [ ! -x "$GHZ" ]; then
		echo "ghz not found (go install github.com/bojand/ghz/cmd/ghz@latest)" >&2
		return 1
	fi
	local f=$OUT/ghz.jsonl
	: >"$f"
	"$LOADGEN" -protoset "$OUT/authz.protoset"
	"$LOADGEN" -ghz-data "$OUT/ghz-10k.json" -tokens 10000
	start_issuer 0
	start_noop
	start_leasegate 256
	for run in $(seq "$RUNS"); do
		"$LOADGEN" -target "$LG_ADDR" -tokens 10000 -concurrency 16 -prime-only -prime-method DELETE
		for c in 1 16 64; do
			log "ghz: run $run/$RUNS, concurrency $c"
			ghz_measure ghz-noop/c$c "$NOOP_ADDR" "$NOOP_PID" "$run" "$c" >>"$f"
			ghz_measure ghz-leasegate/c$c "$LG_ADDR" "$LG_PID" "$run" "$c" >>"$f"
			measure noop/c$c "$NOOP_ADDR" "$NOOP_PID" "$run" -concurrency "$c" -tokens 10000 >>"$f"
			measure leasegate/c$c "$LG_ADDR" "$LG_PID" "$run" -concurrency "$c" -tokens 10000 >>"$f"
		done
	done
	{
		cat "$OUT/env.txt"
		echo "ghz $("$GHZ" --version 2>&1); ghz reports no p99.9 (0 below) and its client costs more CPU per request than loadgen's"
		echo
		"$LOADGEN" -summarize "$f" -ratio ghz-leasegate=ghz-noop,leasegate=noop
	} >"$OUT/ghz.md"
	cat "$OUT/ghz.md"
	stop "$LG_PID"
	stop "$NOOP_PID"
	stop "$ISSUER_PID"
}

suite_miss() {
	local f=$OUT/miss.jsonl
	: >"$f"
	start_issuer 5ms
	start_leasegate 256
	for run in $(seq "$RUNS"); do
		log "miss: run $run/$RUNS"
		"$LOADGEN" -target "$LG_ADDR" -tokens 10000 -concurrency 16 -prime-only -prime-method DELETE
		# A miss on its own: one stream of never-seen tokens.
		measure miss-only/c1 "$LG_ADDR" "$LG_PID" "$run" -concurrency 1 -tokens 10000 -new-frac 1 >>"$f"
		measure miss-only/c16 "$LG_ADDR" "$LG_PID" "$run" -concurrency 16 -tokens 10000 -new-frac 1 >>"$f"
		# 10% of requests miss, 64 streams.
		measure mixed10/c64 "$LG_ADDR" "$LG_PID" "$run" -concurrency 64 -tokens 10000 -new-frac 0.1 >>"$f"
		measure hits/c64 "$LG_ADDR" "$LG_PID" "$run" -concurrency 64 -tokens 10000 >>"$f"
		# Hits of other tokens with and without a concurrent miss stream
		# (16 hit streams; 16 streams of never-seen tokens beside them).
		measure hits-alone/c16 "$LG_ADDR" "$LG_PID" "$run" -concurrency 16 -tokens 10000 >>"$f"
		"$LOADGEN" -target "$LG_ADDR" -concurrency 16 -new-frac 1 -duration "$DURATION" -warmup "$WARMUP" \
			-label misses-beside/c16 -run "$run" -json >>"$f" &
		local bg=$!
		measure hits-beside-misses/c16 "$LG_ADDR" "$LG_PID" "$run" -concurrency 16 -tokens 10000 >>"$f"
		wait "$bg"
		# The same, with the misses at a trickle (200/s): a lock held across
		# issuer calls would stall the hits for 5 ms per miss, i.e. always.
		"$LOADGEN" -target "$LG_ADDR" -concurrency 16 -rate 200 -new-frac 1 -duration "$DURATION" -warmup "$WARMUP" \
			-label trickle-misses-beside/c16-r200 -run "$run" -json >>"$f" &
		bg=$!
		measure hits-beside-trickle/c16 "$LG_ADDR" "$LG_PID" "$run" -concurrency 16 -tokens 10000 >>"$f"
		wait "$bg"
	done
	{
		cat "$OUT/env.txt"
		echo "issuer answers after 5 ms; leasegate holds 10k primed leases; misses use never-seen tokens"
		echo
		"$LOADGEN" -summarize "$f"
	} >"$OUT/miss.md"
	cat "$OUT/miss.md"
	stop "$LG_PID"
	stop "$ISSUER_PID"
}

# mem_point LABEL: one line of leases, RSS and heap for the running leasegate.
mem_point() {
	sleep 2
	printf '| %s | %s | %s | %s | %s |\n' "$1" "$(metric leasegate_leases)" \
		"$(($(rss_kib "$LG_PID") / 1024))" \
		"$(($(metric go_memstats_heap_inuse_bytes) / 1048576))" \
		"$(($(metric go_memstats_heap_alloc_bytes) / 1048576))"
}

# suite_memory: RSS and heap of the process while 1M distinct tokens (five
# sets of 200k) are validated, under max_memory_mb 64 and 256; the server
# sets its soft memory limit from max_memory_mb (server.MemoryLimitFor).
suite_memory() {
	local f=$OUT/memory.md
	start_issuer 0
	{
		echo '```'
		cat "$OUT/env.txt"
		echo '```'
		echo
		echo "| max_memory_mb | distinct tokens sent | leases held | RSS MiB | heap in use MiB | heap alloc MiB |"
		echo "|---|---|---|---|---|---|"
	} >"$f"
	for mb in ${MEM_MB:-64 256}; do
		log "memory: max_memory_mb $mb, 1M tokens"
		LG_NAME=leasegate-mem start_leasegate "$mb"
		mem_point "$mb | 0" >>"$f"
		for step in 1 2 3 4 5; do
			"$LOADGEN" -target "$LG_ADDR" -tokens 200000 -token-base $(((step - 1) * 200000)) -concurrency 32 -prime-only
			mem_point "$mb | $((step * 200000))" >>"$f"
		done
		kill -0 "$LG_PID" || echo "leasegate died under max_memory_mb $mb" >>"$f"
		stop "$LG_PID"
	done
	stop "$ISSUER_PID"
	cat "$f"
}

# suite_fleet: the lease-hit path of a fleet replica (real redis-server,
# fleet mode on, every request a local hit) against a single replica.
suite_fleet() {
	local f=$OUT/fleet.jsonl
	: >"$f"
	local rport
	rport=$("$LOADGEN" -free-ports 1)
	redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no >>"$OUT/redis.log" 2>&1 &
	local redis_pid=$!
	PIDS+=("$redis_pid")
	for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
	head -c 48 /dev/urandom | base64 >"$OUT/fleet.key"
	start_issuer 0
	start_leasegate 256
	local single_addr=$LG_ADDR single_pid=$LG_PID
	start_leasegate 256 "fleet: { redis: { addresses: [\"127.0.0.1:$rport\"] }, secret_file: \"$OUT/fleet.key\" }"
	local fleet_addr=$LG_ADDR fleet_pid=$LG_PID
	for run in $(seq "$RUNS"); do
		log "fleet: run $run/$RUNS, (re)validating 10k leases on both"
		"$LOADGEN" -target "$single_addr" -tokens 10000 -concurrency 16 -prime-only -prime-method DELETE
		"$LOADGEN" -target "$fleet_addr" -tokens 10000 -concurrency 16 -prime-only -prime-method DELETE
		for c in 1 16 64; do
			if ((run % 2)); then
				measure single/c$c "$single_addr" "$single_pid" "$run" -concurrency "$c" -tokens 10000 >>"$f"
				measure fleet/c$c "$fleet_addr" "$fleet_pid" "$run" -concurrency "$c" -tokens 10000 >>"$f"
			else
				measure fleet/c$c "$fleet_addr" "$fleet_pid" "$run" -concurrency "$c" -tokens 10000 >>"$f"
				measure single/c$c "$single_addr" "$single_pid" "$run" -concurrency "$c" -tokens 10000 >>"$f"
			fi
		done
	done
	{
		cat "$OUT/env.txt"
		echo
		"$LOADGEN" -summarize "$f" -ratio fleet=single
	} >"$OUT/fleet.md"
	cat "$OUT/fleet.md"
	stop "$fleet_pid"
	stop "$single_pid"
	stop "$ISSUER_PID"
	stop "$redis_pid"
}

# The peers: opa-envoy-plugin, cached in .cache/bin like Hydra. The module
# proxy is tried first (OPA_ENVOY_VERSION); where it does not serve the
# module, OPA_ENVOY_SRC names a checkout to build from (its dependencies
# come from the module proxy). A binary already there is used as it is.
OPA_ENVOY=${OPA_ENVOY:-$ROOT/.cache/bin/opa-envoy-plugin}
OPA_ENVOY_VERSION=${OPA_ENVOY_VERSION:-v1.19.1-envoy}
build_opa() {
	[ -x "$OPA_ENVOY" ] && return 0
	log "building opa-envoy-plugin into $OPA_ENVOY"
	mkdir -p "$(dirname "$OPA_ENVOY")"
	if GOBIN=$OUT/gobin go install "github.com/open-policy-agent/opa-envoy-plugin/cmd/opa-envoy-plugin@$OPA_ENVOY_VERSION"; then
		mv "$OUT/gobin/opa-envoy-plugin" "$OPA_ENVOY"
		echo "github.com/open-policy-agent/opa-envoy-plugin $OPA_ENVOY_VERSION (module proxy)" >"$OPA_ENVOY.stamp"
	elif [ -n "${OPA_ENVOY_SRC:-}" ]; then
		(cd "$OPA_ENVOY_SRC" && GOFLAGS=-mod=mod go build -o "$OPA_ENVOY" ./cmd/opa-envoy-plugin)
		echo "github.com/open-policy-agent/opa-envoy-plugin $(git -C "$OPA_ENVOY_SRC" describe --tags 2>/dev/null || echo source) (from $OPA_ENVOY_SRC)" >"$OPA_ENVOY.stamp"
	else
		echo "opa-envoy-plugin: the module proxy refused $OPA_ENVOY_VERSION and OPA_ENVOY_SRC is not set; the OPA rows are left out" >&2
		return 1
	fi
}

# start_opa NAME POLICY: OPA-Envoy serving ext_authz v3 with one policy
# (package envoy.authz, rule allow); sets OPA_ADDR, OPA_PID.
start_opa() {
	local ports
	mapfile -t ports < <("$LOADGEN" -free-ports 2)
	OPA_ADDR=127.0.0.1:${ports[0]}
	cat >"$OUT/opa-$1.yaml" <<EOF
plugins:
  envoy_ext_authz_grpc:
    addr: "$OPA_ADDR"
    path: envoy/authz/allow
decision_logs:
  console: false
EOF
	"$OPA_ENVOY" run --server --addr "127.0.0.1:${ports[1]}" --log-level error --disable-telemetry \
		-c "$OUT/opa-$1.yaml" "$2" 2>>"$OUT/opa-$1.log" &
	OPA_PID=$!
	PIDS+=("$OPA_PID")
	for _ in $(seq 200); do
		curl -fsS "http://127.0.0.1:${ports[1]}/health?plugins" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "opa-envoy-plugin ($1) did not become healthy" >&2
	return 1
}

# opa_policies writes the two OPA policies: a header-presence check, and
# io.jwt.decode_verify of the bearer JWT against the bench key's JWKS with
# the same issuer and audience checks leasegate makes.
opa_policies() {
	cat >"$OUT/opa-header.rego" <<'EOF'
package envoy.authz

default allow := false

allow if startswith(input.attributes.request.http.headers.authorization, "Bearer ")
EOF
	{
		cat <<'EOF'
package envoy.authz

default allow := false

allow if {
	[valid, _, _] := io.jwt.decode_verify(bearer, {"cert": jwks, "iss": "https://jwt.bench.example", "aud": "https://storage.example.org"})
	valid
}

bearer := t if {
	h := input.attributes.request.http.headers.authorization
	startswith(h, "Bearer ")
	t := substring(h, 7, -1)
}
EOF
		printf 'jwks := `%s`\n' "$(cat "$OUT/jwt.key.jwks.json")"
	} >"$OUT/opa-jwt.rego"
}

# start_jwks: the bench key's JWKS over HTTP (leasegate's jwks_uri); the
# key and 10k signed JWTs (jwt-10k.txt) are made once per OUT.
start_jwks() {
	[ -s "$OUT/jwt.key" ] || "$LOADGEN" -jwt-keygen "$OUT/jwt.key"
	if [ ! -s "$OUT/jwt-10k.txt" ]; then
		log "signing 10k RS256 JWTs"
		"$LOADGEN" -jwt-tokens "$OUT/jwt-10k.txt" -jwt-key "$OUT/jwt.key" -issuer-iss https://jwt.bench.example -tokens 10000
	fi
	rm -f "$OUT/jwks.addr"
	"$LOADGEN" -jwks 127.0.0.1:0 -jwt-key "$OUT/jwt.key" -addr-file "$OUT/jwks.addr" 2>>"$OUT/jwks.log" &
	PIDS+=($!)
	wait_file "$OUT/jwks.addr"
	JWKS_ADDR=$(cat "$OUT/jwks.addr")
}

jwt_issuer() {
	cat <<EOF
  - name: bench-jwt
    issuer: "https://jwt.bench.example"
    mode: jwt
    jwks_uri: "http://$JWKS_ADDR/jwks.json"
    audiences: ["https://storage.example.org"]
EOF
}

# start_redis: a redis-server on loopback for the fleet replica; sets
# REDIS_PORT and writes the fleet secret.
start_redis() {
	REDIS_PORT=$("$LOADGEN" -free-ports 1)
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >>"$OUT/redis.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "redis-server did not answer" >&2
	return 1
}

# suite_peers: the ratio table at the top of BENCHMARKS.md. Every server
# runs at once; in each round every server is measured at each stream
# count, in an order that rotates from round to round, and each ratio
# pairs a server's run with the floor's run of the same round.
suite_peers() {
	local f=$OUT/peers.jsonl
	: >"$f"
	start_issuer 0
	start_noop
	local -A addr pid prime
	addr[noop]=$NOOP_ADDR pid[noop]=$NOOP_PID
	rm -f "$OUT/noop.sock"
	"$LOADGEN" -noop-server "unix://$OUT/noop.sock" -addr-file "$OUT/noop-unix.addr" 2>>"$OUT/noop.log" &
	pid[noop-unix]=$! && PIDS+=($!) && wait_file "$OUT/noop-unix.addr" && addr[noop-unix]=$(cat "$OUT/noop-unix.addr")
	LG_NAME=leasegate start_leasegate 256
	addr[leasegate]=$LG_ADDR pid[leasegate]=$LG_PID prime[leasegate]=opaque
	LG_NAME=leasegate-unix LG_LISTEN="unix://$OUT/leasegate.sock" start_leasegate 256
	addr[leasegate-unix]=$LG_ADDR pid[leasegate-unix]=$LG_PID prime[leasegate-unix]=opaque
	local servers=(noop noop-unix leasegate leasegate-unix)
	if command -v redis-server >/dev/null && start_redis; then
		head -c 48 /dev/urandom | base64 >"$OUT/fleet.key"
		LG_NAME=fleet start_leasegate 256 "fleet: { redis: { addresses: [\"127.0.0.1:$REDIS_PORT\"] }, secret_file: \"$OUT/fleet.key\" }"
		addr[fleet]=$LG_ADDR pid[fleet]=$LG_PID prime[fleet]=opaque
		servers+=(fleet)
	fi
	start_jwks
	LG_NAME=leasegate-jwt LG_ISSUERS=$(jwt_issuer) start_leasegate 256
	addr[leasegate-jwt]=$LG_ADDR pid[leasegate-jwt]=$LG_PID prime[leasegate-jwt]=jwt
	addr[leasegate-jwt-fresh]=$LG_ADDR pid[leasegate-jwt-fresh]=$LG_PID
	servers+=(leasegate-jwt leasegate-jwt-fresh)
	if build_opa; then
		opa_policies
		start_opa header "$OUT/opa-header.rego"
		addr[opa-header]=$OPA_ADDR pid[opa-header]=$OPA_PID
		start_opa jwt "$OUT/opa-jwt.rego"
		addr[opa-jwt]=$OPA_ADDR pid[opa-jwt]=$OPA_PID
		servers+=(opa-header opa-jwt)
	fi
	# A table without a row would be spliced over one that has it.
	local w
	for w in fleet opa-header opa-jwt; do
		if [[ " ${servers[*]} " != *" $w "* ]] && [ "${PARTIAL:-0}" != 1 ]; then
			echo "peers: no $w row (redis-server: make deps; opa-envoy-plugin: OPA_ENVOY_SRC=<a checkout>); PARTIAL=1 measures without it" >&2
			exit 1
		fi
	done
	local jwt=(-token-file "$OUT/jwt-10k.txt")
	# Each server's floor, measured right beside it: the no-op server on
	# the same transport. The Unix-socket floor's own floor is the TCP one.
	local -A floor=([noop-unix]=noop [leasegate-unix]=noop-unix)
	servers=("${servers[@]:1}") # the TCP floor is everyone's pair, not a row
	for run in $(seq "$RUNS"); do
		log "peers: run $run/$RUNS, (re)validating 10k leases on each leasegate"
		for s in "${!prime[@]}"; do
			if [ "${prime[$s]}" = jwt ]; then
				"$LOADGEN" -target "${addr[$s]}" -tokens 10000 -concurrency 16 -prime-only -prime-method DELETE "${jwt[@]}"
			else
				"$LOADGEN" -target "${addr[$s]}" -tokens 10000 -concurrency 16 -prime-only -prime-method DELETE
			fi
		done
		local n=${#servers[@]} k
		for c in $STREAMS; do
			for ((k = 0; k < n; k++)); do
				s=${servers[$(((k + run) % n))]}
				local fl=${floor[$s]:-noop} extra=()
				case $s in
				leasegate-jwt | opa-jwt) extra=("${jwt[@]}") ;;
				# DELETE is the window-0 tier: every request is a full
				# verification, as for a JWT never seen before.
				leasegate-jwt-fresh) extra=("${jwt[@]}" -mix DELETE=1) ;;
				esac
				log "peers: run $run/$RUNS, $s and its floor ($fl), $c streams"
				# The pair back to back, which one first alternating by round.
				if ((run % 2)); then
					measure "$fl@$s/c$c" "${addr[$fl]}" "${pid[$fl]}" "$run" -concurrency "$c" -tokens 10000 "${extra[@]}" >>"$f"
				fi
				measure "$s/c$c" "${addr[$s]}" "${pid[$s]}" "$run" -concurrency "$c" -tokens 10000 "${extra[@]}" >>"$f"
				if ((run % 2 == 0)); then
					measure "$fl@$s/c$c" "${addr[$fl]}" "${pid[$fl]}" "$run" -concurrency "$c" -tokens 10000 "${extra[@]}" >>"$f"
				fi
			done
		done
	done
	local names="leasegate=leasegate, lease hit;leasegate-unix=leasegate over a Unix socket (÷ the floor on one);noop-unix=the floor over a Unix socket (÷ the floor over TCP)"
	names+=";fleet=leasegate fleet replica, local hit;leasegate-jwt=leasegate, JWT mode, lease hit;leasegate-jwt-fresh=leasegate, JWT mode, fresh JWT (RS256 verify)"
	names+=";opa-header=OPA-Envoy, header-presence policy;opa-jwt=OPA-Envoy, io.jwt.decode_verify policy"
	local nums="" s2
	for s2 in "${servers[@]}"; do nums+="${nums:+,}$s2${floor[$s2]:+/${floor[$s2]}}"; done
	{
		echo '```'
		cat "$OUT/env.txt"
		[ -f "$OPA_ENVOY.stamp" ] && echo "opa-envoy-plugin: $(cat "$OPA_ENVOY.stamp")"
		echo "$RUNS rounds; in each, per stream count, every server and its floor back to back, $DURATION each after $WARMUP warm-up; one gRPC connection, 10k tokens"
		echo '```'
		echo
		"$LOADGEN" -summarize "$f" -matrix "noop=$nums" -names "$names"
	} >"$OUT/peers.md"
	{
		cat "$OUT/peers.md"
		echo "All runs:"
		echo
		"$LOADGEN" -summarize "$f"
	} >"$OUT/peers-all.md"
	cat "$OUT/peers-all.md"
	for s in noop "${servers[@]}"; do stop "${pid[$s]}"; done
	stop "$ISSUER_PID"
}

# suite_micro: the in-process benchmarks (hit path, lease cache, memory
# per lease), RUNS runs each, with the tags of make build.
suite_micro() {
	local raw=$OUT/micro.txt
	log "micro: in-process benchmarks, $RUNS runs"
	(cd "$ROOT" && go test -tags "$TAGS" -run '^$' -bench '^Benchmark(CheckHit|Decode)$' -benchmem -count "$RUNS" ./authz/ ./envoy/) >"$raw"
	# FleetCheckHit/deny reads the store's health, which a loaded machine
	# can flip mid-run: standalone is the fleet's local hit.
	(cd "$ROOT" && go test -tags "$TAGS" -run '^$' -bench '^BenchmarkFleetCheckHit$/^standalone$' -benchmem -count "$RUNS" ./authz/) >>"$raw"
	(cd "$ROOT" && go test -tags "$TAGS" -run '^$' -bench 'LookupHit|LookupWorkingSet' -benchtime 3000000x -cpu 1,2 -benchmem -count "$RUNS" ./leasecache/) >>"$raw"
	(cd "$ROOT/e2e" && go test -tags "$TAGS" -run '^$' -bench 'HitPath' -benchmem -count "$RUNS" ./cmd/loadgen) >>"$raw"
	(cd "$ROOT" && go test -run '^$' -bench 'Memory' -benchtime 1x -count "$RUNS" ./leasecache/) >"$OUT/micro-memory.txt"
	{
		echo '```'
		cat "$OUT/env.txt"
		echo '```'
		echo
		"$LOADGEN" -gobench "$raw"
	} >"$OUT/micro.md"
	{
		"$LOADGEN" -gobench "$OUT/micro-memory.txt"
	} >"$OUT/micro-memory.md"
	cat "$OUT/micro.md" "$OUT/micro-memory.md"
}

# suite_replay: issuer calls of the Zipf replay against its lower bound.
suite_replay() {
	local n=${REPLAY_REQUESTS:-1000000}
	log "replay: $n requests"
	(cd "$ROOT" && go test -tags "$TAGS" -run 'TestReplayIssuerLoad$' -v -timeout 30m ./authz/ -replay.requests="$n") >"$OUT/replay.txt"
	{
		echo '```'
		grep -E 'requests, [0-9]+ tokens|issuer calls:' "$OUT/replay.txt" | sed 's/^ *replay_test.go:[0-9]*: //'
		echo '```'
	} >"$OUT/replay.md"
	cat "$OUT/replay.md"
}

# update writes the suites' results into BENCHMARKS.md's marked sections.
update() {
	local secs=()
	for s in peers micro micro-memory memory replay; do
		[ -s "$OUT/$s.md" ] && secs+=("$s=$OUT/$s.md")
	done
	[ ${#secs[@]} -gt 0 ] || { echo "update: no results in $OUT" >&2; return 1; }
	"$LOADGEN" -splice "$ROOT/BENCHMARKS.md" -section "$(IFS=,; echo "${secs[*]}")"
	log "BENCHMARKS.md: updated ${secs[*]%%=*}"
}

build
suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(all)
for s in "${suites[@]}"; do
	case $s in
	hit) suite_hit ;;
	ghz) suite_ghz ;;
	miss) suite_miss ;;
	memory) suite_memory ;;
	fleet) suite_fleet ;;
	peers) suite_peers ;;
	micro) suite_micro ;;
	replay) suite_replay ;;
	update) update ;;
	all) suite_peers; suite_micro; suite_memory; suite_replay ;;
	*) echo "unknown suite $s (peers, micro, memory, replay, hit, ghz, miss, fleet, all, update)" >&2; exit 2 ;;
	esac
done
