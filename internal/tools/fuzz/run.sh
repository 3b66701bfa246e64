#!/usr/bin/env bash
# Runs every native fuzz target of the module for FUZZTIME each.
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" at the -fuzztime boundary on a loaded machine (go.dev/issue/75804,
# fixed in Go 1.27): no input failed and none is written. Such a run is
# repeated once; a run that writes a failing input, or fails any other way,
# or fails twice, fails the job with its output shown.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5s}
GOTAGS=${GOTAGS:-}

coordinator_race() {
	grep -q 'context deadline exceeded' <<<"$1" && ! grep -q 'Failing input written to' <<<"$1"
}

run_target() {
	local pkg=$1 t=$2 out
	for attempt in 1 2; do
		if out=$("$GO" test -tags "$GOTAGS" -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1); then
			return 0
		fi
		if [[ $attempt == 1 ]] && coordinator_race "$out"; then
			echo "  $t: fuzz coordinator deadline race (no failing input); running it again"
			continue
		fi
		echo "$out"
		return 1
	done
}

for pkg in $("$GO" list ./...); do
	dir=$("$GO" list -f '{{.Dir}}' "$pkg")
	for t in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/func //'); do
		echo "fuzz $pkg $t ($FUZZTIME)"
		run_target "$pkg" "$t"
	done
done
