"""A group of busybox httpd containers end to end: infrakit-group-default (polling once a
minute), infrakit-instance-docker ``--notify group`` and infrakit-flavor-vanilla as their
own processes on the private engine, driven by the ``infrakit`` CLI. Healing here can only
come from the engine's event stream: the group's poll is a minute away."""

from __future__ import annotations

import json
import pathlib
import tempfile
from collections.abc import Iterator
from typing import Any

import privatedocker
import pytest

from infrakit import testing_stack
from infrakit.testing import wait_for

pytestmark = pytest.mark.docker


class Stack(testing_stack.Stack):
    """The three plugin processes on a private plugins dir, and the CLI; the engine."""

    def __init__(self, dockerd: privatedocker.Dockerd) -> None:
        super().__init__(pathlib.Path(tempfile.mkdtemp(prefix="ikg-")), cli_timeout=120.0)
        self.dockerd = dockerd

    def start_all(self) -> None:
        self.start("instance-docker", "infrakit-instance-docker", "--url", self.dockerd.url,
                   "--notify", "group", "--log", "5")
        self.start("flavor-vanilla", "infrakit-flavor-vanilla", "--log", "2")
        self.start("group", "infrakit-group-default", "--poll-interval", "1m", "--log", "4")
        self.wait_ready()

    def running(self, gid: str) -> dict[str, dict[str, Any]]:
        """The group's containers on the engine (any state), inspected, by short ID."""
        ids = self.dockerd.containers(f"label=infrakit.group={gid}")
        if not ids:
            return {}
        found = json.loads(self.dockerd.docker("inspect", *ids).stdout)
        return {c["Id"][:12]: c for c in found}


@pytest.fixture(scope="module")
def stack(dockerd: privatedocker.Dockerd) -> Iterator[Stack]:
    started = Stack(dockerd)
    try:
        started.start_all()
        yield started
    finally:
        started.close(show=("group", "instance-docker"))  # the logs, shown when a test failed
        leftovers = dockerd.containers("label=infrakit.instance-docker")
        if leftovers:
            dockerd.docker("rm", "-f", "-v", *leftovers)


def web(gid: str, version: str, size: int = 3) -> dict[str, Any]:
    """Members serve ``/version.txt`` (written by the flavor's Init) on a published port."""
    return {"ID": gid, "Properties": {
        "Instance": {"Plugin": "instance-docker", "Properties": {
            "Image": privatedocker.IMAGE, "Command": ["httpd", "-f", "-p", "80", "-h", "/www"],
            "Ports": ["80"], "StopTimeout": "2s"}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {
            "Init": [f"echo {version} > /www/version.txt"]}},
        "Allocation": {"Size": size},
        "Update": {"MaxSurge": 1},
        # Members killed on purpose die young: not a crash loop to back off from here.
        "Health": {"Interval": "0s", "CrashLoop": {"Threshold": 100}}}}


def settled(stack: Stack, gid: str, size: int) -> set[str] | None:
    """The IDs of ``size`` members, converged, each a running container; else None."""
    done, members = stack.converged(gid)
    ids = {m["ID"] for m in members}
    running = stack.running(gid)
    live = {cid for cid, c in running.items() if c["State"]["Running"]}
    return ids if done and len(ids) == size and ids == live == set(running) else None


def replaced(stack: Stack, gid: str, size: int, old: set[str]) -> set[str] | None:
    """:func:`settled`, once some member of ``old`` is gone."""
    ids = settled(stack, gid, size)
    return ids if ids is not None and ids - old else None


def converged(stack: Stack, gid: str, size: int) -> set[str]:
    return wait_for(lambda: settled(stack, gid, size), what=f"{size} running members of {gid}")


def versions(stack: Stack, gid: str) -> list[str | None]:
    """What each member container serves at /version.txt (through its 127.0.0.1 port)."""
    served = []
    for container in stack.running(gid).values():
        if not container["State"]["Running"]:
            served.append("(stopped)")  # being replaced
            continue
        port = int(container["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
        answer = stack.dockerd.http_get(port, "/version.txt")
        served.append(answer.strip() if answer is not None else None)
    return sorted(served, key=str)


def test_a_group_converges_heals_by_event_rolls_and_leaves_nothing(stack: Stack) -> None:
    stack.commit(web("web", "v1"))
    first = converged(stack, "web", 3)
    assert versions(stack, "web") == ["v1"] * 3

    victim = sorted(first)[0]
    stack.dockerd.docker("kill", victim)
    healed = wait_for(lambda: replaced(stack, "web", 3, first),
                      what="the killed member replaced (by the event: the poll is 1m away)")
    assert victim not in healed and len(healed & first) == 2

    stack.commit(web("web", "v2"))
    try:
        wait_for(lambda: versions(stack, "web") == ["v2"] * 3, what="every member on v2")
    except AssertionError:
        print(stack.cli("group", "describe", "web").stdout, versions(stack, "web"))
        raise
    rolled = converged(stack, "web", 3)
    assert not rolled & healed

    stack.cli("group", "destroy", "web")
    wait_for(lambda: stack.dockerd.containers("label=infrakit.group=web") == [],
             what="no container of web left, running or exited", timeout=30)


def test_the_event_stream_survives_an_engine_restart(stack: Stack) -> None:
    stack.commit(web("phoenix", "v1", size=2))
    before = converged(stack, "phoenix", 2)
    stack.dockerd.restart()  # stops every container; the plugin reconnects and wakes the group
    after = converged(stack, "phoenix", 2)
    assert not after & before
    victim = sorted(after)[0]
    stack.dockerd.docker("kill", victim)
    healed = wait_for(lambda: replaced(stack, "phoenix", 2, after),
                      what="a member killed after the restart replaced")
    assert victim not in healed
    assert stack.dockerd.containers("label=infrakit.group=phoenix", "status=exited") == []
    stack.cli("group", "destroy", "phoenix")
    wait_for(lambda: stack.dockerd.containers("label=infrakit.group=phoenix") == [],
             what="nothing of phoenix left")
