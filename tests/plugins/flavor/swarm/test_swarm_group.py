"""Swarms run by the real group plugin, instance-host and flavor-swarm as processes: three
managers and two workers, each a host with its own dockerd on a private network; an overlay
network carries traffic between containers on two hosts; a manager's host killed is
replaced and the swarm is whole again; a worker scaled away leaves the swarm;
CanRemove keeps the Raft quorum."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
import swarmstack

from infrakit import testing
from infrakit.rpc import sync

pytestmark = pytest.mark.slow


def whole(swarm: swarmstack.SwarmStack, *, via: str, workers: int) -> list[dict[str, Any]] | None:
    """The nodes, once there are exactly 3 reachable managers and ``workers`` ready workers,
    nothing else, and both groups count every member healthy."""
    nodes = swarm.nodes(via)
    if nodes is None or len(nodes) != 3 + workers:
        return None
    managers = [n for n in nodes if n["ManagerStatus"] in ("Leader", "Reachable")]
    ready = [n for n in nodes if n["Status"] == "Ready"]
    if len(managers) != 3 or len(ready) != 3 + workers:
        return None
    groups = [("managers", 3)] + ([("workers", workers)] if workers else [])
    for gid, size in groups:
        status = swarm.stack.describe(gid).get("Status") or {}
        if (status.get("Counts") or {}).get("Healthy") != size:
            return None
    return nodes


def members(swarm: swarmstack.SwarmStack, gid: str) -> dict[str, str]:
    return {m.get("LogicalID") or m["ID"]: m["ID"] for m in swarm.stack.members(gid)}


def overlay_connects_the_workers(swarm: swarmstack.SwarmStack) -> None:
    """An attachable overlay network made on a manager carries a request from a container on
    one worker to a web server in a container on the other, by address and by name."""
    one, other = members(swarm, "workers").values()
    swarm.load_busybox(one)
    image = swarm.load_busybox(other)
    swarm.docker("10.76.0.12", "network", "create", "-d", "overlay", "--attachable", "lan")
    swarm.docker(one, "run", "-d", "--name", "web", "--network", "lan", image,
                 "/bin/busybox", "sh", "-c", "mkdir /www && /bin/busybox hostname > "
                 "/www/index.html && exec /bin/busybox httpd -f -p 8080 -h /www")
    server = swarm.docker(one, "inspect", "-f", "{{.Config.Hostname}} "
                          '{{(index .NetworkSettings.Networks "lan").IPAddress}}',
                          "web").stdout.decode().split()
    for target in (server[1], "web"):  # busybox's wget is no use here: nc speaks HTTP
        got = swarm.docker(other, "run", "--rm", "--network", "lan", image, "/bin/busybox",
                           "sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | "
                           f"/bin/busybox nc {target} 8080").stdout.decode()
        assert got.startswith("HTTP/1.1 200 OK") and got.endswith(f"\r\n\r\n{server[0]}\n")
    swarm.docker(one, "rm", "-f", "web")


def can_remove(swarm: swarmstack.SwarmStack, lid: str) -> dict[str, Any]:
    """Flavor.CanRemove of the manager at ``lid``, over RPC as the group asks it."""
    client = sync.Client(swarm.stack.sockets / "flavor-swarm", timeout=30.0)
    spec = swarm.spec("managers")["Properties"]["Flavor"]["Properties"]
    found = {m["LogicalID"]: m for m in swarm.stack.members("managers")}
    answer: dict[str, Any] = client.call("Flavor.CanRemove", {
        "Type": "manager", "Properties": spec, "Instance": found[lid],
        "Members": list(found.values())})
    return answer


@pytest.mark.timeout(400)  # five hosts with a dockerd each, on a busy two-core machine
def test_managers_and_workers_form_a_swarm_that_heals_a_killed_manager(
        swarm_stack: swarmstack.SwarmStack) -> None:
    swarm = swarm_stack
    swarm.stack.commit(swarm.spec("managers"))
    testing.wait_for(lambda: whole(swarm, via="10.76.0.12", workers=0),
                     what="three reachable managers", timeout=120)
    swarm.stack.commit(swarm.spec("workers"))
    nodes = testing.wait_for(lambda: whole(swarm, via="10.76.0.11", workers=2),
                             what="three managers and two workers", timeout=120)
    assert sorted(n["Hostname"] for n in nodes if not n["ManagerStatus"]) == sorted(
        members(swarm, "workers"))
    overlay_connects_the_workers(swarm)

    first = members(swarm, "managers")
    os.kill(swarm.pid1(first["10.76.0.11"]), signal.SIGKILL)  # the first manager's host dies

    def healed() -> list[dict[str, Any]] | None:
        now = members(swarm, "managers")
        if now.get("10.76.0.11") in (None, first["10.76.0.11"]):
            return None
        return whole(swarm, via="10.76.0.13", workers=2)

    nodes = testing.wait_for(healed, what="the killed manager replaced, the swarm whole",
                             timeout=150)
    assert sorted(n["Hostname"] for n in nodes if n["ManagerStatus"]) == swarmstack.MANAGERS

    # A worker removed by a scale-down drains, leaves and is gone from the node list.
    smaller = swarm.spec("workers")
    smaller["Properties"]["Allocation"] = {"Size": 1}
    swarm.stack.commit(smaller)
    def one_worker() -> list[dict[str, Any]] | None:
        # the node leaves the swarm in Drain, before the group destroys its host: wait for both
        nodes = whole(swarm, via="10.76.0.12", workers=1)
        workers = [n["Hostname"] for n in nodes or [] if not n["ManagerStatus"]]
        return nodes if nodes and workers == list(members(swarm, "workers")) else None

    testing.wait_for(one_worker, what="one worker left in the swarm and the group", timeout=90)

    # Quorum: one manager of three may go; a second one, while the first is leaving, not.
    assert can_remove(swarm, "10.76.0.12")["Allowed"] is True
    refused = can_remove(swarm, "10.76.0.13")
    assert refused["Allowed"] is False
    assert "would leave 1 of 3 managers reachable" in refused["Reason"]
