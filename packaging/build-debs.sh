#!/usr/bin/env bash
# Builds the Debian packages netmedic-agent (release-cpe profile) and netmedic-collector (release
# profile) with cargo-deb, into target/debian/ (or $NETMEDIC_DEB_OUT).
#
#   packaging/build-debs.sh                      build binaries and both .debs (revision 1)
#   packaging/build-debs.sh --deb-revision 2     same, another revision (an upgrade to test)
#   packaging/build-debs.sh --no-build ...       package the binaries already built
#   packaging/build-debs.sh --install-tool       only install cargo-deb (scripts/test.sh: before
#                                                any test runs, so no later stage needs the network)
#
# Installs cargo-deb (pinned, from crates.io) when it is missing or another version: idempotent,
# so CI and a fresh machine need nothing else. Extra arguments go to `cargo deb`.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
out=${NETMEDIC_DEB_OUT:-target/debian}

if [ "$(cargo deb --version 2>/dev/null | awk '{print $2}')" != "$CARGO_DEB_VERSION" ]; then
  echo "build-debs: installing cargo-deb $CARGO_DEB_VERSION (crates.io)"
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
fi
[ "${1:-}" = --install-tool ] && exit 0

mkdir -p "$out"
for pkg in netmedic-agent netmedic-collector; do
  echo "build-debs: $pkg"
  # -q: cargo-deb's notes (e.g. that release-cpe already stripped the binary) are not errors.
  cargo deb -q --locked -p "$pkg" --output "$out" "$@"
done
ls -l "$out"/*.deb
