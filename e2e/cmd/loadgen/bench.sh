#!/usr/bin/env bash
# Issue 9's measurements: the lease-hit path against the no-op gRPC floor,
# a ghz cross-check, the miss path, and memory per lease.
#
#   e2e/cmd/loadgen/bench.sh [hit|ghz|miss|memory|fleet|all]...
#
# Environment: RUNS (5), DURATION (10s), WARMUP (2s), OUT (/tmp/leasegate-bench),
# RATES ("2000 5000": open-loop rates for the 64-stream latency runs),
# MEM_RUNS (RUNS), GHZ (ghz on PATH or ~/go/bin/ghz).
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
RATES=${RATES:-2000 5000}
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

build() {
	log "building leasegate and loadgen"
	(cd "$ROOT" && go build -o "$LG" .)
	(cd "$ROOT/e2e" && go build -o "$LOADGEN" ./cmd/loadgen)
	{
		echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
		echo "kernel: $(uname -r); $(go version)"
		echo "commit: $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- . ':!e2e' || echo ' (+ uncommitted changes)')"
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
start_leasegate() {
	local ports
	mapfile -t ports < <("$LOADGEN" -free-ports 2)
	LG_ADDR=127.0.0.1:${ports[0]}
	LG_ADMIN=127.0.0.1:${ports[1]}
	cat >"$OUT/leasegate.yaml" <<EOF
listen:
  grpc: "$LG_ADDR"
  admin: "$LG_ADMIN"
realm: leasegate
issuers:
  - name: bench
    issuer: "https://issuer.bench.example"
    mode: introspection
    default_for_opaque: true
    introspection:
      endpoint: "http://$ISSUER_ADDR/introspect"
      auth: none
      timeout: 2s
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
	OTEL_SDK_DISABLED=true "$LG" -config "$OUT/leasegate.yaml" 2>>"$OUT/leasegate.log" &
	LG_PID=$!
	PIDS+=("$LG_PID")
	for _ in $(seq 100); do
		curl -fsS "http://$LG_ADMIN/readyz" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "leasegate did not become ready" >&2
	return 1
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

suite_memory() {
	local f=$OUT/memory.md
	start_issuer 0
	{
		cat "$OUT/env.txt"
		echo
		echo "| state | leases | RSS MiB | heap in use MiB | heap alloc MiB |"
		echo "|---|---|---|---|---|"
	} >"$f"
	for run in $(seq "$MEM_RUNS"); do
		log "memory: run $run/$MEM_RUNS, max_memory_mb 1024"
		start_leasegate 1024
		mem_point "run $run: start, max_memory_mb 1024" >>"$f"
		"$LOADGEN" -target "$LG_ADDR" -tokens 100000 -concurrency 32 -prime-only
		mem_point "run $run: 100k leases" >>"$f"
		"$LOADGEN" -target "$LG_ADDR" -tokens 900000 -token-base 100000 -concurrency 32 -prime-only
		mem_point "run $run: 1M leases" >>"$f"
		stop "$LG_PID"
	done
	log "memory: max_memory_mb 64, 1M tokens"
	start_leasegate 64
	mem_point "max_memory_mb 64: start" >>"$f"
	for step in 1 2 3 4 5; do
		# Five disjoint sets of 200k tokens: the bound must evict, RSS must level off.
		"$LOADGEN" -target "$LG_ADDR" -tokens 200000 -token-base $(((step - 1) * 200000)) -concurrency 32 -prime-only
		mem_point "max_memory_mb 64: after $((step * 200000)) distinct tokens" >>"$f"
	done
	echo "leasegate alive after the 64 MB runs: $(kill -0 "$LG_PID" && echo yes || echo NO)" >>"$f"
	stop "$LG_PID"
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
	all) suite_hit; suite_ghz; suite_miss; suite_memory ;;
	*) echo "unknown suite $s (hit, ghz, miss, memory, fleet, all)" >&2; exit 2 ;;
	esac
done
