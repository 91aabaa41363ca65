#!/usr/bin/env bash
# Static build for any x86_64 Linux: both binaries linked against musl, no
# shared libraries (not even libc), so they run on any distribution.
#   packaging/musl.sh            release build; prints where the binaries are
#   packaging/musl.sh --check    the same in the dev profile (faster; used by
#                                scripts/test), then checks and runs them
# Needs: rustup target add x86_64-unknown-linux-musl, and musl-gcc
# (apt-get install musl-tools): ring (TLS of remote MCP servers and model
# APIs) and the bundled SQLite of the session store compile C, and cc-rs
# finds no C compiler for the musl target without it. Install the result by
# copying
# target/x86_64-unknown-linux-musl/release/bulkhead{,-worker} side by side.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
fail() { printf 'musl.sh: FAIL: %s\n' "$*" >&2; exit 1; }

target=x86_64-unknown-linux-musl
profile=release
flags=(--release)
if [ "${1:-}" = --check ]; then
  profile=debug
  flags=()
fi
rustup target list --installed 2>/dev/null | grep -qx "$target" \
  || fail "the $target target is not installed (rustup target add $target)"
command -v musl-gcc >/dev/null \
  || fail "musl-gcc is not installed (apt-get install musl-tools); ring's C code needs it"
export CC_x86_64_unknown_linux_musl=musl-gcc

cargo build --locked "${flags[@]}" --target "$target" -p bulkhead -p bulkhead-worker --bins
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
case "$target_dir" in /*) ;; *) target_dir="$repo/$target_dir" ;; esac
out="$target_dir/$target/$profile"

for b in bulkhead bulkhead-worker; do
  # Static: no program interpreter (ld.so) and no NEEDED libraries.
  if LC_ALL=C readelf -ld "$out/$b" | grep -qE 'INTERP|\(NEEDED\)'; then
    fail "$out/$b is dynamically linked: $(LC_ALL=C readelf -d "$out/$b" | grep NEEDED | tr -s ' ')"
  fi
done
echo "static binaries: $out/bulkhead $out/bulkhead-worker"

if [ "${1:-}" = --check ]; then
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  run() { (cd "$scratch" && env -i PATH=/usr/bin:/bin HOME="$scratch" "$out/bulkhead" "$@"); }
  run --version | grep -q "target:   $target" || fail "bulkhead --version does not name $target"
  run --version | grep -q "MISMATCH\|NOT FOUND" && fail "the musl bulkhead does not pair with its worker"
  got="$(run run shell '{"command":"echo static"}' --timeout 30s)"
  [ "$got" = static ] || fail "bulkhead run printed \"$got\""
  echo "musl.sh: OK"
fi
