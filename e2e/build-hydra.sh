#!/usr/bin/env bash
# Builds the ORY Hydra binary pinned in e2e/go.mod into <repo>/.cache/bin/hydra.
#
# Idempotent: a stamp file next to the binary records the pinned version and
# build tags; the build runs only when the binary is missing or the stamp
# differs. Set FORCE=1 to rebuild anyway. Needs Go and a C compiler (Hydra's
# in-memory database is SQLite, which requires cgo).
set -euo pipefail

e2e_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(dirname "$e2e_dir")"
bin_dir="$repo_dir/.cache/bin"
bin="$bin_dir/hydra"
stamp="$bin_dir/hydra.stamp"
module="github.com/ory/hydra/v2"
tags="sqlite,sqlite_omit_load_extension"

die() {
	echo "build-hydra: $*" >&2
	exit 1
}

command -v go >/dev/null 2>&1 || die "go is not on PATH"

# The version comes from e2e/go.mod (the `tool` directive pins it there).
version="$(awk -v m="$module" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$e2e_dir/go.mod")"
[ -n "$version" ] || die "$module is not required in $e2e_dir/go.mod"

want="$version $tags"
if [ "${FORCE:-0}" != "1" ] && [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	echo "build-hydra: ORY Hydra $version is up to date at $bin"
	exit 0
fi

cc="${CC:-gcc}"
command -v "${cc%% *}" >/dev/null 2>&1 || die "C compiler '$cc' not found; Hydra's SQLite driver needs cgo (install gcc)"

mkdir -p "$bin_dir"
echo "build-hydra: building ORY Hydra $version (first time takes ~2-4 minutes)..."
start="$(date +%s)"

# Build to a temporary name and rename, so an interrupted build never leaves
# a binary that looks current.
tmp="$(mktemp "$bin_dir/.hydra.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
CGO_ENABLED=1 go -C "$e2e_dir" build \
	-buildvcs=false \
	-tags "$tags" \
	-ldflags "-X $module/driver/config.Version=$version" \
	-o "$tmp" "$module" || die "go build of $module@$version failed"
chmod +x "$tmp"
mv -f "$tmp" "$bin"
trap - EXIT
printf '%s\n' "$want" >"$stamp"

echo "build-hydra: built $bin in $(($(date +%s) - start))s"
