"""An etcd cluster as a group, end to end: the group plugin, instance-process and
flavor-etcd as processes, etcd members on 127.0.0.21 … 127.0.0.25, the CLI to commit.

The tests share one group and run in order: each leaves it at three healthy members."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from etcd_harness import ADDRESSES, Stack, cluster_members, free_port_pair, get, pid_of, put, status

from infrakit import testing

GID = "etcd"
FLAGS = ["--heartbeat-interval", "100", "--election-timeout", "1000"]


class Group:
    """The committed group's spec and a view of its cluster."""

    def __init__(self, stack: Stack, etcd_bin: str) -> None:
        self.stack = stack
        self.client_port, self.peer_port = free_port_pair()
        self.ports = [self.client_port]
        self.etcd_bin = etcd_bin

    def spec(self, ids: list[str], *, flags: list[str] = FLAGS,
             unhealthy_after: str = "10s") -> dict[str, Any]:
        work = self.stack.work
        return {"ID": GID, "Properties": {
            "Allocation": {"LogicalIDs": ids},
            "Instance": {"Plugin": "instance-process",
                         "Properties": {"StopTimeout": "10s", "Cwd": str(work)}},
            "Flavor": {"Plugin": "flavor-etcd", "Properties": {
                "ClientPort": self.client_port, "PeerPort": self.peer_port,
                "Binary": self.etcd_bin, "DataDir": str(work / "data"), "Flags": flags,
                "Timeout": "4s"}},
            "Health": {"Interval": "300ms", "StartupGrace": "30s",
                       "UnhealthyAfter": unhealthy_after},
            "Update": {"HealthTimeout": "90s"}}}

    def url(self, lid: str) -> str:
        return f"http://{lid}:{self.client_port}"

    def listed(self) -> list[dict[str, Any]]:
        """MemberList, as the first member that answers (on any port used so far) says."""
        for port in self.ports:
            for lid in ADDRESSES:
                found = cluster_members(f"http://{lid}:{port}")
                if found:
                    return found
        return []

    def cluster(self) -> dict[str, str]:
        """Member ID by name, when every member has started (else ``{}``)."""
        listed = self.listed()
        return {m["name"]: m["ID"] for m in listed} if all(m.get("name") for m in listed) \
            else {}

    def leader(self) -> str:
        listed = [m for m in self.listed() if m.get("clientURLs")]
        for member in listed:
            lead = status(member["clientURLs"][0]).get("leader")
            name = next((m["name"] for m in listed if m["ID"] == lead), "")
            if name:
                return str(name)
        return ""

    def move(self) -> None:
        """New client and peer ports for the next spec."""
        self.client_port, self.peer_port = free_port_pair()
        self.ports.insert(0, self.client_port)

    def settled(self, ids: list[str], *, timeout: float = 90.0) -> dict[str, str]:
        """Wait until the group is converged on ``ids`` and the cluster is exactly those
        members, all started; their member IDs by name."""
        def check() -> dict[str, str] | None:
            found = self.cluster()
            if sorted(found) != sorted(ids):
                return None
            described = self.stack.describe(GID)
            members = {m["LogicalID"] for m in described["Instances"] or []}
            return found if described["Converged"] and members == set(ids) else None
        try:
            return testing.wait_for(check, what=f"{ids} converged", timeout=timeout,
                                    pause=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; cluster {self.cluster()}; group "
                                 f"{self.stack.describe(GID).get('Status')}; flavor log: "
                                 f"{self.stack.log('flavor-etcd')}") from None


@pytest.fixture(scope="module")
def group(stack: Stack, etcd_bin: str) -> Iterator[Group]:
    made = Group(stack, etcd_bin)
    yield made


THREE = ADDRESSES[:3]


def test_a_committed_group_of_three_forms_one_cluster(group: Group) -> None:
    assert group.stack.commit(group.spec(THREE)) == "Committed etcd: Managing 3 instances"
    members = group.settled(THREE)
    assert len(set(members.values())) == 3
    put(group.url(THREE[0]), "greeting", "hello")
    assert get(group.url(THREE[2]), "greeting") == "hello"


def test_a_killed_member_is_removed_and_a_new_one_added(group: Group) -> None:
    victim = THREE[1]
    before = group.settled(THREE)
    iid = group.stack.members(GID)[victim]["ID"]
    os.kill(pid_of(group.stack.work / "procs", iid), signal.SIGKILL)

    def replaced() -> dict[str, str] | None:
        found = group.settled(THREE)
        return found if found[victim] != before[victim] else None
    after = testing.wait_for(replaced, what=f"{victim} replaced", timeout=90)
    assert group.stack.members(GID)[victim]["ID"] != iid
    assert {k: v for k, v in after.items() if k != victim} == {
        k: v for k, v in before.items() if k != victim}
    assert get(group.url(victim), "greeting") == "hello"


def test_a_rolling_update_to_new_ports_replaces_every_member_the_leader_last(
        group: Group) -> None:
    before = group.settled(THREE)
    old_ids = {lid: m["ID"] for lid, m in group.stack.members(GID).items()}
    group.move()  # the members move to new ports, one at a time: the flavor finds the rest
    log_start = len((group.stack.work / "flavor-etcd.log").read_text())
    assert group.stack.commit(group.spec(THREE, flags=[*FLAGS, "--max-txn-ops", "256"])) == (
        "Committed etcd: Performing a rolling update on 3 instances")

    replaced: list[str] = []
    deadline = time.monotonic() + 180
    while len(replaced) < 3:
        assert time.monotonic() < deadline, f"rolling update stuck: {replaced}"
        now = {lid: m["ID"] for lid, m in group.stack.members(GID).items()}
        replaced += [lid for lid in THREE if now.get(lid, old_ids[lid]) != old_ids[lid]
                     and lid not in replaced]
        time.sleep(0.2)
    after = group.settled(THREE)
    assert not set(after.values()) & set(before.values())  # every member is a new one
    # Drain moves leadership away from a leader before removing it: only the last one was.
    handovers = re.findall(r"drain (\S+): moved leadership",
                           (group.stack.work / "flavor-etcd.log").read_text()[log_start:])
    assert handovers == [replaced[-1]]
    assert get(group.url(THREE[0]), "greeting") == "hello"
    assert all(m["clientURLs"] == [group.url(m["name"])] for m in group.listed())


def test_a_removal_that_would_lose_quorum_waits_and_says_why(group: Group) -> None:
    group.settled(THREE)
    flags = [*FLAGS, "--max-txn-ops", "256"]
    leaving = group.stack.members(GID)[THREE[0]]["ID"]
    pid = pid_of(group.stack.work / "procs", group.stack.members(GID)[THREE[2]]["ID"])
    expected = (f"removing {THREE[0]} would leave 1 of 2 voting members healthy; "
                "quorum needs 2")
    seen: list[str] = []
    os.kill(pid, signal.SIGSTOP)  # 127.0.0.23 holds its sockets and answers nothing
    try:
        # Scale-in: 127.0.0.21 goes. (The stopped member is not replaced meanwhile.)
        group.stack.commit(group.spec(THREE[1:], flags=flags, unhealthy_after="5m"))

        def waiting() -> bool:
            status = group.stack.describe(GID).get("Status") or {}
            seen.append(str((status.get("Waiting") or {}).get(leaving)))
            return seen[-1] == expected
        try:
            testing.wait_for(waiting, what="the removal waiting", timeout=60, pause=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: saw {sorted(set(seen))}; flavor log: "
                                 f"{group.stack.log('flavor-etcd')}") from None
        assert sorted(group.cluster()) == THREE
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    group.settled(THREE[1:])  # once 127.0.0.23 answers again, 127.0.0.21 may go

    group.stack.commit(group.spec(THREE, flags=flags))
    group.settled(THREE)


def test_a_cluster_grows_to_five_and_shrinks_back_to_three(group: Group) -> None:
    group.settled(THREE)
    spec = group.spec(ADDRESSES, flags=[*FLAGS, "--max-txn-ops", "256"])
    group.stack.commit(spec)
    grown = group.settled(ADDRESSES, timeout=120)
    assert len(grown) == 5
    assert get(group.url(ADDRESSES[4]), "greeting") == "hello"

    group.stack.commit(group.spec(THREE, flags=[*FLAGS, "--max-txn-ops", "256"]))
    shrunk = group.settled(THREE, timeout=120)
    assert {k: grown[k] for k in THREE} == shrunk
