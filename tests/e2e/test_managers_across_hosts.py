"""Managers on separate hosts (instance-host): each host's boot script starts an etcd member
of a real three-member cluster, instance-file and flavor-vanilla, the backend group plugin
and a manager listening on the host's address with mutual TLS. A cattle group and a pets
group committed through a standby keep their members while the leader's host is cut off
(its link down: the cut-off manager stands down, the majority elects another) and while it
is killed (a standby leads in its place). Everything is reached from inside the switch
namespace, or by the managers' unix sockets, which are files.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from infrakit import testing, testing_hosts

pytestmark = pytest.mark.slow

PETS = ["db-a", "db-b", "db-c"]


def spec(gid: str, allocation: dict[str, Any]) -> dict[str, Any]:
    return {"ID": gid, "Properties": {
        "Allocation": allocation,
        "Instance": {"Plugin": "instance-file", "Properties": {"Note": gid}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Init": [f"echo {gid}"]}}}}


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testing_hosts.HostCluster]:
    reason = testing_hosts.missing()
    if reason is not None:
        testing.missing_engine(f"managers across hosts: {reason}")
    made = testing_hosts.HostCluster(tmp_path_factory.mktemp("hosts13"))
    try:
        made.start()
        yield made
    finally:
        made.close()


class Sampler:
    """Reads the shared instance directory every 50 ms: every group size and member set
    seen, so a moment with a member missing or replaced cannot pass unnoticed."""

    def __init__(self, hosts: testing_hosts.HostCluster) -> None:
        self.hosts = hosts
        self.seen: Counter[tuple[str, frozenset[str]]] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for gid, members in by_group(self.hosts).items():
                self.seen[(gid, frozenset(members))] += 1


def by_group(hosts: testing_hosts.HostCluster) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"cattle": set(), "pets": set()}
    for iid, record in hosts.instance_files().items():
        gid = record.get("Tags", {}).get("infrakit.group")
        if gid in found:
            found[gid].add(iid)
    return found


def converged(hosts: testing_hosts.HostCluster, gid: str, via: str) -> bool:
    return hosts.infrakit("group", "describe", gid, "-q", "--exit-status",
                          via=via).returncode == 0


def described(hosts: testing_hosts.HostCluster, gid: str, *, via: str) -> set[str]:
    """The member IDs ``group describe -q`` lists, asked at ``via``."""
    done = hosts.infrakit("group", "describe", gid, "-q", via=via)
    assert done.returncode == 0, done.stderr
    return {line.split()[0] for line in done.stdout.splitlines()
            if line.startswith("instance-")}


def test_three_hosts_run_a_real_etcd_cluster_and_one_manager_leads(
        hosts: testing_hosts.HostCluster) -> None:
    names = [hosts.manager_name(a) for a in hosts.addresses]
    for address in hosts.addresses:  # each member lists all three
        assert hosts.etcd_members(address) == names
    leader = hosts.leader()
    assert leader in hosts.addresses
    standby = next(a for a in hosts.addresses if a != leader)
    info = hosts.leader_info(standby)
    assert info is not None
    assert info["IsLeader"] is False and info["Manager"] == hosts.manager_name(standby)
    assert info["Leader"]["URL"] == hosts.url(leader), "the leader publishes its URL"
    table = hosts.infrakit("manager", "--name", hosts.manager_name(standby), "leader",
                           via=standby)
    assert f"URL:     {hosts.url(leader)}\n" in table.stdout


@pytest.fixture(scope="module")
def groups(hosts: testing_hosts.HostCluster,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """A cattle and a pets group committed through a standby and converged: their members."""
    leader = hosts.leader()
    assert leader is not None
    standbys = [a for a in hosts.addresses if a != leader]
    specs = tmp_path_factory.mktemp("specs")
    for gid, allocation in (("cattle", {"Size": 3}), ("pets", {"LogicalIDs": PETS})):
        path = specs / f"{gid}.json"
        path.write_text(json.dumps(spec(gid, allocation)))
        done = hosts.infrakit("group", "commit", str(path), via=standbys[0])
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"Committed {gid}: Managing 3 instances\n"
    found: dict[str, set[str]] = testing.wait_for(
        lambda: (now := by_group(hosts)) and all(len(m) == 3 for m in now.values())
        and all(converged(hosts, g, standbys[1]) for g in now) and now,
        what="both groups converged with 3 members", timeout=60)
    assert {hosts.instance_files()[i]["LogicalID"] for i in found["pets"]} == set(PETS)
    return found


def test_a_partitioned_leader_stops_and_the_majority_leads(
        hosts: testing_hosts.HostCluster, groups: dict[str, set[str]]) -> None:
    leader = hosts.leader()
    assert leader is not None
    standbys = [a for a in hosts.addresses if a != leader]
    with Sampler(hosts) as sampler:
        hosts.cut(leader)
        try:
            # the fenced side stops: its keep-alives fail, so its manager stops leading
            testing.wait_for(lambda: hosts.is_leader(leader) is False or None,
                             what=f"the cut-off manager at {leader} standing down", timeout=60)
            elected = testing_hosts.wait_for_leader(hosts, among=standbys, timeout=60)
            assert hosts.is_leader(leader) is False, "never two leaders"
            for gid in groups:
                testing.wait_for(lambda g=gid: converged(hosts, g, elected) or None,
                                 what=f"{gid} converged under {elected}", timeout=60)
        finally:
            hosts.cut(leader, off=False)
        # healed: the old leader comes back as a standby of the new one
        testing.wait_for(lambda: ((hosts.leader_info(leader) or {}).get("Leader") or {})
                         .get("URL") == hosts.url(elected) or None,
                         what=f"{leader} following {elected}", timeout=60)
    assert [hosts.is_leader(a) for a in hosts.addresses].count(True) == 1
    assert set(sampler.seen) == {(gid, frozenset(m)) for gid, m in groups.items()}, \
        "no member was added, removed or replaced while partitioned"


def test_groups_keep_their_members_when_the_leaders_host_is_killed(
        hosts: testing_hosts.HostCluster, groups: dict[str, set[str]]) -> None:
    leader = hosts.leader()
    assert leader is not None
    standbys = [a for a in hosts.addresses if a != leader]
    before = by_group(hosts)
    assert before == groups

    with Sampler(hosts) as sampler:
        hosts.kill_host(leader)
        elected = testing_hosts.wait_for_leader(hosts, among=standbys, timeout=60)
        other = next(a for a in standbys if a != elected)
        for gid in before:  # the new leader's backend answers, through the other standby
            testing.wait_for(lambda g=gid: converged(hosts, g, other) or None,
                             what=f"{gid} converged under {elected}", timeout=60)
        # a few more of the new backend's polls: nothing it does may change a member
        time.sleep(3.0)
    for gid, members in before.items():  # the new leader adopted them, it made none
        assert described(hosts, gid, via=other) == members
    assert set(sampler.seen) == {(gid, frozenset(m)) for gid, m in before.items()}, \
        "every sample saw exactly the members from before the kill"

    gone = hosts.infrakit("group", "ls", via=leader, timeout=60)
    assert gone.returncode == 6, "the killed host's manager does not answer"
    info = hosts.leader_info(other)
    assert info is not None and info["Leader"]["URL"] == hosts.url(elected)

    # two of three etcd members keep a quorum: the new leader's store takes writes
    resized = hosts.infrakit("group", "set-size", "cattle", "4", via=other)
    assert resized.returncode == 0, resized.stderr
    testing.wait_for(lambda: len(by_group(hosts)["cattle"]) == 4 or None,
                     what="cattle grown to 4 by the new leader", timeout=60)
