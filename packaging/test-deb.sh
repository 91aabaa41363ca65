#!/usr/bin/env bash
# Builds the Debian package and checks it without touching the system:
# the .deb is unpacked with `dpkg -x` into a scratch root, and bulkhead runs
# from there with an empty environment (PATH of the system dirs, a new HOME):
#   - the package holds both binaries, the man pages, the completions, the
#     sample config and the README snippet;
#   - `bulkhead --version` finds the worker beside it, with the same version;
#   - `bulkhead doctor` works, reads the sample config, and reads it where
#     README.Debian says to copy it (~/.config/bulkhead/bulkhead.toml);
#   - `bulkhead run` runs a tool call and prints its output.
# Called by scripts/test when cargo-deb is installed (.ci/run installs it).
# Needs: cargo, cargo-deb, dpkg-deb.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

fail() { printf 'test-deb.sh: FAIL: %s\n' "$*" >&2; exit 1; }
command -v cargo-deb >/dev/null || fail "cargo-deb is not installed (cargo install cargo-deb --locked)"
command -v dpkg-deb >/dev/null || fail "dpkg-deb is not installed (apt-get install dpkg)"

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
case "$target_dir" in /*) ;; *) target_dir="$repo/$target_dir" ;; esac
rel="$target_dir/release"

echo "-- building both binaries (release, scripts/build-release)"
scripts/build-release
packaging/gen-assets.sh "$rel" "$rel/bulkhead-assets"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
deb="$scratch/bulkhead.deb"
echo "-- cargo deb"
cargo deb -p bulkhead --no-build --strip --fast --output "$deb"

echo "-- contents"
dpkg-deb --info "$deb" | sed -n '/Package:/,/Description:/p'
listing="$(dpkg-deb --contents "$deb" | awk '{print $6}')"
for f in ./usr/bin/bulkhead ./usr/bin/bulkhead-worker \
         ./usr/share/man/man1/bulkhead.1 ./usr/share/man/man1/bulkhead-run.1 \
         ./usr/share/bash-completion/completions/bulkhead \
         ./usr/share/zsh/vendor-completions/_bulkhead \
         ./usr/share/fish/vendor_completions.d/bulkhead.fish \
         ./usr/share/doc/bulkhead/examples/bulkhead.toml \
         ./usr/share/doc/bulkhead/README.Debian ./usr/share/doc/bulkhead/README.md; do
  grep -qxF "$f" <<<"$listing" || fail "the package lacks $f"
done
echo "all expected files present"

root="$scratch/root"
home="$scratch/home"
mkdir -p "$root" "$home"
dpkg -x "$deb" "$root" 2>/dev/null || dpkg-deb -x "$deb" "$root"
bin="$root/usr/bin"
# Only the system's PATH and a new HOME: nothing of the developer's
# environment (no BULKHEAD_WORKER, no cargo) can help the package work.
clean() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$home" "$@"; }

echo "-- bulkhead --version"
version="$(clean "$bin/bulkhead" --version)"
echo "$version"
grep -q "found next to the bulkhead executable" <<<"$version" || fail "bulkhead did not find its worker beside it"
if grep -q "MISMATCH" <<<"$version"; then fail "the packaged worker's version differs"; fi

echo "-- bulkhead doctor"
clean "$bin/bulkhead" doctor | tee "$scratch/doctor.txt"
grep -q "^worker: *$bin/bulkhead-worker" "$scratch/doctor.txt" || fail "doctor does not show the packaged worker"
grep -q "^policies" "$scratch/doctor.txt" || fail "doctor printed no policy verdicts"

echo "-- bulkhead doctor with the sample config"
# `grep >/dev/null`, not `grep -q`: -q exits at the first match, and
# bulkhead's next write would then fail with EPIPE and fail the pipeline.
clean "$bin/bulkhead" --config "$root/usr/share/doc/bulkhead/examples/bulkhead.toml" doctor --no-trial \
  | grep "research" >/dev/null || fail "the sample config's policy does not show in doctor"

echo "-- the sample config, installed as README.Debian says"
install_line="$(grep -E '^ +cp .*/examples/bulkhead\.toml ' "$root/usr/share/doc/bulkhead/README.Debian")" \
  || fail "README.Debian does not say where to copy the sample config"
dest="$(awk '{print $NF}' <<<"$install_line")"
[ "$dest" = "~/.config/bulkhead/bulkhead.toml" ] || fail "README.Debian copies the sample to $dest"
mkdir -p "$home/.config/bulkhead"
cp "$root/usr/share/doc/bulkhead/examples/bulkhead.toml" "$home/.config/bulkhead/bulkhead.toml"
clean "$bin/bulkhead" doctor --no-trial | grep "research" >/dev/null \
  || fail "bulkhead does not read the sample config where README.Debian puts it"
rm -r "$home/.config/bulkhead"

echo "-- bulkhead run"
out="$(cd "$home" && clean "$bin/bulkhead" run shell '{"command":"echo hello from the package"}' --timeout 30s)"
[ "$out" = "hello from the package" ] || fail "bulkhead run printed \"$out\""
echo "$out"

echo "-- completions load"
clean bash -c "source '$root/usr/share/bash-completion/completions/bulkhead' && complete -p bulkhead" >/dev/null \
  || fail "the bash completion script does not load"

echo "test-deb.sh: OK ($(du -h "$deb" | cut -f1) package)"
