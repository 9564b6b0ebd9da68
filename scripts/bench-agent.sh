#!/usr/bin/env bash
# Agent benchmarks in the lab, on the router build (release-cpe profile): link-down detection
# latency over real carrier drops (p50/p99), the CPU time of one full check cycle, and the CPU
# and wake-ups of one cycle of each check alone.
# Usage: scripts/bench-agent.sh [--drops N] [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --locked --profile release-cpe -p netmedic-agent
# The bench binary only drives the lab and reads /proc: the dev profile is enough (no release
# build of the collector's dependency tree, which the lab harness links).
cargo build --locked -p netmedic-bench --bin netmedic-bench
target=$(realpath "${CARGO_TARGET_DIR:-target}")
NETMEDIC_BIN_DIR="$target/release-cpe" exec "$target/debug/netmedic-bench" agent "$@"
