#!/usr/bin/env bash
# Installs what the lab, the demo and the tests need on a Debian 12 machine (run as root).
# Idempotent: installs only what is missing, so it is cheap to run every time.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip        || need+=(iproute2)
have dnsmasq   || need+=(dnsmasq-base)
have udhcpc    || need+=(udhcpc)
have nft       || need+=(nftables)
have conntrack || need+=(conntrack)
have sysctl    || need+=(procps)
have pkill     || need+=(procps)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: the lab builds network namespaces and must run as root" >&2
  exit 1
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
