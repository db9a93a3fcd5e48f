"""The Init a member runs: write its config and ``myid``, then ``exec`` ZooKeeper.

A plain ``/bin/sh`` script, so any instance plugin can run it; ``exec`` keeps the JVM in the
foreground, where ``instance-process`` supervises it. The data lives in ``<DataDir>/<logical
ID>``, so a member replaced under the same logical ID finds its data again. Every start writes
the config afresh from the membership :mod:`.plugin` saw at Prepare; ZooKeeper then follows
the leader's newer configuration, and rewrites ``zoo.cfg`` to point at it.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import shlex

from infrakit.plugins.flavor.zookeeper import ensemble
from infrakit.plugins.flavor.zookeeper.properties import Properties

MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
WORDS = "srvr,mntr,ruok,conf"
"""The four-letter words members answer (:mod:`.words` needs ``srvr`` and ``conf``)."""


def init(props: Properties, *, lid: str, server: int, membership: ensemble.Membership,
         password: str) -> str:
    """The script that starts member ``lid`` (server ``server``) in ``membership``, whose
    super user has ``password`` (only its digest is written)."""
    place = shlex.quote(posixpath.join(props.data_dir, lid))
    jvm = " ".join(shlex.quote(flag) for flag in [*props.java_opts, *_system(password)])
    return f"""#!/bin/sh
# ZooKeeper member {lid} (server {server}), from flavor-zookeeper
set -eu
dir={place}
mkdir -p "$dir/data"
dir=$(cd "$dir" && pwd)
echo {server} > "$dir/data/myid"
cat > "$dir/zoo.cfg" <<EOF
tickTime={props.tick_time}
initLimit={props.init_limit}
syncLimit={props.sync_limit}
dataDir=$dir/data
reconfigEnabled=true
standaloneEnabled=false
4lw.commands.whitelist={WORDS}
admin.enableServer=false
dynamicConfigFile=$dir/zoo.cfg.dynamic
EOF
cat > "$dir/zoo.cfg.dynamic" <<'EOF'
{membership.text()}EOF
exec {shlex.quote(props.java)} {jvm} -cp {shlex.quote(props.classpath)} {MAIN} "$dir/zoo.cfg"
"""


def super_auth(password: str) -> str:
    """The digest credential of the super user with ``password`` (``super:<password>``)."""
    return f"super:{password}"


def super_digest(password: str) -> str:
    """What ZooKeeper's ``superDigest`` wants: ``super:`` and base64(SHA-1 of the credential)."""
    # SHA-1 is what ZooKeeper's digest scheme is made of, not our choice.
    digest = hashlib.sha1(super_auth(password).encode()).digest()
    return f"super:{base64.b64encode(digest).decode()}"


def _system(password: str) -> list[str]:
    # Never skipACL: reconfiguration is the super user's alone (ZooKeeper refuses it to
    # anyone else once ACLs are checked).
    return ["-Dzookeeper.admin.enableServer=false",
            f"-Dzookeeper.DigestAuthenticationProvider.superDigest={super_digest(password)}"]
