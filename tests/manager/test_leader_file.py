"""File leadership: InfraKit's leader file, and the flock mode (with a real kill -9)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from elections import Contenders, eventually

from infrakit import errors
from infrakit.manager import leader, leader_file

POLL = 0.02


async def started(*leads: leader_file.FileLeadership | leader_file.FlockLeadership) -> None:
    for lead in leads:
        await lead.start()


async def stopped(*leads: leader_file.FileLeadership | leader_file.FlockLeadership) -> None:
    for lead in leads:
        await lead.stop()


def leaders(leads: list[leader_file.FlockLeadership]) -> list[str]:
    return [lead.name for lead in leads if lead.is_leader()]


async def test_switching_the_leader_file_moves_leadership(tmp_path: Path) -> None:
    path = tmp_path / "leader"
    path.write_text("m1\n")
    m1, m2 = (leader_file.FileLeadership(path, n, poll=POLL) for n in ("m1", "m2"))
    seen: dict[str, list[bool]] = {"m1": [], "m2": []}
    for lead in (m1, m2):
        lead.on_change(lambda change, name=lead.name: seen[name].append(change.leading))
    await started(m1, m2)
    try:
        assert (m1.is_leader(), m2.is_leader()) == (True, False)
        path.write_text("m2")

        await eventually(m2.is_leader, timeout=2)

        assert not m1.is_leader()
        assert seen == {"m1": [True, False], "m2": [True]}
        assert (await m1.leader_info()).name == "m2"
        assert m1.token() is None and m2.token() is not None
    finally:
        await stopped(m1, m2)


@pytest.mark.parametrize("content", [None, "", "  \n", "somebody-else"])
async def test_nobody_named_means_this_manager_does_not_lead(
        tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "leader"
    if content is not None:
        path.write_text(content)
    lead = leader_file.FileLeadership(path, "m1", poll=POLL)
    await lead.start()
    try:
        await asyncio.sleep(3 * POLL)
        assert not lead.is_leader()
        assert (await lead.leader_info()).name == (content or "").strip()
    finally:
        await lead.stop()


async def test_changes_start_with_the_current_state_and_end_on_stop(tmp_path: Path) -> None:
    path = tmp_path / "leader"
    path.write_text("m1")
    lead = leader_file.FileLeadership(path, "m1", poll=POLL)
    await lead.start()
    got: list[bool] = []

    async def follow() -> None:
        async for change in lead.changes():
            got.append(change.leading)

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0)
    path.write_text("m2")
    await eventually(lambda: not lead.is_leader(), timeout=2)
    await lead.stop()
    await asyncio.wait_for(follower, 1)

    assert got == [True, False]


async def test_loss_is_visible_to_callbacks_before_anything_else(tmp_path: Path) -> None:
    path = tmp_path / "leader"
    path.write_text("m1")
    lead = leader_file.FileLeadership(path, "m1", poll=POLL)
    at_loss: list[tuple[bool, leader.Token | None]] = []
    lead.on_change(lambda change: at_loss.append((lead.is_leader(), lead.token()))
                   if not change.leading else None)
    await lead.start()

    await lead.stop()

    assert at_loss == [(False, None)]


async def test_only_one_of_three_lock_holders_leads_and_the_next_takes_over(
        tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    leads = [leader_file.FlockLeadership(lock, f"m{n}", poll=POLL) for n in range(3)]
    await started(*leads)
    try:
        await asyncio.sleep(5 * POLL)
        [first] = leaders(leads)
        assert (await leads[0].leader_info()).name == first
        assert lock.read_text().strip() == first

        holder = next(lead for lead in leads if lead.name == first)
        await holder.stop()
        rest = [lead for lead in leads if lead is not holder]
        await eventually(lambda: len(leaders(rest)) == 1, timeout=2)
        await asyncio.sleep(5 * POLL)

        [second] = leaders(rest)
        assert (await holder.leader_info()).name == second
    finally:
        await stopped(*leads)


async def test_lock_holder_killed_9_is_replaced(tmp_path: Path, contenders: Contenders) -> None:
    lock = tmp_path / "lock"
    child = await contenders.start("flock", str(lock), "child")
    assert await child.line(timeout=10) == "leading"
    leads = [leader_file.FlockLeadership(lock, f"m{n}", poll=POLL) for n in range(2)]
    await started(*leads)
    try:
        await asyncio.sleep(5 * POLL)
        assert leaders(leads) == []
        assert (await leads[0].leader_info()).name == "child"

        await child.kill9()

        await eventually(lambda: len(leaders(leads)) == 1, timeout=5)
        await asyncio.sleep(5 * POLL)
        assert len(leaders(leads)) == 1
    finally:
        await stopped(*leads)


async def test_nobody_leads_once_the_holder_stops(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    lead = leader_file.FlockLeadership(lock, "m1", poll=POLL)
    await lead.start()
    await lead.stop()
    assert (await lead.leader_info()).name == ""


async def test_holder_stops_leading_when_its_lock_file_is_removed(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    lead = leader_file.FlockLeadership(lock, "m1", poll=POLL)
    reasons: list[str] = []
    lead.on_change(lambda change: reasons.append(change.reason) if not change.leading else None)
    await lead.start()
    try:
        assert lead.is_leader()
        lock.unlink()  # a second manager could now lock a new file of that name
        await eventually(lambda: bool(reasons), timeout=2)
        assert "removed or replaced" in reasons[0]
    finally:
        await lead.stop()


@pytest.mark.parametrize("poll", [0, -1.0])
def test_poll_must_be_positive(tmp_path: Path, poll: float) -> None:
    with pytest.raises(errors.InvalidError, match="poll"):
        leader_file.FlockLeadership(tmp_path / "lock", "m1", poll=poll)
