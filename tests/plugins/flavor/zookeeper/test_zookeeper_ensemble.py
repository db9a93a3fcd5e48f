"""The pure decisions: membership lines, ``conf`` answers, quorums, removals, joins, order."""

from __future__ import annotations

import pytest

from infrakit.plugins.flavor.zookeeper import ensemble

# ``conf`` as Debian's ZooKeeper 3.8 answers it (trimmed).
CONF = """clientPort=2181
dataDir=/srv/zk/127.0.0.11/data/version-2
serverId=11
initLimit=5
membership:\x20
server.11=127.0.0.11:2888:3888:participant;127.0.0.11:2181
server.12=127.0.0.12:2888:3888:participant;127.0.0.12:2181
server.13=127.0.0.13:2888:3888:observer;127.0.0.13:2181
version=100000002
"""


def three(*roles: str) -> ensemble.Membership:
    servers = {n: ensemble.Server(n, f"127.0.0.{n}", 2888, 3888, 2181, role)
               for n, role in zip((11, 12, 13), roles or ("participant",) * 3, strict=False)}
    return ensemble.Membership(servers, version=0x100000000)


def test_conf_gives_the_member_its_id_and_the_membership_with_its_version() -> None:
    me, membership = ensemble.parse_conf(CONF)
    assert me == 11
    assert membership is not None and membership.version == 0x100000002
    assert [s.id for s in membership.voters] == [11, 12]
    assert membership.servers[13].role == "observer"


@pytest.mark.parametrize("server", [
    ensemble.Server(12, "127.0.0.12", 2888, 3888, 2181),
    ensemble.Server(3, "fd00::3", 2888, 3888, 12181, "observer"),
])
def test_a_server_line_reads_back_as_the_same_server(server: ensemble.Server) -> None:
    key, _, value = server.line().partition("=")
    assert ensemble.parse_line(key, value) == server


def test_the_membership_file_lists_servers_by_id() -> None:
    assert three().text().splitlines() == [
        f"server.{n}=127.0.0.{n}:2888:3888:participant;127.0.0.{n}:2181" for n in (11, 12, 13)]


def test_the_newest_membership_wins() -> None:
    old, new = three(), ensemble.Membership(three().servers, version=0x200000000)
    assert ensemble.newest([old, None, new]) is new
    assert ensemble.newest([None]) is None


@pytest.mark.parametrize(("voters", "need"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)])
def test_a_quorum_is_a_majority(voters: int, need: int) -> None:
    assert ensemble.majority(voters) == need


@pytest.mark.parametrize(("server", "healthy", "leaving", "allowed"), [
    (12, {11, 12, 13}, set(), True),      # the others are a quorum
    (12, {11, 12}, set(), False),         # 11 alone is not
    (13, {11, 12}, set(), True),          # 13 is down: replacing it may heal
    (12, {11, 12, 13}, {11}, False),      # 11 is already going
    (14, {11, 12}, set(), True),          # not a voter
])
def test_a_healthy_voter_goes_only_while_the_others_keep_a_quorum(
        server: int, healthy: set[int], leaving: set[int], allowed: bool) -> None:
    decided = ensemble.removal("zk", server, membership=three(), healthy=healthy,
                               leaving=leaving)
    assert decided.allowed is allowed
    assert decided.reason == ("" if allowed else
                              "replacing zk would leave 1 of 3 voting members (a quorum is 2)")


def test_nothing_known_of_the_ensemble_blocks_no_removal() -> None:
    assert ensemble.removal("zk", 11, membership=None, healthy=[]).allowed


@pytest.mark.parametrize(("healthy", "ok"), [({11, 12, 13}, True), ({11, 12}, True),
                                             ({11}, False)])
def test_a_member_joins_only_when_the_bigger_ensemble_keeps_a_quorum(
        healthy: set[int], ok: bool) -> None:
    assert ensemble.can_join(three(), healthy=healthy) is ok


def test_members_that_do_not_serve_go_first_and_the_leader_last() -> None:
    modes = {"a": "leader", "b": "follower", "c": "", "d": "follower"}
    assert ensemble.order(["a", "b", "c", "d"], modes) == ["c", "b", "d", "a"]
