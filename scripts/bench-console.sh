#!/usr/bin/env bash
# NOC console benchmark: the incident list's first page with N incidents stored (default
# 1,000,000; target ≤ 200 ms). Seeds a fresh SQLite (or PostgreSQL) database with `netmedic-loadgen
# seed-incidents` (through the library, with a subscribers mapping), starts the collector on
# 127.0.0.1, creates a viewer user and a viewer API token with the CLI, then `netmedic-loadgen
# pages` logs in and times the list (plain, filtered, oldest first, most severe first, second
# pages), an incident page and the overview, beside /api/v1/incidents and /healthz as baselines.
# Prints figures; asserts nothing.
# Usage: scripts/bench-console.sh [N]   DEVICES=100000 REQUESTS=20 to change the defaults;
# BACKEND=postgresql for a throwaway PostgreSQL (run as root; ANALYZEd after seeding, as its
# autovacuum would do within a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
DEVICES=${DEVICES:-100000}
REQUESTS=${REQUESTS:-20}

. scripts/lib/collector.sh
build_collector_bins

bench_workdir nm-bench-console
BACKEND=${BACKEND:-sqlite}
case "$BACKEND" in
  sqlite) DB="sqlite://$WORK/collector.sqlite" ;;
  postgresql) start_postgres; DB=$PG_URL ;;
  *) echo "bench: BACKEND must be sqlite or postgresql, not $BACKEND" >&2; exit 2 ;;
esac

echo "== seeding $N incidents over $DEVICES devices ($BACKEND) =="
t0=$(date +%s.%N)
"$LOADGEN" seed-incidents --db "$DB" --incidents "$N" --devices "$DEVICES"
t1=$(date +%s.%N)
SEED_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
if [ "$BACKEND" = postgresql ]; then
  psql -q "$DB" -c ANALYZE
fi

start_collector "$DB"
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "http://$ADDR/readyz" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null "http://$ADDR/readyz" || { echo "bench: collector not ready" >&2; exit 1; }

# A random password (≥ 12 characters) for a throwaway viewer.
PASSWORD=bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$PASSWORD" | "$COLLECTOR" user add bench --role viewer --password-stdin --db "$DB" \
  >/dev/null 2>"$WORK/cli.log" || { cat "$WORK/cli.log" >&2; exit 1; }
TOKEN=$("$COLLECTOR" token add bench --role viewer --db "$DB" 2>"$WORK/cli.log") \
  || { cat "$WORK/cli.log" >&2; exit 1; }

echo "== console pages on $ADDR =="
"$LOADGEN" pages --addr "$ADDR" --user bench --password "$PASSWORD" --token "$TOKEN" \
  --requests "$REQUESTS"

size() { [ -f "$1" ] && du -b "$1" | cut -f1 || echo 0; }
if [ "$BACKEND" = postgresql ]; then
  DB_BYTES=$(psql -Atq "$DB" -c "SELECT pg_database_size(current_database())")
  WHAT="PostgreSQL database"
else
  DB_BYTES=$(( $(size "$WORK/collector.sqlite") + $(size "$WORK/collector.sqlite-wal") ))
  WHAT="SQLite file + WAL"
fi
echo "database: $(awk -v b="$DB_BYTES" 'BEGIN { printf "%.0f MiB", b / 1048576 }') ($WHAT)" \
     "for $N incidents; seeding took ${SEED_SECS} s wall"
