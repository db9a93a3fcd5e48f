#!/bin/sh
# Install the Debian packages the libvirt tests and bench/vms.py need, when missing:
# QEMU (qemu-system-x86, qemu-utils for qemu-img), libvirtd with its QEMU driver (the tests
# start their own session daemon), a Debian kernel for the test guest (linux-image-amd64),
# a static busybox and cpio to build its initramfs, genisoimage for the NoCloud Init seed,
# setpriv (util-linux) to run the session as an unprivileged user, and libvirt-dev with
# pkg-config, which the libvirt Python bindings (the [libvirt] extra) build against.
# Idempotent and quiet; used by `make system-deps`. Needs root to install.
set -eu

missing=""
for package in qemu-system-x86 qemu-utils libvirt-daemon libvirt-daemon-driver-qemu \
        busybox-static cpio genisoimage util-linux libvirt-dev pkg-config; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $package"
done
ls /boot/vmlinuz-* >/dev/null 2>&1 || missing="$missing linux-image-amd64"

# shellcheck disable=SC2086  # the list is words on purpose
exec sh "$(dirname "$0")/install-debs.sh" "libvirt tests" $missing
