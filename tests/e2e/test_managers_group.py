"""The managers' own group, healed by the new leader: three instance-host hosts, each an
etcd member and a manager, are the pets of the group ``managers`` (logical IDs: their
addresses; flavor: flavor-combo of flavor-vanilla, which starts the manager, and flavor-etcd,
which joins the member). The harness provisions them as the group would, tagged
``bootstrap``; once committed, the group adopts them. When the leader's host is killed, a
standby leads, its backend replaces the host at the same address, the new etcd member joins
(the dead one removed) and the new manager stands by; a cattle group and a pets group keep
their members throughout.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from infrakit import testing, testing_hosts

pytestmark = pytest.mark.slow

HEAL_TIMEOUT = 100.0
"""Seconds for the lease, a replacement host's boot and its etcd join on a busy machine
(within pytest's 120 s per test)."""


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testing_hosts.GroupedHosts]:
    reason = testing_hosts.missing()
    if reason is not None:
        testing.missing_engine(f"managers' group: {reason}")
    made = testing_hosts.GroupedHosts(tmp_path_factory.mktemp("mgrgroup"))
    try:
        made.start()
        yield made
    finally:
        made.close()


def commit(hosts: testing_hosts.GroupedHosts, spec: dict[str, object], *, via: str) -> None:
    path = hosts.root / f"{spec['ID']}.json"
    path.write_text(json.dumps(spec))
    done = hosts.infrakit("group", "commit", str(path), via=via)
    assert done.returncode == 0, done.stderr


def converged(hosts: testing_hosts.GroupedHosts, gid: str, *, via: str) -> bool:
    return hosts.infrakit("group", "describe", gid, "-q", "--exit-status",
                          via=via).returncode == 0


PETS = ["db-1", "db-2", "db-3"]


def members(hosts: testing_hosts.GroupedHosts, gid: str) -> set[str]:
    """The instance IDs of group ``gid`` (instance-file's records, on the shared dir)."""
    return {iid for iid, record in hosts.instance_files().items()
            if record.get("Tags", {}).get("infrakit.group") == gid}


def cattle(hosts: testing_hosts.GroupedHosts) -> set[str]:
    return members(hosts, "cattle")


def standby_of(hosts: testing_hosts.GroupedHosts) -> str:
    leader = hosts.leader()
    assert leader is not None
    return next(a for a in hosts.addresses if a != leader)


@pytest.fixture(scope="module")
def committed(hosts: testing_hosts.GroupedHosts) -> dict[str, str]:
    """The managers' group, a cattle and a pets group committed through a standby, converged;
    the hosts as they were before the commit."""
    before = hosts.refresh()
    via = standby_of(hosts)
    commit(hosts, hosts.spec(), via=via)
    commit(hosts, {"ID": "cattle", "Properties": {
        "Allocation": {"Size": 3},
        "Instance": {"Plugin": "instance-file", "Properties": {"Note": "cattle"}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Init": ["echo cattle"]}}}},
        via=via)
    commit(hosts, {"ID": "pets", "Properties": {
        "Allocation": {"LogicalIDs": PETS},
        "Instance": {"Plugin": "instance-file", "Properties": {"Note": "pets"}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Init": ["echo pet"]}}}},
        via=via)
    testing.wait_for(lambda: converged(hosts, "managers", via=via)
                     and len(cattle(hosts)) == 3 and len(members(hosts, "pets")) == 3,
                     what="the managers', the cattle and the pets group converged",
                     timeout=120.0)
    return before


def test_the_running_hosts_are_adopted_as_the_managers_group(
        hosts: testing_hosts.GroupedHosts, committed: dict[str, str]) -> None:
    assert hosts.refresh() == committed, "no host was added or replaced"
    for address in hosts.addresses:
        assert hosts.etcd_started(address) == sorted(hosts.addresses)
    members = hosts.infrakit("group", "describe", "managers", "-q",
                             via=standby_of(hosts)).stdout
    assert sorted(committed.values()) == sorted(
        line.split()[0] for line in members.splitlines() if line.startswith("instance-"))


def test_the_new_leader_replaces_the_dead_leaders_host(
        hosts: testing_hosts.GroupedHosts, committed: dict[str, str]) -> None:
    workers, pets = cattle(hosts), members(hosts, "pets")
    assert len(workers) == len(pets) == 3
    seen: set[tuple[frozenset[str], frozenset[str]]] = set()
    stop = threading.Event()

    def sample() -> None:  # every member set of cattle and pets seen during the failover
        while not stop.wait(0.05):
            seen.add((frozenset(cattle(hosts)), frozenset(members(hosts, "pets"))))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        dead = hosts.leader()
        assert dead is not None
        old = hosts.hosts[dead]
        others = [a for a in hosts.addresses if a != dead]
        hosts.kill_host(dead)
        leader = testing_hosts.wait_for_leader(hosts, among=others, timeout=HEAL_TIMEOUT)
        testing.wait_for(lambda: hosts.refresh().get(dead, old) != old,
                         what=f"a new host at {dead}", timeout=HEAL_TIMEOUT)
        testing.wait_for(lambda: hosts.etcd_healthy(dead)
                         and hosts.etcd_started(leader) == sorted(hosts.addresses),
                         what="3 started etcd members, the new one healthy",
                         timeout=HEAL_TIMEOUT)
        testing.wait_for(lambda: converged(hosts, "managers", via=leader),
                         what="the managers' group converged", timeout=HEAL_TIMEOUT)

        def new_manager_stands_by() -> bool:
            info = hosts.leader_info(dead)
            return (info is not None and info["IsLeader"] is False
                    and info["Leader"]["URL"] == hosts.url(leader))

        testing.wait_for(new_manager_stands_by, what=f"the manager at {dead} standing by",
                         timeout=HEAL_TIMEOUT)
    except BaseException:
        for address in hosts.addresses:
            print(address, hosts.log(address, "manager"))
            print(hosts.log(address, "group-stateless"), hosts.log(address, "flavor-etcd"))
        raise
    finally:
        stop.set()
        sampler.join(timeout=10)
    assert seen == {(frozenset(workers), frozenset(pets))}, \
        "the cattle and the pets group kept their members throughout"
    assert hosts.etcd_started(dead) == sorted(hosts.addresses)


def test_a_rolling_update_in_flight_completes_under_the_next_leader(
        hosts: testing_hosts.GroupedHosts, committed: dict[str, str]) -> None:
    hosts.refresh()
    dead = hosts.leader()
    assert dead is not None
    old = hosts.hosts[dead]
    others = [a for a in hosts.addresses if a != dead]
    before, pets = cattle(hosts), members(hosts, "pets")
    # v2 members are unhealthy until the release file exists: the update waits on its first
    # new member, so it is certainly in flight when the leader's host goes down.
    release = hosts.root / "release"
    commit(hosts, {"ID": "cattle", "Properties": {
        "Allocation": {"Size": 3},
        "Instance": {"Plugin": "instance-file", "Properties": {"Note": "cattle v2"}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {
            "Init": ["echo cattle v2"], "Health": {"Command": f"test -e {release}"}}},
        "Health": {"Interval": "1s", "StartupGrace": "120s"}}}, via=others[0])
    testing.wait_for(lambda: len(cattle(hosts) - before) >= 1,
                     what="the update's first new member", timeout=60.0)
    hosts.kill_host(dead)
    leader = testing_hosts.wait_for_leader(hosts, among=others, timeout=HEAL_TIMEOUT)
    assert len(cattle(hosts) & before) >= 1, "the update was still in flight at the kill"
    release.touch()

    def updated() -> bool:
        records = [r for r in hosts.instance_files().values()
                   if r.get("Tags", {}).get("infrakit.group") == "cattle"]
        return (len(records) == 3
                and all(r["Spec"]["Properties"]["Note"] == "cattle v2" for r in records)
                and converged(hosts, "cattle", via=leader))

    testing.wait_for(updated, what="the cattle group rolled to v2 by the next leader",
                     timeout=HEAL_TIMEOUT)
    assert not cattle(hosts) & before, "every member was replaced"
    assert members(hosts, "pets") == pets, "the pets were left alone"
    testing.wait_for(lambda: hosts.refresh().get(dead, old) != old
                     and converged(hosts, "managers", via=leader),
                     what=f"the host at {dead} replaced again", timeout=HEAL_TIMEOUT)
