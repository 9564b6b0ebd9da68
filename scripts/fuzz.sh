#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 20: CI's short bounded run;
# README "Fuzzing" has the long one). Installs cargo-fuzz (crates.io) when it is missing. Uses a
# nightly toolchain when rustup has one, else stable with RUSTC_BOOTSTRAP=1 (the sanitizer flags
# cargo-fuzz passes are nightly-only). Exits non-zero on the first target that finds a crash;
# the reproducer is in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
case "$secs" in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
# fuzz/Cargo.lock is committed (started from the main workspace's lock: the targets fuzz the
# versions the product ships), so the build needs no registry once scripts/test.sh fetched it.
targets=$(cargo "${toolchain[@]}" fuzz list --fuzz-dir fuzz)
# A short run (CI's, at most 60 s a target) builds unoptimised and without AddressSanitizer:
# the agent is safe Rust, so a panic is what such a run can find, and the build takes a few
# minutes instead of tens on two cores. Longer runs get cargo-fuzz's optimised ASan build.
build=()
if [ "$secs" -le 60 ]; then build=(--dev --sanitizer none); fi
# Build all targets once, then run each within its time budget.
cargo "${toolchain[@]}" fuzz build "${build[@]}" --fuzz-dir fuzz
for t in $targets; do
  mkdir -p "fuzz/corpus/$t"
  seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  echo "fuzz: $t for ${secs} s"
  cargo "${toolchain[@]}" fuzz run "${build[@]}" --fuzz-dir fuzz "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
done
