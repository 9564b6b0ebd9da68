# Shared by the benchmark scripts (sourced from the repository's top, not run): build the
# release collector and load generator, start and stop the collector on 127.0.0.1.

# build_collector_bins: builds them and sets COLLECTOR and LOADGEN (absolute paths).
build_collector_bins() {
  cargo build --release --locked -p netmedic-collector --bins >&2
  local target=${CARGO_TARGET_DIR:-target}
  COLLECTOR=$(realpath "$target/release/netmedic-collector")
  LOADGEN=$(realpath "$target/release/netmedic-loadgen")
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
