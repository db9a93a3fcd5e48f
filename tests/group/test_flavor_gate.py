"""A flavor can say "not now": the group asks Flavor.CanRemove before every removal it
decides (scale-in, rolling update, unhealthy replacement, duplicate pets), waits on a
refusal and says why, replaces members in Flavor.Order (the leader last), replaces members
that are gone without asking, and never asks when the user destroys."""

from __future__ import annotations

import click.testing
import pytest

from infrakit import errors
from infrakit.cli import render
from infrakit.group import controller, gate, tags
from infrakit.spi import flavor, instance
from infrakit.testing import FakeClock, FakeGatekeeper, FakeInstancePlugin, resolver

from .conftest import GID, NoJitter, member, members, shas, spec

HEALTH = {"Interval": "5s", "StartupGrace": "30s", "UnhealthyAfter": "20s"}
QUORUM = "replacing {} would leave 1 of 3 voting members"


@pytest.fixture
def flavors(clock: FakeClock) -> FakeGatekeeper:
    return FakeGatekeeper(clock=clock)


def ids(instances: FakeInstancePlugin) -> list[str]:
    return [m.id for m in members(instances)]


def destroyed(instances: FakeInstancePlugin) -> list[str]:
    return [iid for what, iid in instances.history if what == "destroy"]


async def started(ctl: controller.Controller, clock: FakeClock, *, size: int = 3,
                  **sections: object) -> None:
    await ctl.commit_group(spec(size=size, **sections), False)
    await clock.settle()


# Scale-in ------------------------------------------------------------------------------


async def test_scale_in_waits_while_refused_and_goes_on_once_allowed(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeGatekeeper) -> None:
    await started(ctl, clock)
    flavors.refuse["instance-000001"] = QUORUM.format("instance-000001")
    await ctl.set_size(GID, 2)
    await clock.advance(30)
    assert ids(instances) == ["instance-000001", "instance-000002", "instance-000003"]
    assert flavors.drained == []
    status = await ctl.status(GID)
    assert status.waiting == {"instance-000001": QUORUM.format("instance-000001")}
    assert status.reason.endswith(f"; waiting: {QUORUM.format('instance-000001')}")
    assert not status.converged and not (await ctl.describe_group(GID)).converged
    asked = flavors.calls["can_remove"]
    assert asked >= 3  # asked again at every poll, not in a busy loop
    assert asked <= 5

    del flavors.refuse["instance-000001"]
    await clock.advance(10)
    assert ids(instances) == ["instance-000002", "instance-000003"]
    status = await ctl.status(GID)
    assert status.waiting is None and status.converged
    assert "waiting" not in status.reason


async def test_each_answer_counts_the_removals_allowed_before_it(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeGatekeeper) -> None:
    def keep_two(inst: instance.Description,
                 present: list[instance.Description]) -> flavor.Removal:
        if len(present) - 1 >= 2:
            return flavor.Removal(allowed=True)
        return flavor.Removal(allowed=False, reason=f"removing {inst.id} would leave 1 member")

    flavors.rule = keep_two
    await started(ctl, clock, size=4)
    await ctl.set_size(GID, 1)
    await clock.advance(1)
    assert flavors.asked[:3] == [
        ("instance-000001", ["instance-000001", "instance-000002", "instance-000003",
                             "instance-000004"]),
        ("instance-000002", ["instance-000002", "instance-000003", "instance-000004"]),
        ("instance-000003", ["instance-000003", "instance-000004"]),
    ]
    await clock.advance(30)
    assert ids(instances) == ["instance-000003", "instance-000004"]
    assert (await ctl.status(GID)).waiting == {
        "instance-000003": "removing instance-000003 would leave 1 member"}


# Rolling update ------------------------------------------------------------------------


async def test_a_rolling_update_replaces_in_the_flavors_order_the_leader_last(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeGatekeeper) -> None:
    await started(ctl, clock)
    flavors.replace_order = ["instance-000002"]  # the leader; the others are not named
    await ctl.commit_group(spec(size=3, note="v2"), False)
    await clock.advance_until(lambda: len(set(shas(instances))) == 1 and len(ids(instances)) == 3
                              and len(destroyed(instances)) == 3, step=5, limit=600)
    assert destroyed(instances) == ["instance-000001", "instance-000003", "instance-000002"]
    assert flavors.calls["order"] >= 3


async def test_a_rolling_update_waits_on_a_refused_member_and_finishes_when_allowed(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeGatekeeper) -> None:
    await started(ctl, clock)
    flavors.replace_order = ["instance-000003", "instance-000001", "instance-000002"]
    flavors.refuse["instance-000003"] = QUORUM.format("instance-000003")
    await ctl.commit_group(spec(size=3, note="v2"), False)
    await clock.advance(120)
    assert "instance-000003" in ids(instances) and destroyed(instances) == []
    status = await ctl.status(GID)
    assert status.phase == "Updating" and not status.converged
    assert status.reason.endswith(f"; waiting: {QUORUM.format('instance-000003')}")
    row = next(r for r in status.instances if r.id == "instance-000003")
    assert row.waiting == QUORUM.format("instance-000003")
    assert any(a.kind == "waiting" and a.instance == "instance-000003" for a in status.actions)

    del flavors.refuse["instance-000003"]
    await clock.advance_until(lambda: len(destroyed(instances)) == 3 and len(
        ids(instances)) == 3 and len(set(shas(instances))) == 1, step=5, limit=600)
    assert destroyed(instances) == ["instance-000003", "instance-000001", "instance-000002"]
    await clock.advance(10)
    assert (await ctl.status(GID)).converged


async def test_an_order_that_cannot_be_had_replaces_no_one(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeGatekeeper) -> None:
    await started(ctl, clock)
    flavors.fail = errors.Unavailable("flavor-fake: cannot reach plugin")
    await ctl.commit_group(spec(size=3, note="v2"), False)
    await clock.advance(60)
    assert destroyed(instances) == []
    reason = (await ctl.status(GID)).reason
    assert "waiting: could not ask flavor-fake for the replacement order" in reason
    assert "cannot reach plugin" in reason


# Unhealthy, duplicates, gone -----------------------------------------------------------


async def test_an_unhealthy_member_is_not_destroyed_while_refused(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeGatekeeper) -> None:
    await started(ctl, clock, Health=HEALTH)
    sick = ids(instances)[0]
    flavors.health[sick] = flavor.Health.UNHEALTHY
    flavors.refuse[sick] = QUORUM.format(sick)
    await clock.advance(120)
    assert sick in ids(instances) and sick not in flavors.drained
    assert (await ctl.status(GID)).waiting == {sick: QUORUM.format(sick)}

    del flavors.refuse[sick]
    await clock.advance(10)
    assert sick not in ids(instances) and len(ids(instances)) == 3


async def test_a_duplicate_pet_waits_for_its_flavor(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeGatekeeper) -> None:
    await ctl.commit_group(spec(ids=["a", "b"]), False)
    await clock.settle()
    sha = (await ctl.status(GID)).config_sha
    instances.add(tags={tags.GROUP: GID, tags.CONFIG_SHA: sha},
                         logical_id=instance.LogicalID("a"))
    flavors.rule = lambda inst, _: flavor.Removal(allowed=False, reason=f"{inst.id} is busy")
    await clock.advance(30)
    assert len(ids(instances)) == 3
    waiting = (await ctl.status(GID)).waiting or {}
    assert len(waiting) == 1 and list(waiting.values()) == [f"{next(iter(waiting))} is busy"]
    flavors.rule = None
    await clock.advance(10)
    assert len(ids(instances)) == 2 and sorted(
        str(m.logical_id) for m in members(instances)) == ["a", "b"]


async def test_members_that_are_gone_are_replaced_without_asking(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeGatekeeper) -> None:
    await started(ctl, clock)
    flavors.rule = lambda inst, _: flavor.Removal(allowed=False, reason="never")
    instances.vanish(*ids(instances)[:2])
    await clock.advance(10)
    assert len(ids(instances)) == 3
    assert flavors.calls["can_remove"] == 0


# Errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("failure", "said"), [
    (errors.Unavailable("flavor-fake: cannot reach plugin"), "cannot reach plugin"),
    (errors.RemoteError("boom"), "boom"),
    (RuntimeError("a bug"), "a bug"),
])
async def test_an_error_is_not_now_with_the_error_as_reason(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeGatekeeper, failure: Exception, said: str) -> None:
    await started(ctl, clock)
    flavors.fail = failure
    await ctl.set_size(GID, 2)
    await clock.advance(30)
    assert len(ids(instances)) == 3
    reason = (await ctl.status(GID)).waiting or {}
    assert list(reason) == ["instance-000001"]
    assert reason["instance-000001"].startswith(
        "could not ask flavor-fake whether instance-000001 may go (")
    assert said in reason["instance-000001"]


async def test_no_answer_in_time_is_not_now(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeGatekeeper) -> None:
    await started(ctl, clock)
    flavors.hang = True
    await ctl.set_size(GID, 2)
    await clock.advance(gate.TIMEOUT + 5)
    assert len(ids(instances)) == 3
    assert "no answer within 30s" in ((await ctl.status(GID)).waiting or {})["instance-000001"]


async def test_method_not_found_is_allowed(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeGatekeeper) -> None:
    await started(ctl, clock)
    flavors.fail = errors.MethodNotFound('rpc: can\'t find method "Flavor.CanRemove"')
    await ctl.set_size(GID, 2)
    await clock.advance(1)
    assert ids(instances) == ["instance-000002", "instance-000003"]


# What the user asks is not asked --------------------------------------------------------


async def test_destroy_group_does_not_ask(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeGatekeeper) -> None:
    await started(ctl, clock)
    flavors.rule = lambda inst, _: flavor.Removal(allowed=False, reason="never")
    await ctl.destroy_group(GID)
    assert ids(instances) == [] and flavors.calls["can_remove"] == 0


async def test_destroy_instances_does_not_ask(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeGatekeeper) -> None:
    await started(ctl, clock)
    flavors.rule = lambda inst, _: flavor.Removal(allowed=False, reason="never")
    await ctl.destroy_instances(GID, [instance.ID("instance-000002")])
    assert ids(instances) == ["instance-000001", "instance-000003"]
    assert flavors.calls["can_remove"] == 0


# Saying so ------------------------------------------------------------------------------


async def test_describe_shows_who_waits_and_why(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeGatekeeper) -> None:
    await started(ctl, clock)
    flavors.refuse["instance-000001"] = QUORUM.format("zk-2")
    await ctl.set_size(GID, 2)
    await clock.advance(10)
    data = (await ctl.describe_group(GID)).status
    assert data["Waiting"] == {"instance-000001": QUORUM.format("zk-2")}
    assert data["Reason"].endswith(f"waiting: {QUORUM.format('zk-2')}")
    row = next(r for r in data["Instances"] if r["ID"] == "instance-000001")
    assert row["Waiting"] == QUORUM.format("zk-2")
    assert "Waiting" not in next(r for r in data["Instances"] if r["ID"] == "instance-000002")

    @click.command()
    def show() -> None:
        render.status(data)

    out = click.testing.CliRunner().invoke(show).output
    assert f"waiting: {QUORUM.format('zk-2')}" in out
    assert f"WAITING instance-000001: {QUORUM.format('zk-2')}" in out


# The pure parts -------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "order", "expected"), [
    (["a", "b", "c"], [], ["a", "b", "c"]),
    (["a", "b", "c"], ["b"], ["a", "c", "b"]),
    (["a", "b", "c"], ["c", "a", "b"], ["c", "a", "b"]),
    (["a", "b", "c"], ["x", "b", "a", "b"], ["c", "b", "a"]),
])
def test_members_the_order_leaves_out_go_first(given: list[str], order: list[str],
                                                expected: list[str]) -> None:
    found = gate.ordered([member(iid) for iid in given], order)
    assert [m.id for m in found] == expected


def test_the_explanation_names_each_reason_once() -> None:
    waiting = {"b": "r2", "a": "r1", "c": "r1", "d": "r3", "e": "r4"}
    assert gate.explain(waiting) == "waiting: r1; r2; r3 and 1 more"
    assert gate.explain({"zk-2": QUORUM.format("zk-2")}) == \
        f"waiting: {QUORUM.format('zk-2')}"


async def test_a_flavor_plugin_that_is_gone_is_not_now(
        clock: FakeClock, instances: FakeInstancePlugin, flavors: FakeGatekeeper) -> None:
    gone = False

    def resolve(name: str) -> FakeGatekeeper:
        if gone:
            raise errors.PluginNotFound(f"plugin {name!r} not found")
        return flavors

    ctl = controller.Controller(resolver({"instance-fake": instances}), resolve,
                                poll_interval=10.0, clock=clock, rng=NoJitter())
    try:
        await started(ctl, clock)
        gone = True
        await ctl.set_size(GID, 2)
        await clock.advance(30)
        assert len(ids(instances)) == 3
        status = await ctl.status(GID)
        assert "plugin 'flavor-fake' not found" in (status.waiting or {})["instance-000001"]
        assert not any(a.kind == "error" for a in status.actions)
    finally:
        await ctl.close()


async def test_one_round_waits_out_one_timeout_not_one_per_member(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeGatekeeper) -> None:
    await started(ctl, clock, size=4)
    flavors.hang = True
    await ctl.set_size(GID, 1)
    await clock.advance(gate.TIMEOUT + 1)
    waiting = (await ctl.status(GID)).waiting or {}
    assert sorted(waiting) == ["instance-000001", "instance-000002", "instance-000003"]
    assert waiting["instance-000002"] == ("could not ask flavor-fake whether instance-000002 "
                                          "may go (no answer within 30s); not removed")
    # One ask for the round (a next round may have begun at the poll that ended it).
    assert flavors.calls["can_remove"] in (1, 2) and len(ids(instances)) == 4
