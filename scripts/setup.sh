#!/usr/bin/env bash
# Installs what the lab, the demo and the tests need on a Debian 12 machine (run as root).
# Idempotent: installs only what is missing, so it is cheap to run every time.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip        || need+=(iproute2)
have dnsmasq   || need+=(dnsmasq-base)
have udhcpc    || need+=(udhcpc)
# Dual stack in the lab (tests/src/ipv6.rs): kea-dhcp6 delegates prefixes (dnsmasq cannot), dhcpcd
# is the CPE's DHCPv6/RA client (IA_NA + IA_PD, LAN /64), as on many home routers.
have kea-dhcp6 || need+=(kea-dhcp6-server)
have dhcpcd    || need+=(dhcpcd-base)
have nft       || need+=(nftables)
have conntrack || need+=(conntrack)
have sysctl    || need+=(procps)
have pkill     || need+=(procps)
have snmpd     || need+=(snmpd)   # the lab's "modem" (modem_snmp check)
have snmpget   || need+=(snmp)    # snmpget/snmpwalk, to debug the lab's modem by hand
have socat     || need+=(socat)   # TLS-terminating proxy in front of the lab's collector (HTTPS tests)
have openssl   || need+=(openssl) # throwaway CA and certificates for the HTTPS tests
have systemd-analyze || need+=(systemd) # `systemd-analyze security/verify` of systemd/*.service
# Headless browser for the NOC console's end-to-end tests (tests/src/browser.rs): Debian's
# chromium driven by its chromedriver; fonts-liberation (a Recommends) so screenshots have text.
[ -x /usr/bin/chromium ]     || need+=(chromium fonts-liberation)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
# The VM lab (tests/src/vm, tests/tests/vm_*.rs): qemu, Debian's kernel and modules for the guest
# (mac80211_hwsim), busybox-static as its init and tools, hostapd/wpa_supplicant/iw for its
# radios, cpio and mkfs.ext4 to build its initramfs and state disk. linux-image-amd64 only puts
# /boot/vmlinuz-* and /lib/modules/<version> here (and an unused initrd); the host's own kernel is
# untouched.
have qemu-system-x86_64 || need+=(qemu-system-x86)
ls /boot/vmlinuz-*-amd64 >/dev/null 2>&1 || need+=(linux-image-amd64)
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static) # static
have hostapd        || need+=(hostapd)
have wpa_supplicant || need+=(wpasupplicant)
have iw             || need+=(iw)
[ -e /lib/firmware/regulatory.db ] || need+=(wireless-regdb) # the guest's country codes (DFS)
have cpio           || need+=(cpio)
have mkfs.ext4      || need+=(e2fsprogs)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates) # the guest's CA bundle

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
# PostgreSQL server for the collector's story tests and benchmark: they run initdb/pg_ctl as the
# `postgres` user in a temp dir. Installed only when initdb is missing (Debian 12 ships 15).
have_initdb() {
  command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
if ! have_initdb; then
  echo "setup: installing postgresql-15"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d 101: install the server without starting a cluster service on this machine.
  policy=/usr/sbin/policy-rc.d
  restore_policy=false
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && restore_policy=true
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \
    || apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  if $restore_policy; then rm -f "$policy"; fi
fi
# zabbix_agentd: the peer the agent's footprint benchmark (scripts/bench-footprint.sh) measures
# beside netmedic-agent. policy-rc.d 101: installed, never started as a service here.
if ! command -v zabbix_agentd >/dev/null 2>&1; then
  echo "setup: installing zabbix-agent (footprint benchmark peer)"
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d
  restore_policy=false
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && restore_policy=true
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends zabbix-agent >/dev/null
  if $restore_policy; then rm -f "$policy"; fi
fi
if ! id postgres >/dev/null 2>&1; then
  echo "setup: creating the postgres system user"
  useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
