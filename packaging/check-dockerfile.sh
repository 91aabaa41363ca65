#!/usr/bin/env bash
# Checks packaging/Dockerfile without a Docker engine (none runs in CI): runs
# the build stage's steps on this machine and lays out the final stage's
# filesystem in a scratch root, then runs bulkhead from it with an empty
# environment. The lines mirrored here must match the Dockerfile exactly;
# if the Dockerfile changes, this script fails until it is updated.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
fail() { printf 'check-dockerfile.sh: FAIL: %s\n' "$*" >&2; exit 1; }

dockerfile=packaging/Dockerfile
for line in \
  'FROM rust:1-slim-bookworm AS build' \
  'COPY . .' \
  'RUN packaging/install.sh --prefix /out/usr/local' \
  'COPY packaging/bulkhead.toml /out/usr/local/share/doc/bulkhead/examples/bulkhead.toml' \
  'FROM debian:bookworm-slim' \
  'COPY --from=build /out/ /' \
  'RUN useradd --create-home --shell /bin/bash bulkhead' \
  'ENTRYPOINT ["bulkhead"]' \
  'CMD ["doctor"]'; do
  grep -qxF "$line" "$dockerfile" || fail "$dockerfile no longer has the line: $line"
done
steps=$(grep -cE '^(RUN|COPY|FROM|ENTRYPOINT|CMD) ' "$dockerfile")
[ "$steps" = 9 ] || fail "$dockerfile has $steps build steps, this check knows 9; update it"
# Not mirrored: `useradd` (the image runs as an unprivileged user; here the
# check runs as whoever runs CI, with a scratch HOME, which is what matters).

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
out="$scratch/out"    # the build stage's /out
root="$scratch/root"  # the final image's /

echo "-- build stage: packaging/install.sh --prefix /out/usr/local"
packaging/install.sh --prefix "$out/usr/local"
mkdir -p "$out/usr/local/share/doc/bulkhead/examples"
cp packaging/bulkhead.toml "$out/usr/local/share/doc/bulkhead/examples/bulkhead.toml"

echo "-- final stage: COPY --from=build /out/ /"
mkdir -p "$root"
cp -a "$out/." "$root/"

home="$scratch/home"
mkdir -p "$home"
run() { (cd "$home" && env -i PATH="$root/usr/local/bin:/usr/bin:/bin" HOME="$home" "$@"); }
echo "-- CMD: bulkhead doctor"
run bulkhead doctor >"$scratch/doctor.txt" || fail "bulkhead doctor failed: $(cat "$scratch/doctor.txt")"
grep -q "^worker: *$root/usr/local/bin/bulkhead-worker" "$scratch/doctor.txt" \
  || fail "doctor did not use the worker of the image layout"
echo "-- bulkhead run"
got="$(run bulkhead run shell '{"command":"echo hello from the image layout"}' --timeout 30s)"
[ "$got" = "hello from the image layout" ] || fail "bulkhead run printed \"$got\""
echo "check-dockerfile.sh: OK (the recipe builds and runs; Docker itself was not used)"
