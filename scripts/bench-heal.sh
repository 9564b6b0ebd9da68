#!/usr/bin/env bash
# The shipped-config heal benchmark in the lab: the real agent runs config/agent.toml with only
# site-specific keys replaced (it prints which), beside the real collector; each local fault
# (route, WAN address, resolv.conf, LAN dnsmasq, conntrack, MTU, WAN admin down) is injected
# N times; it prints detection, fault-gone and collector (resolved, auto-healed) times: median,
# p95 and worst. It asserts nothing and is not part of scripts/test.sh.
# Usage: scripts/bench-heal.sh [--runs N] [--faults route,address,dns,service,conntrack,mtu,admin-down]
# BENCH_PROFILE=debug uses debug builds (quicker to build; the times are the agent's waits,
# not its CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
target=$(realpath "${CARGO_TARGET_DIR:-target}")
if [ "${BENCH_PROFILE:-release}" = debug ]; then
    cargo build --locked -p netmedic-agent -p netmedic-collector --bins
    cargo build --locked -p netmedic-bench --bin netmedic-bench
    exec env NETMEDIC_BIN_DIR="$target/debug" "$target/debug/netmedic-bench" heal "$@"
fi
cargo build --locked --profile release-cpe -p netmedic-agent
cargo build --locked --release -p netmedic-collector -p netmedic-bench --bin netmedic-collector --bin netmedic-bench
# The agent from the router build; the collector next to netmedic-bench (target/release).
NETMEDIC_BIN_DIR="$target/release-cpe" exec "$target/release/netmedic-bench" heal "$@"
