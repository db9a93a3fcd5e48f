"""The Init script that runs one etcd member, pure: a plain ``sh`` script any instance plugin
can run (``instance-process`` runs it with ``/bin/sh -c`` and needs the server in the
foreground, hence the ``exec``).

- ``new``: keep the data dir when there is one (etcd then restarts from it), else
  bootstrap with the initial cluster;
- ``existing``: wipe the data dir (a member just added must start empty), then join;
- ``restart``: start from the data dir, or refuse (exit 1, saying why) when there is none:
  joining empty would need a leader the cluster does not have.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from infrakit.plugins.flavor.etcd import settings
from infrakit.plugins.flavor.etcd.joining import State


def render(me: settings.Address, *, state: State, cluster: Sequence[tuple[str, str]],
           token: str, props: settings.Properties) -> str:
    """The script that starts the member at ``me`` in ``state``; ``cluster`` is its
    ``--initial-cluster`` as (name, peer URL) pairs."""
    data = data_dir(me, props)
    lines = ["set -e", f"data={shlex.quote(data)}"]
    if state == "existing":
        lines.append('rm -rf -- "$data"  # a member just added must start empty')
    if state == "restart":
        lines.append('[ -d "$data/member" ] || { echo "etcd member ' + _sh_text(me.name)
                     + ' has no data in $data and the cluster has no leader to join;'
                     ' restore its data dir" >&2; exit 1; }')
    lines.append('mkdir -p -- "$data"')
    initial = ",".join(f"{name}={url}" for name, url in cluster)
    flags = [
        props.binary, "--name", me.name, "--data-dir", "$data",
        "--listen-client-urls", me.client_url, "--advertise-client-urls", me.client_url,
        "--listen-peer-urls", me.peer_url, "--initial-advertise-peer-urls", me.peer_url,
        "--initial-cluster", initial, "--initial-cluster-token", token,
        "--initial-cluster-state", "new" if state == "new" else "existing",
        # a member cut off and back must not force an election (etcd 3.5's default; 3.4's
        # is off, and its returning member's higher term made the leader step down)
        "--pre-vote=true",
        *(props.flags or []),
    ]
    lines.append("exec " + " ".join('"$data"' if f == "$data" else shlex.quote(f)
                                    for f in flags))
    return "\n".join(lines)


def data_dir(me: settings.Address, props: settings.Properties) -> str:
    """Where the member keeps its data: ``<DataDir>/<name>``."""
    return f"{props.data_dir.rstrip('/') or '/'}/{me.name}"


def _sh_text(text: str) -> str:
    """``text`` safe inside a double-quoted shell string."""
    return "".join(c for c in text if c not in '"$`\\')
