#!/usr/bin/env bash
# Fresh-machine check: packaging/install.sh in a clean environment, then
# `bulkhead doctor`. The environment has a new, empty HOME and a PATH of only
# the system directories plus the directory holding cargo; nothing else of
# the developer's environment (no BULKHEAD_*, no ~/.local/bin, no config).
#
# Carried over, on purpose: cargo's own installation (CARGO_HOME and
# RUSTUP_HOME, so rustup's cargo finds its toolchain and the crates it
# already downloaded) and CARGO_TARGET_DIR if set (so CI does not build the
# release twice). Those are "cargo is installed", not developer state.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
fail() { printf 'fresh-machine.sh: FAIL: %s\n' "$*" >&2; exit 1; }

cargo_path="$(command -v cargo)" || fail "cargo is not on PATH"
cargo_dir="$(dirname "$cargo_path")"
system_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
home="$scratch/home"
mkdir -p "$home"

keep=(HOME="$home" PATH="$system_path:$cargo_dir"
      CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}")
[ -n "${CARGO_TARGET_DIR:-}" ] && keep+=(CARGO_TARGET_DIR="$CARGO_TARGET_DIR")

echo "-- install.sh with HOME=$home and PATH=$system_path:$cargo_dir"
env -i "${keep[@]}" bash "$repo/packaging/install.sh"

for f in .local/bin/bulkhead .local/bin/bulkhead-worker .local/share/man/man1/bulkhead.1 \
         .local/share/bash-completion/completions/bulkhead \
         .local/share/zsh/site-functions/_bulkhead \
         .local/share/fish/vendor_completions.d/bulkhead.fish; do
  [ -f "$home/$f" ] || fail "install.sh did not install ~/$f"
done

# The release profile strips the line tables; a binary that carried them
# again would be ~80 MB.
max_mb=30
size="$(stat -c %s "$home/.local/bin/bulkhead")"
[ "$size" -lt $((max_mb * 1024 * 1024)) ] \
  || fail "the installed bulkhead is $((size / 1024 / 1024)) MiB, over ${max_mb} MiB: is the release profile's strip gone?"
echo "installed bulkhead: $((size / 1024 / 1024)) MiB (under ${max_mb} MiB)"

echo "-- install.sh again (idempotent: nothing changes)"
second="$(env -i "${keep[@]}" bash "$repo/packaging/install.sh" --no-build)"
if grep -q "^  installed " <<<"$second"; then
  fail "a second install.sh replaced files: $(grep '^  installed ' <<<"$second")"
fi

echo "-- bulkhead doctor, with only ~/.local/bin and the system on PATH"
(cd "$home" && env -i HOME="$home" PATH="$home/.local/bin:$system_path" bulkhead doctor) \
  | tee "$scratch/doctor.txt"
grep -q "^worker: *$home/.local/bin/bulkhead-worker" "$scratch/doctor.txt" \
  || fail "doctor did not use the installed worker"

echo "-- install.sh without cargo fails clearly"
if PATH="$system_path" command -v cargo >/dev/null; then
  echo "NOT CHECKED: the system directories hold a cargo ($(PATH="$system_path" command -v cargo))"
  echo "fresh-machine.sh: OK"
  exit 0
fi
if msg="$(env -i HOME="$home" PATH="$system_path" bash "$repo/packaging/install.sh" 2>&1)"; then
  fail "install.sh succeeded without cargo on PATH"
fi
grep -q "cargo is not on PATH" <<<"$msg" || fail "install.sh without cargo said: $msg"
echo "fresh-machine.sh: OK"
