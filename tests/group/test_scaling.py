"""Scale-down order per policy, and the protection tag."""

import pytest

from infrakit import errors
from infrakit.group import controller
from infrakit.spi import flavor
from infrakit.testing import FakeClock, FakeFlavorPlugin, FakeInstancePlugin

from .conftest import GID, members, shas, spec

PROTECT = {"infrakit.protect": "true"}


async def grown(ctl: controller.Controller, clock: FakeClock, **sections: object) -> None:
    """Members 1-3 at t=0, 4-5 at t=100."""
    await ctl.commit_group(spec(size=3, **sections), False)
    await clock.advance(100)
    await ctl.commit_group(spec(size=5, **sections), False)
    await clock.settle()


@pytest.mark.parametrize(("policy", "left"), [
    ("LowestID", ["instance-000004", "instance-000005"]),
    ("Oldest", ["instance-000004", "instance-000005"]),
    ("Newest", ["instance-000002", "instance-000003"]),  # ties: lowest ID goes first
    ("UnhealthyFirst", ["instance-000001", "instance-000003"]),
])
async def test_scale_down_removes_members_in_policy_order(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin, policy: str, left: list[str]) -> None:
    flavors.health.update({"instance-000002": flavor.Health.UNHEALTHY,
                           "instance-000004": flavor.Health.UNKNOWN,
                           "instance-000005": flavor.Health.UNHEALTHY})
    sections = {"Scale": {"Policy": policy}, "Health": {"Interval": "1s", "StartupGrace": "1h"}}
    await grown(ctl, clock, **sections)
    await clock.advance(10)
    assert await ctl.commit_group(spec(size=2, **sections), False) == \
        "Terminating 3 instances to reduce the group size to 2"
    await clock.settle()
    assert [m.id for m in members(instances)] == left


async def test_protected_members_are_exempt_from_scale_down(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin) -> None:
    await ctl.commit_group(spec(size=3), False)
    await clock.settle()
    instances.instances["instance-000001"] = instances.instances["instance-000001"].model_copy(
        update={"tags": {**instances.instances["instance-000001"].tags, **PROTECT}})
    await ctl.set_size(GID, 1)
    await clock.settle()
    assert [m.id for m in members(instances)] == ["instance-000001"]
    await ctl.set_size(GID, 0)
    await clock.advance(60)
    status = await ctl.status(GID)
    assert [m.id for m in members(instances)] == ["instance-000001"]
    assert status.phase == "Holding" and "protected" in status.reason


def protect(instances: FakeInstancePlugin, iid: str) -> None:
    found = instances.instances[iid]
    instances.instances[iid] = found.model_copy(update={"tags": {**found.tags, **PROTECT}})


async def test_protected_members_are_exempt_from_remediation_and_rolling(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    health = {"Interval": "1s", "StartupGrace": "0s", "UnhealthyAfter": "1s"}
    await ctl.commit_group(spec(size=3, Health=health), False)
    await clock.settle()
    protect(instances, "instance-000001")
    flavors.health["instance-000001"] = flavor.Health.UNHEALTHY
    await clock.advance(60)
    assert "instance-000001" in [m.id for m in members(instances)]
    await ctl.commit_group(spec(size=3, note="v2", Health=health), False)
    await clock.advance(60)
    status = await ctl.status(GID)
    assert "instance-000001" in [m.id for m in members(instances)]
    assert shas(instances).count(status.config_sha) == 2
    # Not Converged: a member is Unhealthy, and protection keeps it from being replaced.
    assert (status.phase, status.converged) == ("Unhealthy", False)
    assert status.reason.startswith("instance-000001 is Unhealthy (Flavor.Healthy of "
                                    "flavor-fake); protected (infrakit.protect=true), so "
                                    "never replaced")


async def test_only_destroy_instances_removes_a_protected_member(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin) -> None:
    await ctl.commit_group(spec(size=2), False)
    await clock.settle()
    protect(instances, "instance-000001")
    with pytest.raises(errors.ConflictError, match=r"protected members \(instance-000001\)"):
        await ctl.destroy_group(GID)
    assert len(members(instances)) == 2
    await ctl.destroy_instances(GID, ["instance-000001"])
    await ctl.destroy_group(GID)
    assert members(instances) == []
