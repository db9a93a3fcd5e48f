"""The public fakes behave like plugins, and the fake clock moves only when told."""

import asyncio

import pytest

from infrakit import errors
from infrakit.spi import flavor, instance
from infrakit.testing import FakeClock, FakeFlavorPlugin, FakeInstancePlugin, resolver


async def test_sleepers_wake_in_deadline_order_as_time_advances() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def nap(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    tasks = [asyncio.create_task(nap("late", 5)), asyncio.create_task(nap("early", 2))]
    await clock.advance(1)
    assert woke == []
    await clock.advance(10)
    assert woke == [("early", 2.0), ("late", 5.0)] and clock.monotonic() == 11.0
    await asyncio.gather(*tasks)


async def test_a_cancelled_sleep_is_forgotten() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(3))
    await clock.settle()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert clock.sleepers == 0
    await clock.advance(5)


async def test_wall_time_follows_monotonic_time() -> None:
    clock = FakeClock(start=10.0, epoch=1000.0)
    await clock.advance(5)
    assert (clock.monotonic(), clock.time()) == (15.0, 1015.0)


async def test_advance_until_reports_the_time_taken_or_times_out() -> None:
    clock = FakeClock()
    assert await clock.advance_until(lambda: clock.monotonic() >= 3, step=1.0) == 3.0
    with pytest.raises(TimeoutError):
        await clock.advance_until(lambda: False, step=1.0, limit=5.0)


async def test_the_fake_instance_plugin_provisions_labels_lists_and_destroys() -> None:
    plugin = FakeInstancePlugin()
    first = await plugin.provision(instance.Spec(tags={"a": "1", "b": "2"}, logical_id="x"))
    second = await plugin.provision(instance.Spec(tags={"a": "1"}))
    assert (first, second) == ("instance-000001", "instance-000002")
    assert [d.id for d in await plugin.describe_instances({"a": "1", "b": "2"})] == [first]
    assert first is not None
    await plugin.label(first, {"b": "3"})
    assert plugin.instances[first].tags == {"a": "1", "b": "3"}
    assert plugin.instances[first].logical_id == "x"
    await plugin.destroy(first)
    with pytest.raises(errors.NotFoundError):
        await plugin.destroy(first)
    assert plugin.history == [("provision", first), ("provision", second), ("destroy", first)]
    assert plugin.calls == {"provision": 2, "describe_instances": 1, "label": 1, "destroy": 2}


async def test_the_fake_instance_plugin_fails_when_told() -> None:
    plugin = FakeInstancePlugin()
    plugin.fail_provisions = 1
    with pytest.raises(errors.TemporaryError):
        await plugin.provision(instance.Spec())
    assert await plugin.provision(instance.Spec()) == "instance-000001"
    plugin.invalid = "Note is required"
    with pytest.raises(errors.InvalidError, match="Note is required"):
        await plugin.validate({})


async def test_a_provision_can_take_fake_time() -> None:
    clock = FakeClock()
    plugin = FakeInstancePlugin(clock=clock, provision_delay=5)
    task = asyncio.create_task(plugin.provision(instance.Spec()))
    await clock.advance(4)
    assert not task.done()
    await clock.advance(1)
    assert await task == "instance-000001"


async def test_the_fake_flavor_prepares_like_vanilla() -> None:
    plugin = FakeFlavorPlugin()
    spec = await plugin.prepare({"Init": ["a", "b"], "Tags": {"tier": "web"}},
                                instance.Spec(tags={"g": "1"}), flavor.AllocationMethod(size=1),
                                flavor.Index(group="g", sequence=7))
    assert (spec.init, spec.tags) == ("a\nb", {"g": "1", "tier": "web"})
    assert plugin.prepared[0][1].sequence == 7


async def test_the_fake_flavor_judges_and_drains_as_told() -> None:
    plugin = FakeFlavorPlugin(default_health=flavor.Health.UNKNOWN)
    sick = instance.Description(id=instance.ID("i-1"))
    plugin.health["i-1"] = flavor.Health.UNHEALTHY
    assert await plugin.healthy({}, sick) == flavor.Health.UNHEALTHY
    assert await plugin.healthy({}, instance.Description(id=instance.ID("i-2"))) == \
        flavor.Health.UNKNOWN
    plugin.fail_drains = {"i-1"}
    with pytest.raises(errors.TemporaryError):
        await plugin.drain({}, sick)
    plugin.fail_drains = False
    await plugin.drain({}, sick)
    assert plugin.drained == ["i-1"] and plugin.most_draining == 1


def test_the_resolver_knows_only_its_plugins() -> None:
    plugin = FakeInstancePlugin()
    resolve = resolver({"instance-fake": plugin})
    assert resolve("instance-fake") is plugin
    with pytest.raises(errors.PluginNotFound, match="no plugin named 'other'"):
        resolve("other")
