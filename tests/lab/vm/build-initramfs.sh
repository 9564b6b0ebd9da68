#!/bin/sh
# netmedic VM lab: builds the guest's initramfs (an uncompressed newc cpio) from this machine's
# Debian packages only: busybox-static (init and tools), linux-image-amd64's modules,
# hostapd, wpasupplicant, iw (binaries and the shared libraries they need), wireless-regdb's
# signed regulatory database (country codes: the DFS channels of the radar test), ca-certificates'
# bundle, and the static agent binary.
#
# usage: build-initramfs.sh OUT.cpio KERNEL_VERSION AGENT_BINARY
# The harness caches the result under target/vm-cache/, keyed by a hash of every input.
set -eu
out=$1
kver=$2
agent=$3
here=$(cd "$(dirname "$0")" && pwd)
udhcpc_script=$here/../udhcpc.script
moddir=/lib/modules/$kver

root=$(mktemp -d "${TMPDIR:-/tmp}/netmedic-vm-root.XXXXXX")
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/bin "$root"/sbin "$root"/usr/bin "$root"/usr/sbin "$root"/etc/init.d \
    "$root"/lib/modules "$root"/proc "$root"/sys "$root"/dev "$root"/run "$root"/tmp \
    "$root"/data "$root"/var "$root"/root
ln -s /run "$root"/var/run

# busybox: one static binary, every applet a symlink (like OpenWrt).
cp /bin/busybox "$root"/bin/busybox
for applet in $(/bin/busybox --list-full); do
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
ln -s /bin/busybox "$root"/init

# Dynamically linked Debian tools with their libraries (and the loader).
copy_with_libs() {
    cp -L "$1" "$root$1"
    ldd "$1" | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }' | while read -r lib; do
        [ -n "$lib" ] && [ -f "$lib" ] || continue
        mkdir -p "$root$(dirname "$lib")"
        [ -e "$root$lib" ] || cp -L "$lib" "$root$lib"
    done
}
for bin in /usr/sbin/hostapd /usr/sbin/hostapd_cli /usr/sbin/wpa_supplicant /usr/sbin/wpa_cli \
    /usr/sbin/iw; do
    copy_with_libs "$bin"
done
# glibc's loader is found through the absolute path in the binaries' PT_INTERP.
mkdir -p "$root"/lib64
[ -e "$root"/lib64/ld-linux-x86-64.so.2 ] || cp -L /lib64/ld-linux-x86-64.so.2 "$root"/lib64/

# Kernel modules: the listed ones and their dependencies (modules.dep), in load order.
: > "$root"/etc/modules.order
add_module() {
    local name rel path deps dep dname
    name=$1
    shift
    rel=$(awk -v n="$name" -F: '{ f = $1; sub(".*/", "", f); sub("\\.ko.*$", "", f);
        gsub("-", "_", f); if (f == n) { print $0; exit } }' "$moddir/modules.dep")
    if [ -z "$rel" ]; then
        if grep -q "/$name.ko" "$moddir/modules.builtin" 2>/dev/null; then return 0; fi
        echo "build-initramfs: module $name not found for $kver" >&2
        exit 1
    fi
    path=${rel%%:*}
    deps=${rel#*:}
    # Dependencies first (modules.dep lists them nearest first, so load in reverse).
    for dep in $(echo $deps | tr ' ' '\n' | tac); do
        dname=$(basename "$dep"); dname=${dname%%.ko*}; dname=$(echo "$dname" | tr - _)
        grep -q "^$dname\( \|$\)" "$root"/etc/modules.order || add_module "$dname"
    done
    grep -q "^$name\( \|$\)" "$root"/etc/modules.order && return 0
    case "$path" in
        *.ko.xz) xz -dc "$moddir/$path" > "$root/lib/modules/$name.ko" ;;
        *.ko.zst) zstd -qdc "$moddir/$path" > "$root/lib/modules/$name.ko" ;;
        *.ko.gz) gzip -dc "$moddir/$path" > "$root/lib/modules/$name.ko" ;;
        *) cp "$moddir/$path" "$root/lib/modules/$name.ko" ;;
    esac
    echo "$name $*" >> "$root"/etc/modules.order
}
grep -v '^#' "$here/modules.list" | while read -r m args; do
    [ -n "$m" ] && add_module "$m" $args
done

# Configuration and services.
install -m 0755 "$here/rcS" "$root"/etc/init.d/rcS
install -m 0755 "$here/rcK" "$root"/etc/init.d/rcK
install -m 0755 "$here/netmedic-agent.init" "$root"/etc/init.d/netmedic-agent
install -m 0755 "$here/netmedic-ctl" "$root"/sbin/netmedic-ctl
install -m 0755 "$here/wifi.init" "$root"/etc/init.d/wifi
install -m 0755 "$udhcpc_script" "$root"/etc/udhcpc.script
install -m 0644 "$here/inittab" "$root"/etc/inittab
install -m 0644 "$here/hostapd.conf" "$root"/etc/hostapd.conf
install -m 0644 "$here/hostapd-dfs.conf" "$root"/etc/hostapd-dfs.conf
# cfg80211 loads the regulatory database from /lib/firmware (Debian's kernel checks the .p7s
# signature against the keys built into it); without it only the world domain exists, whose
# 5 GHz channels allow no access point.
mkdir -p "$root"/lib/firmware
cp -L /lib/firmware/regulatory.db /lib/firmware/regulatory.db.p7s "$root"/lib/firmware/
install -m 0600 "$here/wpa_supplicant.conf" "$root"/etc/wpa_supplicant.conf
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root"/etc/passwd
printf 'root:x:0:\n' > "$root"/etc/group
: > "$root"/etc/resolv.conf
install -m 0755 "$agent" "$root"/usr/bin/netmedic-agent
# Debian's CA bundle (ca-certificates), as a router firmware ships one: the agent's HTTP client
# (reqwest with rustls' platform verifier) cannot be built without system roots, even for an
# http:// collector.
mkdir -p "$root"/etc/ssl/certs
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root"/etc/ssl/certs/ca-certificates.crt

# Reproducible: fixed order, fixed timestamps, root-owned.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$out.tmp.$$"
mv "$out.tmp.$$" "$out"
