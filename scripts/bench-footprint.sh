#!/usr/bin/env bash
# Agent footprint benchmark: size of the release-cpe binary (raw and xz), and steady RSS/PSS,
# CPU per minute and wakeups per second of an idle agent with the default config in the lab,
# over --minutes N (default 10, after a 1-minute warm-up), beside zabbix_agentd (Debian
# zabbix-agent, foreground on the CPE's loopback) measured in the same run.
# --without CHECK,... turns those checks off (`icmp,default_route`: the cost beyond the probes;
# `all`: every check off, the idle overhead of timers, runtime, heartbeat and reporter).
# --with-wifi turns wifi_ap and wifi_events on, against a socket that answers like hostapd (the
# machine has no radio for a real one): the cost of the Wi-Fi checks' requests and event monitor.
# --static measures the agent linked statically against glibc (crt-static; an explicit --target
# keeps the flag off build scripts and proc-macros): no libc.so/ld.so mappings (docs/perf-agent-size.md).
# --lease-secs N sets the lab's WAN DHCP lease (default 3600, a router in service between
# renewals; 120, the lab's minimum, renews every minute: each renewal is an event the agent
# handles). The figures' header says which lease was used.
# The run also prints where the agent's RSS is (binary, shared libraries, heap, stacks; from smaps).
# Usage: scripts/bench-footprint.sh [--minutes N] [--without CHECK,...] [--with-wifi] [--static] [--lease-secs N]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=10
without=()
wifi=()
lease=()
static=0
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --without) without=(--without "$2"); shift 2 ;;
    --with-wifi) wifi=(--with-wifi); shift ;;
    --static) static=1; shift ;;
    --lease-secs) lease=(--lease-secs "$2"); shift 2 ;;
    *) echo "usage: $0 [--minutes N] [--without CHECK,...] [--with-wifi] [--static] [--lease-secs N]" >&2; exit 64 ;;
  esac
done
scripts/setup.sh
target="${CARGO_TARGET_DIR:-target}"
if [ "$static" = 1 ]; then
  RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --locked --profile release-cpe -p netmedic-agent --target x86_64-unknown-linux-gnu
  bin="$target/x86_64-unknown-linux-gnu/release-cpe/netmedic-agent"
else
  cargo build --locked --profile release-cpe -p netmedic-agent
  bin="$target/release-cpe/netmedic-agent"
fi
# The collector only answers a heartbeat every few minutes and the bench only samples /proc:
# neither enters the figures, so both come from the dev profile (no release build of the
# collector's dependency tree just to run a benchmark of the agent).
cargo build --locked -p netmedic-collector -p netmedic-bench \
  --bin netmedic-collector --bin netmedic-bench
raw=$(stat -c %s "$bin")
xzs=$(xz -9e -c "$bin" | wc -c)
zbin=$(command -v zabbix_agentd)
zraw=$(stat -c %s "$zbin")
zxz=$(xz -9e -c "$zbin" | wc -c)
printf '\nbinary size (target: <= 3.5 MB raw, <= 1.5 MB xz)\n'
printf '%-16s %10s %10s\n' binary "MB raw" "MB xz"
link=dynamic
[ "$static" = 1 ] && link=static
awk -v r="$raw" -v x="$xzs" -v l="$link" 'BEGIN{printf "%-16s %10.2f %10.2f  (%s glibc)\n","netmedic-agent",r/1e6,x/1e6,l}'
awk -v r="$zraw" -v x="$zxz" 'BEGIN{printf "%-16s %10.2f %10.2f  (dynamically linked; libs not counted)\n","zabbix_agentd",r/1e6,x/1e6}'
# The agent's sections that make its size (and, .text, its RSS): bytes.
printf '\nnetmedic-agent sections (bytes)\n'
readelf -SW "$bin" | sed 's/^ *\[ *[0-9]*\]//' | while read -r name _type _addr _off size _; do
  case "$name" in
    .text | .rodata | .eh_frame | .eh_frame_hdr | .gcc_except_table | .rela.dyn | .relr.dyn | .data.rel.ro)
      printf '%-18s %10d\n' "$name" "$((16#$size))" ;;
  esac
done
# The collector comes from target/debug, the agent from its release-cpe directory.
bindir="$(realpath "$target")/bench-footprint-bin"
mkdir -p "$bindir"
cp "$target/debug/netmedic-collector" "$bin" "$bindir/"
NETMEDIC_BIN_DIR="$bindir" "$target/debug/netmedic-bench" footprint --minutes "$minutes" "${without[@]}" "${wifi[@]}" "${lease[@]}"
