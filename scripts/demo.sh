#!/usr/bin/env bash
# The lab demo: an ISP in network namespaces, a fault injected, the agent heals it and the
# collector shows the incident. Leaves nothing behind, also after Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --bins --locked --quiet
exec target/debug/netmedic-lab demo "$@"
