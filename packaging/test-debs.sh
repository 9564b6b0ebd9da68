#!/usr/bin/env bash
# The Debian packages' test: builds netmedic-agent and netmedic-collector .debs, installs them with
# dpkg into a throwaway root, checks files, users, state dir and units (systemd-analyze verify),
# runs the installed binaries as their users against the shipped configs, upgrades to a rebuilt
# package keeping edited conffiles (and the agent's spool and the collector's database), then
# removes and purges, checking that nothing is left.
#
# The throwaway root is this machine's own root file system under a copy-on-write overlay (upper
# layer on a tmpfs) in private mount, network and PID namespaces: the packages' dpkg database,
# adduser, systemd-analyze and deb-systemd-helper are the host's own, nothing is downloaded, and
# everything the packages do (users, /etc, /var/lib, unit symlinks) lands in the tmpfs. When the
# test ends — normally, on failure or killed — the namespaces die, the mounts with them, and the
# host is left exactly as it was. Needs root (as the lab does).
#
#   packaging/test-debs.sh              build (cargo-deb; reuses target/ artifacts) and test
#   NETMEDIC_DEB_TEST_NO_BUILD=1 ...    package already built binaries (cargo deb --no-build)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --in-namespace ]; then
  in_namespace=true
  work=$2
else
  in_namespace=false
fi

# ---------------------------------------------------------------------------------------------
# Outside: build the packages, prepare revision 3, enter the namespaces.
if ! $in_namespace; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-debs: needs root (dpkg, chroot, mounts in a private namespace)" >&2
    exit 1
  fi
  start=$SECONDS
  work=$(mktemp -d /tmp/netmedic-debtest.XXXXXX)
  cleanup() { rm -rf "$work"; }
  trap cleanup EXIT
  out=$work/debs
  mkdir -p "$out"
  build_args=()
  if [ "${NETMEDIC_DEB_TEST_NO_BUILD:-0}" = 1 ]; then build_args+=(--no-build); fi
  # Revision 1 builds the binaries (release-cpe agent, release collector) once; revision 2 is
  # the "rebuilt package" of the upgrade, packaged from the same binaries.
  NETMEDIC_DEB_OUT=$out packaging/build-debs.sh "${build_args[@]}"
  NETMEDIC_DEB_OUT=$out packaging/build-debs.sh --no-build --deb-revision 2
  # Revision 3 ships a changed agent.toml: an upgrade where both the admin and the package changed
  # the conffile (dpkg keeps the admin's with --force-confold and puts the new one beside it).
  rev2=$(ls "$out"/netmedic-agent_*-2_*.deb)
  dpkg-deb -R "$rev2" "$work/rev3"
  printf '\n# revision 3 of the package changed this file\n' >>"$work/rev3/etc/netmedic/agent.toml"
  sed -i 's/^Version: \(.*\)-2$/Version: \1-3/' "$work/rev3/DEBIAN/control"
  dpkg-deb --root-owner-group -b "$work/rev3" "$out/" >/dev/null
  rm -rf "$work/rev3"
  echo "test-debs: packages built in $((SECONDS - start)) s"; ls "$out"

  # --pid --fork: when the test's shell exits, every process it started (a collector under test)
  # is killed with the namespace; --mount: the overlay and tmpfs vanish; --net: the collector's
  # port is this namespace's own loopback.
  status=0
  unshare --mount --propagation private --net --pid --fork --mount-proc \
    bash "$0" --in-namespace "$work" || status=$?
  echo "test-debs: done in $((SECONDS - start)) s"
  exit "$status"
fi

# ---------------------------------------------------------------------------------------------
# Inside the namespaces.
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "  ok    $1"; }
bad() { failed=$((failed + 1)); echo "  FAIL  $1" >&2; }
# `set -e` ignores a failing `! cmd`, so the checks' scripts say `no cmd` instead.
no_fn='no() { if "$@" >/dev/null 2>&1; then echo "unexpectedly true: $*"; exit 1; fi; }
'
# check DESCRIPTION COMMAND...: runs COMMAND inside the throwaway root (`sh -ec SCRIPT` gets `no`).
check() {
  local what=$1
  shift
  if [ "$1" = sh ] && [ "$2" = -ec ]; then set -- sh -ec "$no_fn$3" "${@:4}"; fi
  if chroot "$R" "$@" >"$work/check.out" 2>&1; then ok "$what"; else
    bad "$what"
    sed 's/^/        /' "$work/check.out" >&2
  fi
}
in_root() { chroot "$R" "$@"; }
sh_root() { chroot "$R" /bin/sh -ec "$1"; }

fs=$work/fs
R=$fs/root
mkdir -p "$fs"
mount -t tmpfs -o mode=0755,size=2g netmedic-debtest "$fs"
mkdir -p "$fs/upper" "$fs/work" "$R"
mount -t overlay overlay -o "lowerdir=/,upperdir=$fs/upper,workdir=$fs/work" "$R"
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount --rbind /sys "$R/sys"
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
ip link set lo up
mkdir -p "$R/tmp/debs"
cp "$work"/debs/*.deb "$R/tmp/debs/"
# No systemd is running in the root (no /run/systemd/system), so the maintainer scripts enable
# the units (deb-systemd-helper) but start nothing — as on an image build or a chroot install.
export DEBIAN_FRONTEND=noninteractive

deb() { echo "/tmp/debs/$1_$(dpkg-deb -f "$work"/debs/"$1"_*-"$2"_*.deb Version)_$(dpkg-deb -f "$work"/debs/"$1"_*-"$2"_*.deb Architecture).deb"; }
agent1=$(deb netmedic-agent 1)
agent2=$(deb netmedic-agent 2)
agent3=$(deb netmedic-agent 3)
coll1=$(deb netmedic-collector 1)
coll2=$(deb netmedic-collector 2)

echo "test-debs: install"
# A root that already has the packages (someone installed them on this machine) starts clean.
in_root dpkg --purge netmedic-agent netmedic-collector >/dev/null 2>&1 || true
check "dpkg -i both packages" dpkg -i "$agent1" "$coll1"
check "both packages installed" sh -ec '
  for p in netmedic-agent netmedic-collector; do
    [ "$(dpkg-query -W -f="\${Status}" $p)" = "install ok installed" ]
  done'
check "binaries in /usr/bin, executable" test -x /usr/bin/netmedic-agent -a -x /usr/bin/netmedic-collector
check "configs registered as conffiles" sh -ec '
  dpkg-query -W -f="\${Conffiles}\n" netmedic-agent | grep -q "^ /etc/netmedic/agent.toml "
  dpkg-query -W -f="\${Conffiles}\n" netmedic-collector | grep -q "^ /etc/netmedic/collector.toml "'
check "configs root:<service user> 0640" sh -ec '
  [ "$(stat -c "%U:%G %a" /etc/netmedic/agent.toml)" = "root:netmedic-agent 640" ]
  [ "$(stat -c "%U:%G %a" /etc/netmedic/collector.toml)" = "root:netmedic-collector 640" ]'
check "system users with no login shell" sh -ec '
  for u in netmedic-agent netmedic-collector; do
    uid=$(getent passwd $u | cut -d: -f3)
    [ "$uid" -lt 1000 ]
    [ "$(getent passwd $u | cut -d: -f7)" = /usr/sbin/nologin ]
    id -nG $u | tr " " "\n" | grep -qx netmedic
  done'
check "state dir /var/lib/netmedic root:netmedic 3770" sh -ec '
  [ "$(stat -c "%U:%G %a" /var/lib/netmedic)" = "root:netmedic 3770" ]'

units_present=true
for u in netmedic-agent netmedic-collector; do
  if [ ! -f "$R/usr/lib/systemd/system/$u.service" ]; then units_present=false; fi
done
if $units_present; then
  ok "units installed in /usr/lib/systemd/system"
  check "units enabled (systemctl is-enabled, offline)" sh -ec '
    for u in netmedic-agent netmedic-collector; do
      [ "$(systemctl is-enabled $u.service)" = enabled ]
      ls /etc/systemd/system/*.wants/$u.service
    done'
  check "systemd-analyze verify on the installed units" \
    systemd-analyze verify /usr/lib/systemd/system/netmedic-agent.service \
    /usr/lib/systemd/system/netmedic-collector.service
  # What systemd would run before the daemon (config checks), as the unit's User=.
  for u in netmedic-agent netmedic-collector; do
    unit=$R/usr/lib/systemd/system/$u.service
    user=$(sed -n 's/^User=//p' "$unit" | tail -n 1)
    while IFS= read -r cmd; do
      check "$u.service ExecStartPre as ${user:-root}: $cmd" \
        runuser -u "${user:-root}" -- sh -c "${cmd#[-@+!]}"
    done < <(sed -n 's/^ExecStartPre=//p' "$unit")
  done
else
  bad "units installed in /usr/lib/systemd/system (systemd/netmedic-*.service missing at build time?)"
fi

echo "test-debs: run the installed binaries as their users"
check "netmedic-agent --version" netmedic-agent --version
check "agent check-config on the shipped config, as netmedic-agent" \
  runuser -u netmedic-agent -- netmedic-agent check-config /etc/netmedic/agent.toml
check "collector check-config on the shipped config, as netmedic-collector" \
  runuser -u netmedic-collector -- netmedic-collector check-config /etc/netmedic/collector.toml

# The collector from the package, with the shipped config, as its user: creates its SQLite
# database in the state dir and answers /readyz on this namespace's loopback.
ready_code() {
  chroot "$R" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8440 || exit 1
    printf "GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3
    head -n 1 <&3 | cut -d" " -f2' 2>/dev/null || true
}
serve() {
  chroot "$R" runuser -u netmedic-collector -- \
    netmedic-collector serve --config /etc/netmedic/collector.toml >"$work/serve.log" 2>&1 &
  serve_pid=$!
  local code=""
  for _ in $(seq 1 100); do
    code=$(ready_code)
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  [ "$code" = 200 ]
}
stop_serve() { kill -TERM "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; }
if serve; then ok "collector serve: /readyz 200 with the shipped config"; else
  bad "collector serve: /readyz 200 with the shipped config"
  sed 's/^/        /' "$work/serve.log" >&2
fi
stop_serve
check "collector created its database, owned by netmedic-collector" sh -ec '
  [ "$(stat -c %U /var/lib/netmedic/collector.sqlite)" = netmedic-collector ]'
check "collector CLI enrols a device in the packaged database" sh -ec '
  runuser -u netmedic-collector -- netmedic-collector device add pkg-test-cpe >/tmp/token
  [ "$(wc -c </tmp/token)" -ge 32 ]'

# The agent's spool as the running agent would leave it: a directory and an undelivered event
# owned by netmedic-agent (the state dir must let the service user create them).
check "agent user can create its spool in the state dir" runuser -u netmedic-agent -- sh -ec '
  mkdir -p /var/lib/netmedic/spool
  echo undelivered >/var/lib/netmedic/spool/pkg-test.event'

echo "test-debs: edit the configs, upgrade to revision 2 (same shipped configs)"
sh_root '
  sed -i "s/^mode = \"enforce\"/mode = \"dry_run\"/" /etc/netmedic/agent.toml
  grep -q "^mode = \"dry_run\"" /etc/netmedic/agent.toml
  sed -i "s/^heartbeat_interval_secs = 300/heartbeat_interval_secs = 600/" /etc/netmedic/collector.toml
  grep -q "^heartbeat_interval_secs = 600" /etc/netmedic/collector.toml
  printf "0123456789abcdef0123456789abcdef\n" >/etc/netmedic/agent.token
  chmod 0644 /etc/netmedic/agent.token'
uids_before=$(in_root sh -c 'id -u netmedic-agent; id -u netmedic-collector')
check "dpkg -i revision 2 (no prompt, stdin closed)" sh -ec "dpkg -i $agent2 $coll2 </dev/null"
check "revision 2 installed" sh -ec '
  dpkg-query -W -f="\${Version}\n" netmedic-agent | grep -q -- "-2$"
  dpkg-query -W -f="\${Version}\n" netmedic-collector | grep -q -- "-2$"'
check "edited conffiles kept, no .dpkg-new/.dpkg-dist" sh -ec '
  grep -q "^mode = \"dry_run\"" /etc/netmedic/agent.toml
  grep -q "^heartbeat_interval_secs = 600" /etc/netmedic/collector.toml
  no ls /etc/netmedic/*.dpkg-*'
check "edited configs still root:<service user> 0640" sh -ec '
  [ "$(stat -c "%U:%G %a" /etc/netmedic/agent.toml)" = "root:netmedic-agent 640" ]'
check "agent.token made 0600 netmedic-agent" sh -ec '
  [ "$(stat -c "%U %a" /etc/netmedic/agent.token)" = "netmedic-agent 600" ]'
check "agent spool and collector database kept" sh -ec '
  grep -q undelivered /var/lib/netmedic/spool/pkg-test.event
  test -s /var/lib/netmedic/collector.sqlite'
check "users kept their uids" sh -ec "[ \"\$(id -u netmedic-agent; id -u netmedic-collector)\" = \"$uids_before\" ]"
if $units_present; then
  check "units still enabled" sh -ec '
    for u in netmedic-agent netmedic-collector; do [ "$(systemctl is-enabled $u.service)" = enabled ]; done'
fi
check "agent check-config on the kept, edited config" \
  runuser -u netmedic-agent -- netmedic-agent check-config /etc/netmedic/agent.toml
if serve; then ok "upgraded collector serves the kept database"; else
  bad "upgraded collector serves the kept database"
  sed 's/^/        /' "$work/serve.log" >&2
fi
stop_serve
check "device enrolled before the upgrade still listed" sh -ec '
  runuser -u netmedic-collector -- netmedic-collector device list | grep -q pkg-test-cpe'

echo "test-debs: upgrade to revision 3 (the package changed agent.toml too; keep the admin's)"
check "dpkg --force-confold -i revision 3" sh -ec "dpkg --force-confdef --force-confold -i $agent3 </dev/null"
check "admin's agent.toml kept, the package's beside it as .dpkg-dist" sh -ec '
  grep -q "^mode = \"dry_run\"" /etc/netmedic/agent.toml
  grep -q "revision 3 of the package" /etc/netmedic/agent.toml.dpkg-dist'

echo "test-debs: remove, then purge"
check "dpkg -r netmedic-agent" dpkg -r netmedic-agent
check "after remove: binary gone, config, token and spool kept" sh -ec '
  no test -e /usr/bin/netmedic-agent
  test -f /etc/netmedic/agent.toml -a -f /etc/netmedic/agent.token
  test -f /var/lib/netmedic/spool/pkg-test.event
  getent passwd netmedic-agent >/dev/null'
check "dpkg -P netmedic-agent" dpkg -P netmedic-agent
check "after purging the agent: its config, token, spool and user gone; collector's intact" sh -ec '
  no ls /etc/netmedic/agent.toml* /etc/netmedic/agent.token
  no test -e /var/lib/netmedic/spool
  no getent passwd netmedic-agent >/dev/null
  no getent group netmedic-agent >/dev/null
  test -s /var/lib/netmedic/collector.sqlite
  test -f /etc/netmedic/collector.toml
  getent group netmedic | grep -q netmedic-collector'
check "dpkg -P netmedic-collector" dpkg -P netmedic-collector
check "after purging both: no config, state, users, group or unit links left" sh -ec '
  no test -e /etc/netmedic
  no test -e /var/lib/netmedic
  no getent passwd netmedic-collector >/dev/null
  no getent group netmedic-collector >/dev/null
  no getent group netmedic >/dev/null
  no dpkg -s netmedic-agent
  no dpkg -s netmedic-collector
  [ -z "$(find /etc/systemd /usr/lib/systemd/system /var/lib/systemd -name "*netmedic*" 2>/dev/null)" ]'

echo "packaging: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
