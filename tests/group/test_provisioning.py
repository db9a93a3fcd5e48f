"""The provisioning circuit breaker: exponential backoff, ProvisionFailing, reset."""

from collections.abc import AsyncIterator

import pytest

from infrakit.group import controller
from infrakit.spi import instance
from infrakit.testing import FakeClock, FakeFlavorPlugin, FakeInstancePlugin, resolver

from .conftest import GID, NoJitter, members, spec

POLICY = {"BackoffBase": "1s", "BackoffCap": "8s", "FailureThreshold": 4}


class Timed(FakeInstancePlugin):
    """Remembers when each provision was attempted."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.times: list[float] = []

    async def provision(self, spec: instance.Spec) -> instance.ID | None:
        assert self.clock is not None
        self.times.append(self.clock.monotonic())
        return await super().provision(spec)


@pytest.fixture
def timed(clock: FakeClock) -> Timed:
    return Timed(clock)


@pytest.fixture
async def fast(clock: FakeClock, timed: Timed,
               flavors: FakeFlavorPlugin) -> AsyncIterator[controller.Controller]:
    """A controller polling every second."""
    found = controller.Controller(resolver({"instance-fake": timed}),
                                  resolver({"flavor-fake": flavors}), poll_interval=1.0,
                                  clock=clock, rng=NoJitter())
    try:
        yield found
    finally:
        await found.close()


async def test_failed_provisions_back_off_exponentially_then_at_the_cap(
        fast: controller.Controller, clock: FakeClock, timed: Timed) -> None:
    timed.fail_provisions = -1
    await fast.commit_group(spec(size=3, Provision=POLICY), False)
    await clock.advance(32)
    assert timed.times == [0, 0, 0, 1, 3, 7, 15, 23, 31]
    status = await fast.status(GID)
    assert (status.phase, status.provision_failures) == ("ProvisionFailing", 7)
    assert status.reason == ("7 provision attempts failed in a row (fake provision failure); "
                             "retrying every 8s")
    assert status.actions[-1].message == ("provision failed (7 attempts in a row): fake "
                                          "provision failure; next attempt in 8s")


async def test_a_spec_change_resets_the_breaker(fast: controller.Controller,
                                                clock: FakeClock, timed: Timed) -> None:
    timed.fail_provisions = -1
    await fast.commit_group(spec(size=3, Provision=POLICY), False)
    await clock.advance(10)
    timed.fail_provisions = 0
    await fast.commit_group(spec(size=3, note="v2", Provision=POLICY), False)
    await clock.settle()
    assert len(members(timed)) == 3 and (await fast.status(GID)).phase == "Converged"


async def test_a_successful_probe_closes_the_breaker(fast: controller.Controller,
                                                     clock: FakeClock, timed: Timed) -> None:
    timed.fail_provisions = -1
    await fast.commit_group(spec(size=3, Provision=POLICY), False)
    await clock.advance(10)  # failing since t=7; next attempt at t=15
    timed.fail_provisions = 0
    await clock.advance(4)
    assert members(timed) == []
    await clock.advance(1)
    assert len(members(timed)) == 3 and timed.times[-3:] == [15, 15, 15]
