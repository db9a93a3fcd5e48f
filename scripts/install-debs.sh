#!/bin/sh
# install-debs.sh WHO PACKAGE...: install Debian packages for WHO (what needs them, named in
# the error), quietly unless it fails: then apt's own words say why. Needs root. Used by the
# deps-*.sh scripts once they found what is missing.
set -eu
who=$1
shift
[ "$#" -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "$who need: $* (not root: install them with apt-get)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! { apt-get update -qq \
        && apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "$@"; } \
        >"$out" 2>&1; then
    cat "$out" >&2
    exit 1
fi
