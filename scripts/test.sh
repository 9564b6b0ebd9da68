#!/usr/bin/env bash
# The whole test suite: unit tests, collector tests on real SQLite, and end-to-end tests that
# build an ISP out of network namespaces and watch the real agent binary heal real faults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Everything the later stages download comes now, before any test runs: the fuzz stage's crates
# (fuzz/Cargo.lock), cargo-fuzz and cargo-deb. No stage after this one needs the network.
if [ "${NETMEDIC_SKIP_FUZZ:-0}" != 1 ]; then
  command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
  cargo fetch --manifest-path fuzz/Cargo.toml
fi
[ "${NETMEDIC_SKIP_DEB_TEST:-0}" = 1 ] || packaging/build-debs.sh --install-tool
# The end-to-end tests run the agent and collector binaries: build them first.
cargo build --workspace --bins --locked
# The VM lab's guest (tests/src/vm) runs the agent statically linked; the explicit --target keeps
# the flag away from build scripts and proc-macros (output: target/x86_64-unknown-linux-gnu/debug).
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build -p netmedic-agent --locked --target x86_64-unknown-linux-gnu
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
# Every fuzz target for 20 s (scripts/fuzz.sh; README "Fuzzing"). NETMEDIC_SKIP_FUZZ=1 skips it.
[ "${NETMEDIC_SKIP_FUZZ:-0}" = 1 ] || scripts/fuzz.sh 20
# The Debian packages (packaging/README.md): build both .debs, install, upgrade and purge them in
# a throwaway overlay root; leaves nothing on this machine. NETMEDIC_SKIP_DEB_TEST=1 skips it.
if [ "${NETMEDIC_SKIP_DEB_TEST:-0}" != 1 ]; then
  packaging/test-debs.sh
fi
