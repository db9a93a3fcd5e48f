"""The flavor's methods on their own: validation, Prepare's Init (run for real, with a
stand-in for java), Healthy's verdicts and CanRemove's bookkeeping (members faked where the
logic, not ZooKeeper, is under test), and the super user's digest as ZooKeeper computes it."""

from __future__ import annotations

import asyncio
import pathlib
import stat
import subprocess
import time
from typing import Any

import pytest
import zkstack

from infrakit import errors, testing
from infrakit.plugins.flavor.zookeeper import ensemble, plugin, reconfig, script, secret, words
from infrakit.spi import flavor, instance

LIDS = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
PETS = flavor.AllocationMethod(logical_ids=[instance.LogicalID(x) for x in LIDS])
INDEX = flavor.Index(group="zk", sequence=1)


@pytest.fixture
def zk(tmp_path: pathlib.Path) -> plugin.Plugin:
    """The flavor, keeping its key in the test's own directory."""
    return plugin.Plugin(tmp_path / "flavor-zookeeper")


def member(lid: str, iid: str | None = None) -> instance.Description:
    return instance.Description(id=instance.ID(iid or f"i-{lid}"),
                                logical_id=instance.LogicalID(lid))


@pytest.mark.parametrize(("props", "allocation", "field", "words_"), [
    ({}, PETS, "Properties.Type", "expected \"member\""),
    ({"Type": "manager"}, PETS, "Properties.Type", "unrecognized node type 'manager'"),
    ({"Type": "member", "UseDocker": True}, PETS, "Properties.UseDocker", "not supported"),
    ({"Type": "member", "ClientPrt": 1}, PETS, "Properties.ClientPrt", "did you mean ClientPort"),
    ({"Type": "member", "ClientPort": 0}, PETS, "Properties.ClientPort", "expected 1 or more"),
    ({"Type": "member"}, flavor.AllocationMethod(size=3), "Allocation.LogicalIDs",
     "a Size is not enough"),
    ({"Type": "member"}, flavor.AllocationMethod(logical_ids=["10.0.1.5", "10.0.2.5"]),
     "Allocation.LogicalIDs[1]", "10.0.2.5 and 10.0.1.5 would both be server 5"),
    ({"Type": "member"}, flavor.AllocationMethod(logical_ids=["zk-a"]),
     "Allocation.LogicalIDs[0]", "give anything else one in Properties.ServerIDs"),
    ({"Type": "member", "ServerIDs": {"zk-a": 300}}, PETS, "Properties.ServerIDs.zk-a",
     "from 1 to 255"),
    ({"Type": "member", "SuperPassword": ""}, PETS, "Properties.SuperPassword",
     "expected a non-empty password"),
    ({"Type": "member", "Startup": "soon"}, PETS, "Properties.Startup", "expected a duration"),
])
async def test_validate_names_the_field_and_what_was_expected(
        props: dict[str, Any], allocation: flavor.AllocationMethod, field: str,
        words_: str, zk: plugin.Plugin) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        await zk.validate(props, allocation)
    assert caught.value.message.startswith(field)
    assert words_ in caught.value.message


async def test_v0_5_properties_and_named_members_validate(zk: plugin.Plugin) -> None:
    await zk.validate({"Type": "member"}, PETS)
    await zk.validate(
        {"Type": "member", "ServerIDs": {"zk-a": 1, "zk-b": 2}},
        flavor.AllocationMethod(logical_ids=["zk-a", "zk-b"]))


@pytest.mark.parametrize(("spec", "field"), [
    (instance.Spec(), "LogicalID"),
    (instance.Spec(logical_id=instance.LogicalID("127.0.0.99")), "LogicalID"),
])
async def test_prepare_refuses_a_member_without_a_logical_id_of_the_list(
        spec: instance.Spec, field: str, zk: plugin.Plugin) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        await zk.prepare({"Type": "member"}, spec, PETS, INDEX)
    assert caught.value.data["field"] == field


async def prepare(zk: plugin.Plugin, props: dict[str, Any], *, lid: str = "127.0.0.12",
                  group: str = "zk") -> instance.Spec:
    spec = instance.Spec(logical_id=instance.LogicalID(lid), init="echo replaced",
                         tags={"infrakit.group": group})
    return await zk.prepare(props, spec, PETS, INDEX)


async def test_a_first_member_starts_with_the_whole_list_and_its_own_id(
        tmp_path: pathlib.Path, zk: plugin.Plugin) -> None:
    port = testing.free_port()  # nothing answers there: the ensemble is new
    fake_java = tmp_path / "java"
    fake_java.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > argv\n')
    fake_java.chmod(0o755)
    spec = await prepare(zk, {"Type": "member", "ClientPort": port, "Java": str(fake_java),
                              "DataDir": "zk", "SuperPassword": "secret"})
    assert spec.tags["infrakit.group"] == "zk"
    assert 0 <= time.time() - int(spec.tags["zookeeper.prepared"]) < 60  # starts Startup
    assert "echo replaced" not in spec.init  # v0.5 replaces the Init

    subprocess.run(["/bin/sh", "-c", spec.init], cwd=tmp_path, check=True, timeout=30)

    home = tmp_path / "zk" / "127.0.0.12"
    assert (home / "data" / "myid").read_text() == "12\n"
    assert f"dataDir={home}/data" in (home / "zoo.cfg").read_text().splitlines()
    assert (home / "zoo.cfg.dynamic").read_text().splitlines() == [
        f"server.{n}=127.0.0.{n}:2888:3888:participant;127.0.0.{n}:{port}" for n in (11, 12, 13)]
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[0] == "-Xmx128m"
    assert "-Dzookeeper.admin.enableServer=false" in argv
    assert f"-Dzookeeper.DigestAuthenticationProvider.superDigest={digest('secret')}" in argv
    assert argv[-2:] == [script.MAIN, f"{home}/zoo.cfg"]


async def test_without_a_super_password_members_check_acls_with_one_made_per_group(
        tmp_path: pathlib.Path) -> None:
    state = tmp_path / "flavor-zookeeper"
    props = {"Type": "member", "ClientPort": testing.free_port()}
    spec = await prepare(plugin.Plugin(state), props)
    assert "skipACL" not in spec.init
    key = state / secret.KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    password = secret.Keeper(state).password("zk")
    assert f"superDigest={script.super_digest(password)}" in spec.init
    assert password not in spec.init and key.read_text() not in spec.init  # only the digest
    # Another flavor process on the same directory (a restart) derives the same password;
    # another group gets another one.
    again = await prepare(plugin.Plugin(state), props)
    other = await prepare(plugin.Plugin(state), props, group="zk-other")
    assert f"superDigest={script.super_digest(password)}" in again.init
    assert f"superDigest={script.super_digest(password)}" not in other.init


async def test_a_member_not_up_within_its_startup_window_is_unknown_then_unhealthy(
        zk: plugin.Plugin) -> None:
    port = testing.free_port()
    props = {"Type": "member", "ClientPort": port, "Startup": "1m"}

    def prepared(ago: float) -> instance.Description:
        return instance.Description(
            id=instance.ID("i-11"), logical_id=instance.LogicalID("127.0.0.11"),
            tags={"zookeeper.prepared": str(int(time.time() - ago))})

    starting = await zk.judge(props, prepared(5))
    late = await zk.judge(props, prepared(120))
    assert starting.health == flavor.Health.UNKNOWN
    assert starting.reason.startswith("starting (")
    assert starting.reason.endswith(f"of 60s): 127.0.0.11:{port}: connection refused")
    assert late == flavor.Verdict(flavor.Health.UNHEALTHY,
                                  f"127.0.0.11:{port}: connection refused")


def digest(password: str) -> str:
    """The super user's digest as ZooKeeper's own DigestAuthenticationProvider makes it."""
    if zkstack.missing():
        testing.missing_engine(f"zookeeper tests: {zkstack.missing()}")
    done = subprocess.run(["java", "-cp", str(zkstack.JAR),
                           "org.apache.zookeeper.server.auth.DigestAuthenticationProvider",
                           f"super:{password}"], capture_output=True, text=True, timeout=60,
                          check=True)
    return done.stdout.strip().split("->", 1)[1]


async def test_a_member_that_is_down_is_unhealthy_and_says_why(zk: plugin.Plugin) -> None:
    port = testing.free_port()
    verdict = await zk.judge({"Type": "member", "ClientPort": port},
                                          member("127.0.0.11"))
    assert verdict == flavor.Verdict(flavor.Health.UNHEALTHY,
                                     f"127.0.0.11:{port}: connection refused")


# The logic around ZooKeeper, with members faked ------------------------------------------

SERVERS = {n: ensemble.Server(n, f"127.0.0.{n}", 2888, 3888, 2181) for n in (11, 12, 13)}
MEMBERSHIP = ensemble.Membership(SERVERS, version=1)


@pytest.fixture
def members(monkeypatch: pytest.MonkeyPatch) -> dict[str, words.Status]:
    """What each member answers (by address; all three serve); reconfigs are recorded."""
    said = {f"127.0.0.{n}": words.Status(f"127.0.0.{n}:2181", mode="follower", me=n,
                                         membership=MEMBERSHIP) for n in (11, 12, 13)}
    said["127.0.0.13"] = words.Status("127.0.0.13:2181", mode="leader", me=13,
                                      membership=MEMBERSHIP)

    async def status(host: str, port: int, **_: Any) -> words.Status:
        return said.get(host, words.Status(f"{host}:{port}", error="connection refused"))

    async def add(membership: ensemble.Membership, server: ensemble.Server, **_: Any) -> None:
        grown = membership.with_server(server)
        said[server.host] = words.Status(said[server.host].address, mode="follower",
                                         me=server.id, membership=grown)

    monkeypatch.setattr(words, "status", status)
    monkeypatch.setattr(reconfig, "add", add)
    return said


PROPS = {"Type": "member"}


async def test_a_follower_outside_the_ensemble_is_added_then_healthy(
        members: dict[str, words.Status], zk: plugin.Plugin) -> None:
    members["127.0.0.14"] = words.Status("127.0.0.14:2181", mode="follower", me=14,
                                         membership=MEMBERSHIP)
    verdict = await zk.judge(PROPS, member("127.0.0.14"))
    assert verdict == flavor.Verdict(flavor.Health.HEALTHY,
                                     "127.0.0.14:2181: joined the ensemble as server 14")


async def test_a_drained_member_is_never_added_back(members: dict[str, words.Status],
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    zk: plugin.Plugin) -> None:
    removed: list[int] = []

    async def remove(membership: ensemble.Membership, server: int, **_: Any) -> None:
        removed.append(server)
        members["127.0.0.12"] = words.Status("127.0.0.12:2181", mode="follower", me=12,
                                             membership=ensemble.Membership(
                                                 {n: SERVERS[n] for n in (11, 13)}, version=2))

    monkeypatch.setattr(reconfig, "remove", remove)
    flavor_ = zk
    await flavor_.drain(PROPS, member("127.0.0.12"))
    verdict = await flavor_.judge(PROPS, member("127.0.0.12"))
    assert removed == [12]
    assert verdict == flavor.Verdict(flavor.Health.UNHEALTHY,
                                     "127.0.0.12:2181: removed from the ensemble")


async def test_drain_of_a_healthy_voter_waits_until_the_others_are_a_quorum_without_it(
        members: dict[str, words.Status], monkeypatch: pytest.MonkeyPatch,
        zk: plugin.Plugin) -> None:
    """v0.5's group asks no CanRemove: Drain itself holds the next removal back."""
    removed: list[int] = []

    async def remove(membership: ensemble.Membership, server: int, **_: Any) -> None:
        removed.append(server)

    monkeypatch.setattr(reconfig, "remove", remove)
    down = members.pop("127.0.0.11")  # being replaced: 12 and 13 are the quorum
    draining = asyncio.create_task(zk.drain(PROPS, member("127.0.0.12")))
    await asyncio.sleep(2 * plugin.JOIN_POLL + 0.5)
    assert not draining.done() and removed == []
    members["127.0.0.11"] = down  # back: 11 and 13 are a quorum without 12
    await asyncio.wait_for(draining, timeout=30)
    assert removed == [12]


async def test_a_removal_allowed_counts_until_that_member_is_gone(
        members: dict[str, words.Status], zk: plugin.Plugin) -> None:
    group = [member(lid) for lid in LIDS]
    flavor_ = zk
    first = await flavor_.can_remove(PROPS, group[0], group)
    second = await flavor_.can_remove(PROPS, group[1], group)
    after = await flavor_.can_remove(PROPS, group[1], group[1:])  # the first one went
    assert first.allowed
    assert second == flavor.Removal(False, "replacing 127.0.0.12 would leave 1 of 3 voting "
                                           "members (a quorum is 2)")
    assert after.allowed


async def test_the_leader_is_ordered_last(members: dict[str, words.Status],
                                          zk: plugin.Plugin) -> None:
    group = [member(lid) for lid in reversed(LIDS)]
    assert await zk.order(PROPS, group) == ["i-127.0.0.12", "i-127.0.0.11",
                                                         "i-127.0.0.13"]
