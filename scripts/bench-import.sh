#!/usr/bin/env bash
# Import benchmark (issue 7): generates a surveys CSV of ROWS rows (default 1,000,000), imports it
# into a fresh SQLite database with `netmedic-collector import surveys`, and prints the wall time,
# rows/s and peak memory (max RSS from /usr/bin/time -v). Then imports the same file again (an
# upsert that changes nothing) and runs the report over it. Prints figures; asserts nothing.
# Usage: scripts/bench-import.sh [ROWS]    RUNS=3 for the median of several runs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
RUNS=${RUNS:-3}

. scripts/lib/collector.sh
build_collector_bins

WORK=$(mktemp -d /var/tmp/nm-bench-import.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
CSV=$WORK/surveys.csv

# 200,000 customers, answers spread over 90 days from 2026-01-01, NPS 0-10, CSAT 1-5 on every
# other row, a short verbatim with a comma (quoted) on every tenth.
awk -v n="$ROWS" 'BEGIN {
  srand(42);
  print "survey_id,customer_id,answered_at,nps,csat,channel,verbatim";
  for (i = 0; i < n; i++) {
    d = 1 + int(i % 90); m = 1 + int((d - 1) / 30); dd = 1 + (d - 1) % 28;
    printf "sv-%07d,cust-%06d,2026-%02d-%02dT%02d:%02d:%02dZ,%d,%s,%s,%s\n", i, i % 200000, m, dd,
      int(rand() * 24), int(rand() * 60), int(rand() * 60), int(rand() * 11),
      (i % 2 ? int(1 + rand() * 5) : ""), (i % 3 ? "email" : "sms"),
      (i % 10 ? "" : "\"slow, then fine\"");
  }
}' > "$CSV"
echo "file: $ROWS rows, $(du -h "$CSV" | cut -f1) ($CSV)"

run() { # label, args...
  local label=$1; shift
  /usr/bin/time -v "$@" > "$WORK/out" 2> "$WORK/time" || { cat "$WORK/time" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time")
  local secs
  secs=$(echo "$wall" | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
  printf '%-28s %8.2f s  %10.0f rows/s  max RSS %6.1f MiB\n' "$label" "$secs" \
    "$(echo "$ROWS $secs" | awk '{ print ($2 > 0 ? $1 / $2 : 0) }')" "$(echo "$rss" | awk '{ print $1 / 1024 }')"
}

for r in $(seq 1 "$RUNS"); do
  DB="sqlite://$WORK/run$r.sqlite"
  run "import (fresh db) #$r" "$COLLECTOR" import surveys "$CSV" --db "$DB"
  grep -h "surveys:" "$WORK/out" || true
  run "re-import (no change) #$r" "$COLLECTOR" import surveys "$CSV" --db "$DB"
  run "strict import #$r" "$COLLECTOR" import surveys "$CSV" --db "sqlite://$WORK/strict$r.sqlite" --strict
  run "report over it #$r" "$COLLECTOR" report --json --db "$DB"
  rm -f "$WORK"/run"$r".sqlite* "$WORK"/strict"$r".sqlite*
done
