#!/usr/bin/env bash
# Sets up what the multi-platform tests (tests/platform.rs) need, as root on
# Debian: qemu-user-static with its binfmt_misc handler for arm64 (the
# package registers it with the F flag, so it works inside a build's root
# file system), and an arm64 busybox from Debian's busybox-static:arm64
# package, unpacked into /var/cache/strata-test/arm64 (the test's base).
# Without root, or where binfmt_misc cannot be mounted, says so and exits 0:
# the tests then skip with a visible message.
set -euo pipefail
out=/var/cache/strata-test/arm64
if [ "$(id -u)" -ne 0 ]; then
  echo "foreign-arch: not root; the multi-platform tests will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! dpkg -s qemu-user-static binfmt-support >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends qemu-user-static binfmt-support >/dev/null
fi
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
    { echo "foreign-arch: cannot mount binfmt_misc; the multi-platform tests will skip" >&2; exit 0; }
fi
update-binfmts --enable qemu-aarch64 || true
if [ ! -x "$out/bin/busybox" ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    apt-get update -qq
  fi
  tmp=$(mktemp -d)
  (cd "$tmp" && chmod 777 . && apt-get download -qq busybox-static:arm64)
  mkdir -p "$out"
  dpkg-deb -x "$tmp"/busybox-static_*_arm64.deb "$out"
  rm -rf "$tmp"
fi
echo "foreign-arch: qemu-aarch64 $(head -1 /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null || echo missing); busybox $out/bin/busybox"
