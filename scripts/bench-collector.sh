#!/usr/bin/env bash
# Collector load benchmark. Prints figures and ratios; asserts nothing.
#   1. heartbeats, one per request, from `wrk` (HB_CONNS connections): the collector on SQLite and
#      on PostgreSQL beside VictoriaMetrics (Debian's `victoria-metrics`, one Prometheus-format
#      sample per request) — same load generator, same connections, same run, ROUNDS rounds
#      interleaved; medians and the ratio collector/VictoriaMetrics; beside them the ceiling of
#      the HTTP stack: `netmedic-loadgen hello` (the collector's connection loop and axum, one
#      route that answers a fixed document) under the same wrk requests;
#   2. the project's own load generator: heartbeats/s with p50/p99 latency, incident events/s in
#      batches of 500, with the collector's CPU per item;
#   3. RSS per device after N distinct devices heartbeat;
#   4. the reconnect storm: STORM_AGENTS agents connect at once, each sends a report batch and a
#      heartbeat, retrying after 429 + Retry-After; counts statuses (5xx must be 0) and compares
#      the events acked with the events stored.
# Installs `wrk` and `victoria-metrics` from Debian when missing. Every process is a separate one,
# everything stays on 127.0.0.1 or unix sockets, and every phase is bounded.
# Usage: scripts/bench-collector.sh [DURATION_SECS]   (run as root: PostgreSQL runs as `postgres`)
#   env: ROUNDS (3), HB_CONNS (256), DEVICES (10000), STORM_AGENTS (5000), PARTS ("vm loadgen
#   storm"), COLLECTOR and LOADGEN (binaries to use instead of building them), PERF_DIR (when
#   set: `perf record -F 499 -g` of the collector during its first wrk round of each backend,
#   the flat profile by symbol written to PERF_DIR/NAME.txt).
#   The wrk rounds cycle through the DEVICES enrolled devices: with the default 10,000 every
#   device heartbeats about twice a second and nearly all are answered from the collector's
#   3-second token cache; DEVICES=100000 makes every heartbeat miss it (each device comes round
#   again only after ~5 s at 20,000 req/s), the shape of a real fleet on a five-minute interval.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
DEVICES=${DEVICES:-10000}
HB_CONNS=${HB_CONNS:-256}
EV_CONNS=${EV_CONNS:-8}
ROUNDS=${ROUNDS:-3}
STORM_AGENTS=${STORM_AGENTS:-5000}
# Which parts to run (space-separated): vm loadgen storm.
PARTS=${PARTS:-"vm loadgen storm"}

. scripts/lib/collector.sh
# COLLECTOR and LOADGEN preset (e.g. binaries kept from an earlier commit): no build.
if [ -z "${COLLECTOR:-}" ] || [ -z "${LOADGEN:-}" ]; then build_collector_bins; fi

if ! command -v wrk >/dev/null || ! command -v victoria-metrics >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk victoria-metrics >&2
fi
WRK_LUA=$(realpath bench/wrk/requests.lua)

bench_workdir nm-bench
VM_PID=""
HELLO_PID=""
stop_vm() {
  if [ -n "$VM_PID" ]; then kill "$VM_PID" 2>/dev/null && wait "$VM_PID" 2>/dev/null || true; VM_PID=""; fi
  if [ -n "$HELLO_PID" ]; then kill "$HELLO_PID" 2>/dev/null && wait "$HELLO_PID" 2>/dev/null || true; HELLO_PID=""; fi
}
trap 'stop_vm; bench_cleanup' EXIT

has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# CPU time (user+system) of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# cpu_line PID TICKS0 ITEMS: the process's CPU per item since TICKS0 — the figure that does not
# depend on what else this shared box is running.
cpu_line() {
  local t=$(($(cpu_ticks "$1") - $2))
  [ "$3" -gt 0 ] || return 0
  awk -v t="$t" -v hz="$HZ" -v n="$3" 'BEGIN {
    us = t / hz * 1e6 / n;
    printf "  CPU: %.1f us per item (%.2f s for %d items)\n", us, t / hz, n }'
}

# phase PER ARGS...: runs the load generator, prints its line and the collector's CPU per item.
phase() {
  local per=$1; shift
  local c0 out ok
  c0=$(cpu_ticks "$COLLECTOR_PID")
  out=$("$LOADGEN" "$@")
  echo "$out"
  ok=$(echo "$out" | sed -n 's/.*(\([0-9]*\) requests ok.*/\1/p')
  [ -n "$ok" ] && cpu_line "$COLLECTOR_PID" "$c0" $((ok * per))
}

# wrk_run NAME PID ADDR FILE: one wrk run against ADDR; prints its line and CPU per request of
# PID, appends "rps p99_ms" to $WORK/NAME.runs.
wrk_run() {
  local name=$1 pid=$2 addr=$3 file=$4 c0 out line
  c0=$(cpu_ticks "$pid")
  local perf_pid=""
  if [ -n "${PERF_DIR:-}" ] && [ "$pid" = "${COLLECTOR_PID:-}" ] && [ ! -e "$PERF_DIR/$name.data" ]; then
    perf record -q -F 499 -g -p "$pid" -o "$PERF_DIR/$name.data" -- sleep "$DUR" 2>/dev/null &
    perf_pid=$!
  fi
  out=$(wrk -t2 -c"$HB_CONNS" -d"${DUR}s" --timeout 10s -s "$WRK_LUA" "http://$addr" -- "$file")
  line=$(echo "$out" | grep '^WRK ')
  echo "  $name: $line"
  cpu_line "$pid" "$c0" "$(echo "$line" | sed -n 's/.* requests=\([0-9]*\).*/\1/p')"
  echo "$line" | sed -n 's/.* rps=\([0-9.]*\) .* p99_ms=\([0-9.]*\) .*/\1 \2/p' >>"$WORK/$name.runs"
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid" || true
    perf report -i "$PERF_DIR/$name.data" --no-children -g none --percent-limit 0.5 --sort symbol --stdio 2>/dev/null \
      | grep -v '^#' | grep '%' | sed -E 's/[[:space:]-]+$//' | head -40 >"$PERF_DIR/$name.txt" || true
  fi
}

start_vm() {
  local port
  port=$(comm -23 <(seq 20000 29999 | sort) <(ss -Htan | awk '{print $4}' | sed 's/.*://' | sort -u) | shuf -n 1)
  VM_ADDR=127.0.0.1:$port
  victoria-metrics -httpListenAddr="$VM_ADDR" -storageDataPath="$WORK/vm" -retentionPeriod=1d \
    -loggerLevel=ERROR >"$WORK/vm.log" 2>&1 &
  VM_PID=$!
  for _ in $(seq 1 300); do
    curl -fs "http://$VM_ADDR/health" >/dev/null 2>&1 && return 0
    kill -0 "$VM_PID" 2>/dev/null || { cat "$WORK/vm.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "bench: VictoriaMetrics did not start" >&2; exit 1
}

# start_hello: the HTTP stack's ceiling (netmedic-loadgen hello) on a free loopback port.
start_hello() {
  "$LOADGEN" hello --listen 127.0.0.1:0 2>"$WORK/hello.log" &
  HELLO_PID=$!
  HELLO_ADDR=""
  for _ in $(seq 1 300); do
    HELLO_ADDR=$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$WORK/hello.log" | head -1)
    [ -n "$HELLO_ADDR" ] && return 0
    kill -0 "$HELLO_PID" 2>/dev/null || { cat "$WORK/hello.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "bench: hello did not start" >&2; exit 1
}

# versus_vm NAME: ROUNDS interleaved wrk runs of VictoriaMetrics and the collector (running at
# $ADDR), then the medians and the ratio.
versus_vm() {
  local name=$1
  "$LOADGEN" wrk-requests --tokens "$WORK/tokens.txt" --target collector --out "$WORK/hb.req"
  "$LOADGEN" wrk-requests --tokens "$WORK/tokens.txt" --target victoria-metrics --out "$WORK/vm.req"
  rm -f "$WORK/vm-$name.runs" "$WORK/$name.runs" "$WORK/hello-$name.runs"
  echo "heartbeats, wrk, $HB_CONNS connections, ${DUR} s x $ROUNDS rounds:"
  for r in $(seq 1 "$ROUNDS"); do
    wrk_run "vm-$name" "$VM_PID" "$VM_ADDR" "$WORK/vm.req"
    wrk_run "$name" "$COLLECTOR_PID" "$ADDR" "$WORK/hb.req"
    wrk_run "hello-$name" "$HELLO_PID" "$HELLO_ADDR" "$WORK/hb.req"
  done
  local vr vp cr cp hr hp
  vr=$(cut -d' ' -f1 "$WORK/vm-$name.runs" | median); vp=$(cut -d' ' -f2 "$WORK/vm-$name.runs" | median)
  cr=$(cut -d' ' -f1 "$WORK/$name.runs" | median); cp=$(cut -d' ' -f2 "$WORK/$name.runs" | median)
  hr=$(cut -d' ' -f1 "$WORK/hello-$name.runs" | median); hp=$(cut -d' ' -f2 "$WORK/hello-$name.runs" | median)
  awk -v n="$name" -v vr="$vr" -v vp="$vp" -v cr="$cr" -v cp="$cp" -v hr="$hr" -v hp="$hp" 'BEGIN {
    printf "  medians: collector (%s) %.0f req/s p99 %.1f ms | VictoriaMetrics %.0f req/s p99 %.1f ms | ratio %.2f\n",
      n, cr, cp, vr, vp, cr / vr;
    printf "  ceiling: bare axum hello %.0f req/s p99 %.1f ms | collector/hello %.2f | VictoriaMetrics/hello %.2f\n",
      hr, hp, cr / hr, vr / hr }' | tee -a "$WORK/summary"
}

# storm: STORM_AGENTS fresh connections at once (see netmedic-loadgen storm).
storm() {
  local c0; c0=$(cpu_ticks "$COLLECTOR_PID")
  "$LOADGEN" storm --addr "$ADDR" --tokens "$WORK/tokens.txt" --db "$1" --agents "$STORM_AGENTS" \
    --events 10 --deadline-secs "${STORM_DEADLINE_SECS:-60}" | tee -a "$WORK/summary"
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
  if has vm; then versus_vm "$name"; fi
  if has loadgen; then
    phase 1 heartbeats --addr "$ADDR" --tokens "$WORK/tokens.txt" --connections "$HB_CONNS" \
      --duration-secs "$DUR"
    phase 500 events --addr "$ADDR" --tokens "$WORK/tokens.txt" --connections "$EV_CONNS" \
      --batch 500 --duration-secs "$DUR" | tee -a "$WORK/summary"
  fi
  local rss2; rss2=$(rss_kb "$COLLECTOR_PID")
  echo "memory: RSS ${rss0} KiB idle -> ${rss1} KiB after ${DEVICES} devices heartbeat -> ${rss2} KiB after the runs;" \
       "$(( (rss1 - rss0) * 1024 / DEVICES )) bytes/device (state lives in the database, not the process)"
  if has storm; then echo "reconnect storm:"; storm "$url"; fi
  stop_collector
}

if has vm; then start_vm; start_hello; fi
bench_backend sqlite "sqlite://$WORK/collector.sqlite"

start_postgres
bench_backend postgresql "$PG_URL"
stop_vm

echo "== summary =="
cat "$WORK/summary"
