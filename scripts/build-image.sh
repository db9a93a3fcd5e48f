#!/bin/sh
# `make image`: an image of the project on the local Docker engine, built from Debian packages
# and our wheel, with nothing pulled from a registry:
#   1. our wheel and the wheels of what it needs (pip, from the package index);
#   2. a minimal Debian root filesystem with python3 (debootstrap, from the Debian archive;
#      the .debs are kept in build/image/debs so a rebuild downloads nothing);
#   3. a virtualenv at /opt/infrakit in it, installed from those wheels only;
#   4. `docker import` of that filesystem as IMAGE (and IMAGE's repository :latest).
# The engine is the docker CLI's (DOCKER_HOST or the default socket). Needs root (debootstrap,
# chroot). Settings, from the environment:
#   IMAGE   the tag (default infrakit:<project version>)
#   SUITE   the Debian release (default: this machine's, else bookworm)
#   MIRROR  the Debian archive (default: http://deb.debian.org/debian)
#   PYTHON  the Python whose pip builds the wheels (default: .venv/bin/python)
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
IMAGE=${IMAGE:-infrakit:$version}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PYTHON=${PYTHON:-.venv/bin/python}
if [ -z "${SUITE:-}" ]; then
    SUITE=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null || true)
    SUITE=${SUITE:-bookworm}
fi

fail() { echo "make image: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (debootstrap and chroot build the root filesystem)"
command -v docker >/dev/null 2>&1 || fail "no docker CLI: install Debian's docker.io"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || fail "no Docker engine answers at ${DOCKER_HOST:-the default socket}: start dockerd or set DOCKER_HOST"
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "make image: installing debootstrap" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
[ -x "$PYTHON" ] || fail "$PYTHON not found: run make venv first, or set PYTHON"

work=build/image
mkdir -p "$work/debs"
root=$(mktemp -d "$work/rootfs.XXXXXX")
trap 'rm -rf "$root" "$work/wheels"' EXIT

echo "make image: wheels" >&2
rm -rf "$work/wheels"
"$PYTHON" -m pip wheel --quiet --wheel-dir "$work/wheels" . >&2

echo "make image: Debian $SUITE root filesystem" >&2
debootstrap --variant=minbase --include=python3,python3-venv \
    --cache-dir="$here/$work/debs" "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; fail "debootstrap failed (log: $work/debootstrap.log)"; }

echo "make image: /opt/infrakit" >&2
mkdir -p "$root/tmp/wheels"
cp "$work"/wheels/*.whl "$root/tmp/wheels/"
chroot "$root" python3 -m venv /opt/infrakit
chroot "$root" /opt/infrakit/bin/pip install --quiet --no-index --find-links /tmp/wheels \
    --disable-pip-version-check infrakit
# What a plugin image never uses: package caches and lists, docs, the wheels.
rm -rf "$root/tmp/wheels" "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/* \
    "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/info"

echo "make image: docker import $IMAGE" >&2
tar -C "$root" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/opt/infrakit/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV INFRAKIT_PLUGINS_DIR=/run/infrakit/plugins' \
    --change 'WORKDIR /' \
    --change 'CMD ["infrakit", "--help"]' \
    --change "LABEL org.opencontainers.image.title=infrakit org.opencontainers.image.version=$version" \
    - "$IMAGE" >/dev/null
latest="${IMAGE%:*}:latest"
[ "$latest" = "$IMAGE" ] || docker tag "$IMAGE" "$latest"
echo "$IMAGE"
