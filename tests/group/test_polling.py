"""When the group is reconciled: every poll, at once when its own work ends, and only every
``BUSY_POLLS`` polls while creations or removals are still in flight; and when a reconcile
may skip deciding (nothing changed since a converged one)."""

from __future__ import annotations

from typing import Any

import pytest

from infrakit.group import controller, decide, supervisor
from infrakit.testing import FakeClock, FakeInstancePlugin

from .conftest import members, spec


@pytest.mark.parametrize(("delay", "listings"), [
    # Provisions take 35 s: no listing at the polls of 10, 20 and 30 s; one when they end
    # (35 s), then every poll again (45 s, 55 s).
    (35.0, [(9.0, 1), (31.0, 1), (36.0, 2), (46.0, 3), (56.0, 4)]),
    # Provisions take 250 s: still listed every BUSY_POLLS polls (100 s, 200 s).
    (250.0, [(99.0, 1), (101.0, 2), (201.0, 3), (251.0, 4)]),
])
async def test_polls_are_skipped_while_work_is_in_flight_but_not_forever(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        delay: float, listings: list[tuple[float, int]]) -> None:
    assert supervisor.BUSY_POLLS * 10.0 == 100.0  # the poll interval of ``ctl`` is 10 s
    instances.provision_delay = delay
    await ctl.commit_group(spec(size=2), False)
    for at, count in listings:
        await clock.advance(at - clock.monotonic())
        assert instances.calls["describe_instances"] == count, at
    assert len(members(instances)) == 2


async def test_a_steady_group_is_listed_every_poll_but_decided_again_only_on_a_change(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        monkeypatch: pytest.MonkeyPatch) -> None:
    decisions = 0
    real_decide = decide.decide

    def counting(*args: Any, **kwargs: Any) -> decide.Decision:
        nonlocal decisions
        decisions += 1
        return real_decide(*args, **kwargs)

    monkeypatch.setattr(decide, "decide", counting)
    await ctl.commit_group(spec(size=2), False)
    await clock.advance(10)  # created, then converged
    settled, listings = decisions, instances.calls["describe_instances"]
    await clock.advance(30)
    assert instances.calls["describe_instances"] == listings + 3
    assert decisions == settled
    instances.vanish(members(instances)[0].id)
    await clock.advance(10)
    assert decisions > settled and len(members(instances)) == 2
