#!/bin/sh
# Install the Debian packages the docker tests need (tests/plugins/instance/docker), when
# missing: dockerd and containerd (docker.io), a static busybox to build test images from
# (busybox-static), ip/nsenter for the engine's private network namespace (iproute2,
# util-linux) and debootstrap for `make image`. Idempotent and quiet; used by
# `make system-deps`. Needs root to install.
set -eu

missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx httpd \
    || missing="$missing busybox-static"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v nsenter >/dev/null 2>&1 || missing="$missing util-linux"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"  # make image

# shellcheck disable=SC2086  # the list is words on purpose
exec sh "$(dirname "$0")/install-debs.sh" "docker tests" $missing
