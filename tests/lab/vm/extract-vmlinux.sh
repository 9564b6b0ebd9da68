#!/bin/bash
# netmedic VM lab: extracts the uncompressed ELF kernel (vmlinux) from a Debian bzImage.
# qemu boots it directly through its PVH entry (CONFIG_PVH=y in Debian's kernel), which skips
# the BIOS and the in-guest decompression: under TCG that cuts the boot from ~60 s to ~10 s.
#
# usage: extract-vmlinux.sh /boot/vmlinuz-VERSION OUT
set -eu
in=$1
out=$2
try() {
    local magic=$1 tool=$2 off
    for off in $(LC_ALL=C grep -abo "$magic" "$in" | cut -d: -f1); do
        tail -c +$((off + 1)) "$in" | $tool > "$out.tmp" 2>/dev/null || true
        if [ -s "$out.tmp" ] \
            && [ "$(head -c 4 "$out.tmp")" = $'\x7fELF' ]; then
            mv "$out.tmp" "$out"
            return 0
        fi
    done
    return 1
}
try $'\xfd7zXZ\x00' "xz -dc --single-stream" \
    || try $'\x1f\x8b\x08' "gzip -dc" \
    || try $'\x28\xb5\x2f\xfd' "zstd -qdc" \
    || { rm -f "$out.tmp"; echo "extract-vmlinux: no compressed ELF kernel found in $in" >&2; exit 1; }
