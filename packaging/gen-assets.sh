#!/usr/bin/env bash
# Generates the man pages and shell completions from a built bulkhead:
#   packaging/gen-assets.sh BIN_DIR OUT_DIR
# writes OUT_DIR/man/bulkhead*.1 and OUT_DIR/completions/{bulkhead,
# _bulkhead,bulkhead.fish} (bash, zsh, fish). They come from the binary's own
# clap grammar (`bulkhead man`, `bulkhead completions SHELL`), so they match
# its flags exactly. Used by install.sh and, for the Debian package, by
# test-deb.sh (OUT_DIR = target/release/bulkhead-assets, where the
# [package.metadata.deb] assets in tui/Cargo.toml look).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BIN_DIR OUT_DIR" >&2; exit 2; }
bin="$1/bulkhead"
out="$2"
[ -x "$bin" ] || { echo "gen-assets.sh: $bin is missing or not executable; build first" >&2; exit 1; }
rm -rf "$out/man" "$out/completions"
mkdir -p "$out/man" "$out/completions"
"$bin" man --out-dir "$out/man"
"$bin" completions bash >"$out/completions/bulkhead"
"$bin" completions zsh >"$out/completions/_bulkhead"
"$bin" completions fish >"$out/completions/bulkhead.fish"
