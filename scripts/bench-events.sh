#!/usr/bin/env bash
# Incident-event ingest benchmark, before/after in one run: `netmedic-loadgen events` against
# collector binaries A and B on SQLite and on PostgreSQL, ROUNDS interleaved rounds, each on a
# fresh database; prints events/s, the collector's CPU per event, (PostgreSQL) the database's
# CPU per event and the load generator's CPU per event, then medians. Prints figures; asserts nothing.
# Usage: scripts/bench-events.sh COLLECTOR_A COLLECTOR_B LOADGEN [DURATION_SECS]
#   env: ROUNDS (3), EV_CONNS (8), BATCH (500), DEVICES (2000), BACKENDS ("sqlite postgresql"),
#   LOADGEN_B (B's load generator, default LOADGEN: compares two generators on one collector).
# Run as root (PostgreSQL runs as `postgres`); everything stays on 127.0.0.1 and unix sockets.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n 2,8p "$0" >&2; exit 2; }
BIN_A=$(realpath "$1"); BIN_B=$(realpath "$2"); LOADGEN_A=$(realpath "$3")
LOADGEN_B=$(realpath "${LOADGEN_B:-$3}")
DUR=${4:-8}
ROUNDS=${ROUNDS:-3}
EV_CONNS=${EV_CONNS:-8}
BATCH=${BATCH:-500}
DEVICES=${DEVICES:-2000}
BACKENDS=${BACKENDS:-"sqlite postgresql"}
. scripts/lib/collector.sh
bench_workdir nm-bench-events
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# The CPU ticks of PostgreSQL: the postmaster and its children (the pooled backends live as
# long as the collector's connections, so none of their CPU is lost between the two readings).
pg_ticks() {
  local pm t=0 p
  pm=$(head -1 "$PGDATA/postmaster.pid")
  for p in "$pm" $(pgrep -P "$pm"); do t=$((t + $(cpu_ticks "$p" 2>/dev/null || echo 0))); done
  echo "$t"
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# one BACKEND LABEL BIN LOADGEN: one round on a fresh database; appends
# "events/s cpu_us db_us loadgen_us" to $WORK/BACKEND.LABEL.
one() {
  local backend=$1 label=$2 url c0 p0 out ok
  COLLECTOR=$3
  local LOADGEN=$4
  if [ "$backend" = sqlite ]; then
    rm -f "$WORK"/collector.sqlite*
    url="sqlite://$WORK/collector.sqlite"
  else
    start_postgres
    url=$PG_URL
  fi
  "$LOADGEN" enrol --db "$url" --devices "$DEVICES" --out "$WORK/tokens.txt" >/dev/null
  start_collector "$url"
  c0=$(cpu_ticks "$COLLECTOR_PID"); p0=0
  [ "$backend" = sqlite ] || p0=$(pg_ticks)
  # The load generator's own CPU (user + system, from bash's `time`): what it takes of the
  # same two cores.
  local TIMEFORMAT=%U+%S
  { time "$LOADGEN" events --addr "$ADDR" --tokens "$WORK/tokens.txt" --connections "$EV_CONNS" \
    --batch "$BATCH" --duration-secs "$DUR" > "$WORK/loadgen.out"; } 2> "$WORK/loadgen.time"
  out=$(cat "$WORK/loadgen.out")
  local c1 p1=0
  c1=$(cpu_ticks "$COLLECTOR_PID")
  [ "$backend" = sqlite ] || p1=$(pg_ticks)
  ok=$(echo "$out" | sed -n 's/.*(\([0-9]*\) requests ok.*/\1/p')
  stop_collector
  if [ "$backend" != sqlite ]; then stop_postgres; rm -rf "$WORK/pgdata"; fi
  local n=$((ok * BATCH)) rate
  rate=$(echo "$out" | sed -n 's/^[^:]*: \([0-9]*\)\/s.*/\1/p')
  local lg
  lg=$(tail -1 "$WORK/loadgen.time" | awk -F+ '{print $1 + $2}')
  awk -v r="$rate" -v c=$((c1 - c0)) -v p=$((p1 - p0)) -v hz="$HZ" -v n="$n" -v l="$label" \
    -v g="$lg" -v b="$backend" -v f="$WORK/$backend.$label" 'BEGIN {
      cu = n ? c / hz * 1e6 / n : 0; pu = n ? p / hz * 1e6 / n : 0; gu = n ? g * 1e6 / n : 0;
      printf "%s %s: %d events/s, collector %.1f us/event, database %.1f us/event, load generator %.1f us/event\n", b, l, r, cu, pu, gu;
      printf "%d %.1f %.1f %.1f\n", r, cu, pu, gu >> f }'
}

for backend in $BACKENDS; do
  for r in $(seq 1 "$ROUNDS"); do
    one "$backend" A "$BIN_A" "$LOADGEN_A"
    one "$backend" B "$BIN_B" "$LOADGEN_B"
  done
done
echo "== medians of $ROUNDS (A: $BIN_A with $LOADGEN_A, B: $BIN_B with $LOADGEN_B) =="
for backend in $BACKENDS; do
  for l in A B; do
    f=$WORK/$backend.$l
    printf "%s %s: %s events/s, collector %s us/event, database %s us/event, load generator %s us/event\n" \
      "$backend" "$l" "$(awk '{print $1}' "$f" | median)" "$(awk '{print $2}' "$f" | median)" \
      "$(awk '{print $3}' "$f" | median)" "$(awk '{print $4}' "$f" | median)"
  done
done
