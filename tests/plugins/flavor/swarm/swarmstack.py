"""Harness of the swarm flavor's tests: hosts (``infrakit-instance-host``) that each run their
own dockerd, grouped by the real group plugin with ``infrakit-flavor-swarm``.

Each host's Init (the instance spec's) starts dockerd with its data root, exec root, pid file
and socket under ``<root>/<logical ID or instance ID>``; inside the host's private mount
namespace a tmpfs over ``/run`` and ``/etc/docker`` keeps what dockerd writes there (its
netns files, key.json) off the machine, and goes with the host. Swarm traffic stays between
the hosts on the private network; the tests reach each dockerd only through its unix socket.
:func:`running` removes everything afterwards, also when a test fails: plugins and hosts by
pid, the switch, ``/etc/docker`` if it was not there, dockerd's cgroups, the data roots.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import pathlib
import secrets
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from typing import Any

from stack import Stack

from infrakit.plugins.instance.host import network, plugin

NETWORK = "10.76.0.0/24"
MANAGERS = ["10.76.0.11", "10.76.0.12", "10.76.0.13"]
CGROUPS = pathlib.Path("/sys/fs/cgroup")
BUSYBOX = pathlib.Path("/bin/busybox")
IMAGE = "infrakit-test/busybox"
ETC = pathlib.Path("/etc/docker")


def missing() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (namespaces, dockerd)"
    for tool in ("dockerd", "containerd", "docker", "ip", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} not found: run scripts/deps-docker.sh as root"
    if not BUSYBOX.exists():
        return f"{BUSYBOX} not found: run scripts/deps-docker.sh as root"
    return None


def boot(root: pathlib.Path, *, name: str, tag: str) -> list[str]:
    """A host's Init: its own dockerd, with the labels flavor-swarm hands it."""
    return [
        f'D={root}/{name}; rm -rf "$D"; mkdir -p "$D"',
        "mount -t tmpfs tmpfs /run",
        f"[ -d {ETC} ] || mkdir -p {ETC}; mount -t tmpfs tmpfs {ETC}",
        'exec dockerd --data-root "$D/data" --exec-root "$D/x" -H "unix://$D/docker.sock" '
        '--pidfile "$D/docker.pid" --iptables=false --log-level warn '
        f'--cgroup-parent "/{tag}-$INFRAKIT_INSTANCE_ID" $SWARM_ENGINE_LABELS '
        '>"$D/dockerd.log" 2>&1',
    ]


class SwarmStack:
    """The plugins, the hosts' root dir and what the tests ask of the swarm."""

    def __init__(self, stack: Stack, root: pathlib.Path, *, switch: str, tag: str) -> None:
        self.stack = stack
        self.root = root
        self.switch = switch
        self.tag = tag

    def spec(self, gid: str) -> dict[str, Any]:
        """The group spec of ``managers`` (pets) or ``workers`` (two cattle)."""
        if gid == "managers":
            allocation: dict[str, Any] = {"LogicalIDs": MANAGERS}
            flavor: dict[str, Any] = {"Plugin": "flavor-swarm/manager", "Properties": {
                "Docker": {"NodeHost": f"unix://{self.root}/{{LogicalID}}/docker.sock"},
                "EngineLabels": {"tier": "control"}}}
            name = "$INFRAKIT_LOGICAL_ID"
        else:
            allocation = {"Size": 2}
            flavor = {"Plugin": "flavor-swarm/worker", "Properties": {
                "Docker": {"NodeHost": f"unix://{self.root}/{{ID}}/docker.sock",
                           "Managers": [self.url(lid) for lid in MANAGERS]},
                "EngineLabels": {"tier": "work"}}}
            name = "$INFRAKIT_INSTANCE_ID"
        flavor["Properties"]["Init"] = boot(self.root, name=name, tag=self.tag)
        return {"ID": gid, "Properties": {
            "Allocation": allocation,
            "Health": {"Interval": "1s", "StartupGrace": "60s", "UnhealthyAfter": "30s"},
            "Instance": {"Plugin": "instance-host", "Properties": {"StopTimeout": "10s"}},
            "Flavor": flavor}}

    def url(self, name: str) -> str:
        return f"unix://{self.root}/{name}/docker.sock"

    def nodes(self, via: str) -> list[dict[str, Any]] | None:
        """``docker node ls`` through the engine of host ``via``; None when it cannot tell."""
        done = subprocess.run(
            ["docker", "-H", self.url(via), "node", "ls", "--format", "{{json .}}"],
            capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            return None
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def docker(self, host: str, *args: str,
               data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """``docker -H <host's engine> ARGS``; fails the test, with docker's words, when it
        does."""
        done = subprocess.run(["docker", "-H", self.url(host), *args], input=data,
                              capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr.decode()}"
        return done

    def load_busybox(self, host: str) -> str:
        """An image of just /bin/busybox (static), imported into ``host``'s engine: built
        here, nothing pulled."""
        packed = io.BytesIO()
        with tarfile.open(fileobj=packed, mode="w") as tar:
            tar.add(BUSYBOX, arcname="bin/busybox")
        self.docker(host, "import", "-", IMAGE, data=packed.getvalue())
        return IMAGE

    def pid1(self, iid: str) -> int:
        """PID 1 of host ``iid`` (the child of the process instance-host recorded)."""
        record = json.loads((self.stack.work / "hosts" / f"{iid}.json").read_text())
        leader = int(record["Pid"])
        children = pathlib.Path(f"/proc/{leader}/task/{leader}/children").read_text()
        return int(children.split()[0])


@contextlib.contextmanager
def running(work: pathlib.Path) -> Iterator[SwarmStack]:
    """The plugins and hosts; all of it removed on the way out."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="iks-"))
    sockets_dir = pathlib.Path(tempfile.mkdtemp(prefix="iks-p-"))
    tag = f"iks-{secrets.token_hex(3)}"
    switch = f"ikh-s{secrets.token_hex(3)}"
    etc_before = ETC.exists()
    stack = Stack(sockets_dir, work)
    try:
        stack.start("instance-host", "infrakit-instance-host", "--dir", str(work / "hosts"),
                    "--network", NETWORK, "--switch", switch, "--notify", "group", "--log", "3")
        stack.start("flavor-swarm", "infrakit-flavor-swarm", "--log", "4")
        stack.start("group", "infrakit-group-default", "--poll-interval", "1s", "--log", "3")
        stack.wait_ready()
        yield SwarmStack(stack, root, switch=switch, tag=tag)
    finally:
        stack.stop()
        left = plugin.Plugin(work / "hosts", network_=ipaddress.IPv4Network(NETWORK),
                             switch=switch)
        for found in left.describe_instances({}):
            left.destroy(found.id)
        left.close()
        network.remove_switch(switch)
        _remove_cgroups(tag)
        if not etc_before:
            with contextlib.suppress(OSError):
                ETC.rmdir()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(sockets_dir, ignore_errors=True)


def _remove_cgroups(tag: str) -> None:
    for top in CGROUPS.glob(f"**/{tag}-*"):
        for path in sorted((p for p in top.rglob("*") if p.is_dir()),
                           key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
