#!/bin/sh
# Install the Debian packages of the tools and applications the provider and flavor tests
# drive for real, when missing: Vagrant (its docker provider runs on the tests' private
# dockerd), ZooKeeper and MariaDB (run as members by instance-process). Terraform comes from
# PyPI (the terraform extra) when it is not on PATH; etcd from scripts/etcd.sh. Idempotent
# and quiet; used by `make system-deps`. Needs root to install.
set -eu

missing=""
command -v vagrant >/dev/null 2>&1 || missing="$missing vagrant"
[ -x /usr/share/zookeeper/bin/zkServer.sh ] || missing="$missing zookeeper"
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing="$missing mariadb-server"

# shellcheck disable=SC2086  # the list is words on purpose
exec sh "$(dirname "$0")/install-debs.sh" "provider and flavor tests" $missing
