#!/usr/bin/env bash
# Agent benchmarks in the lab, on the router build (release-cpe profile): link-down detection
# latency over real carrier drops (p50/p99) and the CPU time of one full check cycle.
# Usage: scripts/bench-agent.sh [--drops N] [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --locked --profile release-cpe -p netmedic-agent
cargo build --locked --release -p netmedic-bench --bin netmedic-bench
target=$(realpath "${CARGO_TARGET_DIR:-target}")
NETMEDIC_BIN_DIR="$target/release-cpe" exec "$target/release/netmedic-bench" agent "$@"
