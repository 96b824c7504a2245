#!/usr/bin/env bash
# Builds the Debian package (target/debian/ticketgate_*.deb) with cargo-deb:
# the binary, the systemd unit, sysusers and tmpfiles snippets, the man
# page, shell completions, a sample config and the README.
#   cargo install cargo-deb --locked   (once)
#   deploy/build-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked
assets=deploy/debian/generated
rm -rf "$assets" && mkdir -p "$assets"
bin="$target/release/ticketgate"
"$bin" man | gzip -9n > "$assets/ticketgate.1.gz"
"$bin" completions bash > "$assets/ticketgate.bash"
"$bin" completions zsh > "$assets/_ticketgate"
"$bin" completions fish > "$assets/ticketgate.fish"
tmp="$(mktemp -d)"
"$bin" --config "$tmp/ticketgate.toml" init --system >/dev/null 2>&1
# The sample, not this machine's secret.
sed 's/^token_secret = .*/token_secret = "change-me"/' "$tmp/ticketgate.toml" > "$assets/ticketgate.toml.example"
rm -rf "$tmp"
cargo deb --no-build "$@"
