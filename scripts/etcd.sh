#!/bin/sh
# Print the path of an etcd server binary, installing Debian's etcd-server when missing.
# Used by `make system-deps` (so by `make test`); the tests only look for the binary
# (infrakit.testing_etcd), in the same places as found() below.
# ETCD_BIN, when set to an executable, wins; otherwise PATH, then /usr/bin/etcd.
set -eu

found() {
    if [ -n "${ETCD_BIN:-}" ] && [ -x "$ETCD_BIN" ]; then
        echo "$ETCD_BIN"; return 0
    fi
    if command -v etcd >/dev/null 2>&1; then
        command -v etcd; return 0
    fi
    if [ -x /usr/bin/etcd ]; then
        echo /usr/bin/etcd; return 0
    fi
    return 1
}

if found; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "etcd not found and not root: install Debian's etcd-server package" >&2
    exit 1
fi

# Quiet install: stdout must hold only the path.
echo "etcd not found: installing etcd-server" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update >&2
apt-get install -y --no-install-recommends etcd-server >&2
found
