#!/usr/bin/env bash
# Collector load benchmark. Prints figures; asserts nothing.
#   heartbeats/s, one per request, with p50/p99 latency; incident events/s in batches of 500;
#   RSS per device after N distinct devices heartbeat — on SQLite and on a throwaway PostgreSQL.
# The load generator (netmedic-loadgen) is a separate process; everything stays on 127.0.0.1 or
# unix sockets, and every phase is bounded (about 2 minutes in all).
# Usage: scripts/bench-collector.sh [DURATION_SECS]   (run as root: PostgreSQL runs as `postgres`)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
DEVICES=${DEVICES:-10000}
HB_CONNS=${HB_CONNS:-256}
EV_CONNS=${EV_CONNS:-8}

. scripts/lib/collector.sh
build_collector_bins

bench_workdir nm-bench

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# CPU time (user+system) of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# phase WHAT ARGS...: runs the load generator, prints its line and the collector's CPU cost per
# item — the figure that does not depend on what else this shared 2-core box is running.
phase() {
  local per=$1; shift
  local c0 out c1 ok
  c0=$(cpu_ticks "$COLLECTOR_PID")
  out=$("$LOADGEN" "$@")
  c1=$(cpu_ticks "$COLLECTOR_PID")
  echo "$out"
  ok=$(echo "$out" | sed -n 's/.*(\([0-9]*\) requests ok.*/\1/p')
  if [ -n "$ok" ] && [ "$ok" -gt 0 ]; then
    awk -v t=$((c1 - c0)) -v hz="$HZ" -v n="$ok" -v per="$per" 'BEGIN {
      us = t / hz * 1e6 / (n * per);
      printf "  collector CPU: %.1f us per item (%.2f s for %d items) -> %.0f items/s if it had both cores\n", us, t / hz, n * per, 2e6 / us }'
  fi
}

bench_backend() { # NAME URL
  local name=$1 url=$2
  echo "== $name =="
  "$LOADGEN" enrol --db "$url" --devices "$DEVICES" --out "$WORK/tokens.txt"
  start_collector "$url"
  local rss0; rss0=$(rss_kb "$COLLECTOR_PID")
  # Memory per device: every enrolled device heartbeats once (distinct devices).
  # Few connections, so connection buffers do not pass for device state.
  "$LOADGEN" heartbeats --addr "$ADDR" --tokens "$WORK/tokens.txt" --connections 8 \
    --duration-secs 6 >/dev/null
  local rss1; rss1=$(rss_kb "$COLLECTOR_PID")
  phase 1 heartbeats --addr "$ADDR" --tokens "$WORK/tokens.txt" --connections "$HB_CONNS" \
    --duration-secs "$DUR"
  phase 500 events --addr "$ADDR" --tokens "$WORK/tokens.txt" --connections "$EV_CONNS" \
    --batch 500 --duration-secs "$DUR"
  local rss2; rss2=$(rss_kb "$COLLECTOR_PID")
  echo "memory: RSS ${rss0} KiB idle -> ${rss1} KiB after ${DEVICES} devices heartbeat -> ${rss2} KiB after the runs;" \
       "$(( (rss1 - rss0) * 1024 / DEVICES )) bytes/device (state lives in the database, not the process)"
  stop_collector
}

bench_backend sqlite "sqlite://$WORK/collector.sqlite"

start_postgres
bench_backend postgresql "$PG_URL"
