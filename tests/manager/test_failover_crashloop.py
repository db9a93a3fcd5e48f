"""A manager failover keeps a crash loop's backoff: real processes (two managers on the
leader file, their fenced backends, instance-process, flavor-vanilla), a member whose
command exits at once. The group is CrashLooping under the first leader; that leader is
killed with ``kill -9`` and the leader file names the second; under the second the group
is still CrashLooping with the same deaths and backoff, and the member is not re-created
before the backoff ends (no burst of re-creations after the failover)."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

from local_cluster import until
from pair_cluster import Pair

from infrakit.spi import group

GID = group.ID("crashy")
BACKOFF = "1h"
"""Far longer than the test: once backing off, the member must not be re-created."""
POLLS = 10
"""Reconciles of the new leader's backend that may not re-create the member."""


def spec(births: pathlib.Path) -> group.Spec:
    """One member that notes its birth, then exits after a moment (listed, then gone)."""
    return group.Spec.from_wire({"ID": GID, "Properties": {
        "Allocation": {"Size": 1},
        "Instance": {"Plugin": "instance-process", "Properties": {"StopTimeout": "1s"}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {
            "Init": [f"echo born >> {births}", "sleep 0.3", "exit 1"]}},
        "Health": {"Interval": "0s", "CrashLoop": {
            "Threshold": 2, "YoungAge": "5s", "BackoffBase": BACKOFF,
            "MaxBackoff": BACKOFF}}}})


def count(births: pathlib.Path) -> int:
    return len(births.read_text().splitlines()) if births.exists() else 0


def slot(status: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = status["Update"]["Crashes"]["Slots"]["*"]
    return found


async def test_a_failover_keeps_the_crash_loop_and_its_backoff(pair: Pair) -> None:
    births = pair.root / "births"
    pair.start("instance-process")
    await pair.plugins.group("mgr-1").commit_group(spec(births), False)

    async def looping(manager: str) -> dict[str, Any] | None:
        found = await pair.describe(manager, GID)
        return found if found["Phase"] == "CrashLooping" else None

    before = await until(lambda: looping("mgr-1"), timeout=60, what="CrashLooping on mgr-1")
    assert before["CrashLooping"] == ["*"]
    backing_off = slot(before)
    assert len(backing_off["Deaths"]) == 2 and backing_off["Backoff"] == 3600
    # The leader saved the crash-loop state (its state poll) before it dies.
    await until(lambda: (state := pair.saved_state(GID)) is not None
                and state.get("Crashes") == before["Update"]["Crashes"],
                timeout=15, what="the crash-loop state in the store")
    created = count(births)
    assert created == 2

    pair.processes.kill9("mgr-1")
    pair.lead("mgr-2")
    after = await until(lambda: looping("mgr-2"), timeout=60, what="CrashLooping on mgr-2")
    assert slot(after) == backing_off  # the same deaths, backoff and retry time
    assert after["Reason"].startswith("members died young 2 times within 600s (last: "
                                      "exited or vanished ")
    assert "; next attempt in " in after["Reason"]

    # Many reconciles of the new leader's backend (poll 100 ms): none re-creates the member.
    for _ in range(POLLS):
        await asyncio.sleep(0.1)
        assert (await pair.describe("mgr-2", GID))["Phase"] == "CrashLooping"
    assert count(births) == created
    assert [a for a in (await pair.describe("mgr-2", GID))["Actions"]
            if a["Kind"] == "created"] == []
