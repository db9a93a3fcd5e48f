"""ZooKeeper ensembles run by the real group plugin, instance-process and flavor-zookeeper
as processes: commit, heal after ``kill -9`` of the leader, a rolling update under a writing
client, and 3 → 5 → 3 members through dynamic reconfiguration."""

from __future__ import annotations

import os
import pathlib
import signal
from typing import Any

import zkstack

from infrakit import testing
from infrakit.plugins.flavor.zookeeper import plugin
from infrakit.spi import instance

ONE_ELECTION = 8.0
"""The longest a client's writes may fail in a row: one leader election (about a second,
on a busy two-core machine several) and the client's reconnection, no more."""


def current(ensemble: zkstack.Ensemble) -> dict[str, dict[str, Any]]:
    return ensemble.stack.members(ensemble.gid)


def settled(ensemble: zkstack.Ensemble, lids: list[str], *, timeout: float = 90.0) -> str:
    """Wait for ``lids`` to be exactly the voters, with a quorum, and the group converged on
    them; the leader's address."""
    def check() -> str | None:
        leader = zkstack.quorum(lids, ensemble.client_port)
        return leader if leader and zkstack.converged(ensemble.stack, ensemble.gid,
                                                      lids) else None
    return testing.wait_for(check, what=f"{lids} converged with a quorum", timeout=timeout)


def test_a_committed_group_becomes_a_three_member_ensemble_with_a_quorum(
        three: zkstack.Ensemble) -> None:
    settled(three, three.lids)
    for lid in three.lids:
        assert zkstack.voters(lid, three.client_port) == {11, 12, 13}
    data_dirs = sorted(p.parent.parent.name for p in three.cwd.glob("zookeeper/*/data/myid"))
    assert data_dirs == three.lids
    status = three.stack.describe(three.gid)["Status"]
    assert status["Counts"]["Healthy"] == 3


def test_the_leader_killed_is_replaced_and_finds_the_data_written_meanwhile(
        three: zkstack.Ensemble) -> None:
    leader = settled(three, three.lids)
    killed = current(three)[leader]["ID"]
    with zkstack.Writer(three.lids, three.client_port) as writer:
        os.killpg(zkstack.member_pid(three.stack, killed), signal.SIGKILL)
        # Written while the old leader is gone: the others elect a new one and go on.
        writer.client.retry(writer.client.create, "/infrakit-test/meanwhile", b"kept")
        at_kill = writer.written
        testing.wait_for(lambda: current(three).get(leader, {}).get("ID") not in (None, killed),
                         what=f"{leader} replaced", timeout=60)
        settled(three, three.lids)
        testing.wait_for(lambda: writer.written > at_kill + 10, what="writes after the heal")
    assert zkstack.read(leader, three.client_port, "/infrakit-test/meanwhile") == b"kept"
    assert int(zkstack.read(leader, three.client_port, "/infrakit-test/n")) >= at_kill
    assert writer.longest < ONE_ELECTION


def test_a_rolling_update_of_all_members_never_loses_the_quorum_and_ends_with_the_leader(
        three: zkstack.Ensemble) -> None:
    leader = settled(three, three.lids)
    before = {lid: m["ID"] for lid, m in current(three).items()}
    v2 = three.spec(flavor={"JavaOpts": ["-Xmx128m", "-Dinfrakit.test=v2"]})
    gone: list[str] = []

    def replaced() -> bool:
        now = {lid: m["ID"] for lid, m in current(three).items()}
        gone.extend(lid for lid in three.lids
                    if now.get(lid) != before[lid] and lid not in gone)
        return len(gone) == 3 and zkstack.converged(three.stack, three.gid, three.lids)

    with zkstack.Writer(three.lids, three.client_port) as writer:
        assert three.stack.commit(v2) == (
            f"Committed {three.gid}: Performing a rolling update on 3 instances")
        testing.wait_for(replaced, what="every member replaced", timeout=180)
        settled(three, three.lids)
    assert gone[-1] == leader, f"replaced in the order {gone}; {leader} led"
    assert writer.longest < ONE_ELECTION, f"writes failed for {writer.longest:.1f}s in a row"
    assert writer.written > 0


def test_three_members_grow_to_five_and_shrink_to_another_three(three: zkstack.Ensemble) -> None:
    """With no SuperPassword: the flavor's own per-group password, which a restarted flavor
    derives again from the key in its state directory."""
    settled(three, three.lids)
    five = zkstack.ADDRESSES[:5]
    others = zkstack.ADDRESSES[2:5]
    with zkstack.Writer(three.lids, three.client_port) as writer:
        assert three.stack.commit(three.spec(five)).startswith(f"Committed {three.gid}: Adding 2")
        settled(three, five)
        assert zkstack.voters("127.0.0.15", three.client_port) == {11, 12, 13, 14, 15}
        assert zkstack.reconfig_refused(five[0], three.client_port)  # no skipACL by default
        three.stack.restart_flavor()
        three.stack.commit(three.spec(others))
        settled(three, others)
        marker = writer.written
    assert zkstack.reconfig_refused(others[0], three.client_port)  # only the super user may
    for lid in others:
        assert zkstack.voters(lid, three.client_port) == {13, 14, 15}
        assert int(zkstack.read(lid, three.client_port, "/infrakit-test/n")) >= marker
    assert writer.longest < ONE_ELECTION, f"writes failed for {writer.longest:.1f}s in a row"
    logged = (three.stack.work / "flavor-zookeeper.log").read_text(errors="replace")
    assert "reconfig: remove server" in logged
    assert " INFO kazoo" not in logged  # kazoo's INFO lines only from --log 5


async def test_a_healthy_voter_may_not_go_while_another_is_down(three: zkstack.Ensemble,
                                                                tmp_path: pathlib.Path) -> None:
    leader = settled(three, three.lids)
    described = [instance.Description.from_wire(m) for m in
                 three.stack.describe(three.gid)["Instances"]]
    by_lid = {str(m.logical_id): m for m in described}
    stopped, asked = [lid for lid in three.lids if lid != leader]
    props = three.spec()["Properties"]["Flavor"]["Properties"]
    flavor = plugin.Plugin(tmp_path / "flavor-zookeeper")
    order = await flavor.order(props, described)
    assert order[-1] == by_lid[leader].id
    pid = zkstack.member_pid(three.stack, str(by_lid[stopped].id))
    os.kill(pid, signal.SIGSTOP)
    try:
        refused = await flavor.can_remove(props, by_lid[asked], described)
        allowed = await flavor.can_remove(props, by_lid[stopped], described)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert not refused.allowed
    assert refused.reason == f"replacing {asked} would leave 1 of 3 voting members (a quorum is 2)"
    assert allowed.allowed
