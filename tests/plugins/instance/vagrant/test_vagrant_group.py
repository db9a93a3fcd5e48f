"""A group of three Vagrant machines end to end: infrakit-group-default, infrakit-instance-
vagrant (real Vagrant, docker provider, the private dockerd) and infrakit-flavor-vanilla as
their own processes, driven by the ``infrakit`` CLI: the group converges, heals a machine
removed behind its back, keeps its members across a restart of the instance plugin, and
leaves nothing when destroyed."""

from __future__ import annotations

import json
import pathlib
import tempfile
from collections.abc import Iterator
from typing import Any

import privatedocker
import pytest
import realvagrant
from realvagrant import MARK

from infrakit import testing_stack
from infrakit.plugins.instance.vagrant import template
from infrakit.rpc import sync
from infrakit.testing import wait_for

pytestmark = pytest.mark.docker

POLL = 10
"""The group's poll interval in seconds: each poll runs ``vagrant status`` per member."""


class Stack(testing_stack.Stack):
    """The three plugin processes on a private plugins dir, and the CLI; the engine."""

    def __init__(self, dockerd: privatedocker.Dockerd, environ: dict[str, str]) -> None:
        super().__init__(pathlib.Path(tempfile.mkdtemp(prefix="ikv-")), environ=environ,
                         cli_timeout=300.0, rpc_timeout=60.0, stop_timeout=30.0, tail=4000)
        self.dockerd = dockerd
        self.machines = self.sockets / "machines"

    def start_vagrant(self) -> None:
        self.start("instance-vagrant", "infrakit-instance-vagrant", "--dir",
                   str(self.machines), "--log", "4")
        self.wait_ready()

    def running(self) -> set[str]:
        """The instance IDs of the running containers Vagrant made."""
        ids = self.dockerd.containers(MARK, "status=running")
        if not ids:
            return set()
        found = json.loads(self.dockerd.docker("inspect", *ids).stdout)
        return {c["Config"]["Labels"][template.INSTANCE] for c in found}

    def settled(self, gid: str, size: int) -> set[str] | None:
        """The IDs of ``size`` converged members, each a running container with its
        directory; else None."""
        done, members = self.converged(gid)
        ids = {m["ID"] for m in members}
        dirs = {p.name for p in self.machines.iterdir()} if self.machines.exists() else set()
        return ids if done and len(ids) == size and ids == self.running() == dirs else None


@pytest.fixture(scope="module")
def stack(dockerd: privatedocker.Dockerd, vagrant_env: dict[str, str]) -> Iterator[Stack]:
    started = Stack(dockerd, vagrant_env)
    try:
        started.start_vagrant()
        started.start("flavor-vanilla", "infrakit-flavor-vanilla", "--log", "2")
        started.start("group", "infrakit-group-default", "--poll-interval", f"{POLL}s",
                      "--log", "4")
        started.wait_ready()
        yield started
    finally:
        started.close(show=("group", "instance-vagrant"))  # the logs, shown when a test failed
        realvagrant.remove_containers(dockerd)


def spec(gid: str, size: int) -> dict[str, Any]:
    return {"ID": gid, "Properties": {
        "Instance": {"Plugin": "instance-vagrant", "Properties": {
            "Image": privatedocker.IMAGE, "Cmd": ["sleep", "100000"]}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {
            "Init": ["echo ready > /tmp/ready"]}},
        "Allocation": {"Size": size},
        # Members removed on purpose die young: not a crash loop to back off from here.
        "Health": {"Interval": "0s", "CrashLoop": {"Threshold": 100}}}}


@pytest.mark.timeout(600)  # a busy machine makes each vagrant run take seconds
def test_a_group_converges_heals_survives_a_plugin_restart_and_leaves_nothing(
        stack: Stack) -> None:
    stack.commit(spec("vg", 3))
    first = wait_for(lambda: stack.settled("vg", 3), what="3 running members", timeout=180)
    for iid in first:
        assert stack.dockerd.docker("exec", iid, "cat", "/tmp/ready").stdout == "ready\n"

    victim = sorted(first)[0]
    stack.dockerd.docker("rm", "-f", victim)
    healed = wait_for(lambda: (found := stack.settled("vg", 3)) and found != first and found,
                      what="the removed member replaced", timeout=180)
    assert victim not in healed and len(healed & first) == 2

    stack.stop("instance-vagrant")
    stack.start_vagrant()
    plugin = sync.Client(stack.sockets / "instance-vagrant", timeout=120.0)
    found = plugin.call("Instance.DescribeInstances", {"Tags": {"infrakit.group": "vg"}})
    assert {d["ID"] for d in found["Descriptions"]} == healed
    assert stack.settled("vg", 3) == healed

    stack.cli("group", "destroy", "vg")
    wait_for(lambda: (stack.running() == set() and not any(stack.machines.iterdir())) or None,
             what="no container and no machine directory left", timeout=120)
    assert stack.dockerd.containers(MARK) == []
