"""A creation or removal that raises where it should not (a plugin answering nonsense) is
recorded as an error action and retried; asyncio never reports it as unretrieved."""

from __future__ import annotations

import gc
from typing import Any

from infrakit.group import controller
from infrakit.spi import instance
from infrakit.testing import FakeClock, FakeFlavorPlugin, FakeInstancePlugin, resolver

from .conftest import GID, NoJitter, members, spec


class Nonsense(FakeInstancePlugin):
    """Provisions, then answers an instance ID that is not a string (a broken plugin)."""

    async def provision(self, spec: instance.Spec) -> Any:
        await super().provision(spec)
        return {"not": "an id"}


async def test_a_job_that_raises_is_recorded_not_left_unretrieved(
        clock: FakeClock, flavors: FakeFlavorPlugin, unhandled: list[str]) -> None:
    nonsense = Nonsense(clock=clock)
    ctl = controller.Controller(resolver({"instance-fake": nonsense}),
                                resolver({"flavor-fake": flavors}), clock=clock,
                                rng=NoJitter())
    try:
        await ctl.commit_group(spec(size=2), False)
        await clock.advance(1)
        gc.collect()
        await clock.settle()
        status = await ctl.status(GID)
    finally:
        await ctl.close()
    gc.collect()
    assert len(members(nonsense)) == 2
    errors = [a.message for a in status.actions if a.kind == "error"]
    assert errors and "ValidationError" in errors[0], status.actions
    assert not any("never retrieved" in message for message in unhandled), unhandled
