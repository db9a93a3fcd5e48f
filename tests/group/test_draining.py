"""Drain before destroy; a drain that fails or times out is reported and retried."""

from infrakit.group import controller
from infrakit.testing import FakeClock, FakeFlavorPlugin, FakeInstancePlugin

from .conftest import GID, members, spec


async def test_a_failed_drain_is_reported_and_retried_not_skipped(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    await ctl.commit_group(spec(size=2), False)
    await clock.settle()
    flavors.fail_drains = True
    await ctl.set_size(GID, 1)
    await clock.advance(30)
    assert len(members(instances)) == 2 and instances.calls["destroy"] == 0
    failures = [a for a in (await ctl.status(GID)).actions if a.kind == "drain-failed"]
    assert failures[-1].message == ("drain of instance-000001 failed (fake drain failure of "
                                    "instance-000001); not destroyed, will retry")
    assert failures[-1].repeated >= 3 and flavors.calls["drain"] >= 3
    flavors.fail_drains = False
    await clock.advance(10)
    assert [m.id for m in members(instances)] == ["instance-000002"]
    assert flavors.drained == ["instance-000001"]


async def test_a_drain_that_times_out_counts_as_failed(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    health = {"DrainTimeout": "30s"}
    await ctl.commit_group(spec(size=2, Health=health), False)
    await clock.settle()
    flavors.drain_delay = 1000
    await ctl.set_size(GID, 1)
    await clock.advance(29)
    assert not [a for a in (await ctl.status(GID)).actions if a.kind == "drain-failed"]
    await clock.advance(2)
    (failure,) = [a for a in (await ctl.status(GID)).actions if a.kind == "drain-failed"]
    assert failure.instance == "instance-000001" and "no answer within 30" in failure.message
    assert len(members(instances)) == 2 and flavors.draining <= 1
