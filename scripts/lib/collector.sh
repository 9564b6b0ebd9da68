# Shared by the benchmark scripts (sourced from the repository's top, not run): build the
# release collector and load generator (crate bench/), start and stop the collector on 127.0.0.1.

# build_collector_bins: builds them and sets COLLECTOR and LOADGEN (absolute paths).
build_collector_bins() {
  cargo build --release --locked -p netmedic-collector -p netmedic-bench \
    --bin netmedic-collector --bin netmedic-loadgen >&2
  local target=${CARGO_TARGET_DIR:-target}
  COLLECTOR=$(realpath "$target/release/netmedic-collector")
  LOADGEN=$(realpath "$target/release/netmedic-loadgen")
}

# bench_workdir NAME: makes the scratch directory $WORK (/var/tmp/NAME.XXXXXX) and, on exit,
# stops the collector and PostgreSQL this script started and removes $WORK.
bench_workdir() {
  WORK=$(mktemp -d "/var/tmp/$1.XXXXXX")
  COLLECTOR_PID=""
  PGDATA=""
  trap bench_cleanup EXIT
}

bench_cleanup() {
  if [ -n "${COLLECTOR_PID:-}" ]; then
    kill "$COLLECTOR_PID" 2>/dev/null && wait "$COLLECTOR_PID" 2>/dev/null || true
  fi
  stop_postgres
  rm -rf "$WORK"
}

# The functions below need $WORK (a scratch directory) and $COLLECTOR.

# start_collector URL: starts the collector on 127.0.0.1 (free port) with storage URL, sets ADDR
# and COLLECTOR_PID; its log is $WORK/collector.log.
start_collector() {
  cat >"$WORK/collector.toml" <<TOML
[server]
listen_addr = "127.0.0.1:0"
[storage]
url = "$1"
TOML
  : >"$WORK/collector.log"
  "$COLLECTOR" serve --config "$WORK/collector.toml" 2>"$WORK/collector.log" &
  COLLECTOR_PID=$!
  ADDR=""
  for _ in $(seq 1 600); do
    ADDR=$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$WORK/collector.log" | head -1)
    [ -n "$ADDR" ] && break
    kill -0 "$COLLECTOR_PID" 2>/dev/null || { cat "$WORK/collector.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$ADDR" ] || { echo "bench: collector did not start" >&2; exit 1; }
}

stop_collector() {
  kill "$COLLECTOR_PID"; wait "$COLLECTOR_PID" 2>/dev/null || true; COLLECTOR_PID=""
}

# find_pg NAME: the path of a PostgreSQL server program (scripts/setup.sh installs them).
find_pg() {
  local d
  for d in /usr/local/bin /usr/lib/postgresql/*/bin; do
    [ -x "$d/$1" ] && { echo "$d/$1"; return; }
  done
  echo "bench: $1 not found (scripts/setup.sh installs PostgreSQL)" >&2
  return 1
}

# start_postgres: a throwaway PostgreSQL in $WORK (initdb as postgres, unix socket only, default
# durability settings); sets PGDATA, PG_CTL and PG_URL. Run as root. stop_postgres stops it.
start_postgres() {
  local initdb
  initdb=$(find_pg initdb)
  PG_CTL=$(find_pg pg_ctl)
  chown postgres:postgres "$WORK"
  PGDATA=$WORK/pgdata
  runuser -u postgres -- "$initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
  runuser -u postgres -- "$PG_CTL" -D "$PGDATA" -l "$WORK/postgres.log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories='$WORK' -c max_connections=100" start >/dev/null
  PG_URL="postgres://postgres@localhost/postgres?host=$WORK"
}

stop_postgres() {
  if [ -n "${PGDATA:-}" ]; then
    runuser -u postgres -- "$PG_CTL" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
    PGDATA=""
  fi
}
