"""Three managers on the file backend (InfraKit's leader file), one host, one plugins dir.

Real processes: three managers, their three fenced backends, a journaling instance-file
plugin and flavor-vanilla. The leader file is switched by hand; commits go through any
manager (standbys forward them); nothing committed is lost, no instance is created twice,
two backends never supervise the group at once, and the hand-over leaves it unsupervised
only briefly (the new leader's wait for the old one's backend to stop).
"""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import Callable, Sequence

import pytest
from journal_plugin import REFUSE_DESTROYS
from local_cluster import GID, NAMES, Local, Sampler, spec, until

from infrakit import errors
from infrakit.manager import methods, store, store_file
from infrakit.rpc import client

POLL = "200ms"
HOLD = 0.3
"""Seconds each leader keeps the group before the next switch: long enough to be sampled."""
LONGEST_HANDOVER_GAP = 1.5
"""Seconds: poll (0.2) + fence (0.25) + margin (0.1) + a reconcile, with room for a slow box."""




@pytest.fixture
def leader_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "leader"
    path.write_text("mgr-1\n")
    return path


def file_flags(leader_file: pathlib.Path, store_dir: pathlib.Path
               ) -> Callable[[str], Sequence[str]]:
    def flags(name: str) -> Sequence[str]:
        return ["os", "--leader-file", str(leader_file), "--poll", POLL,
                "--store-dir", str(store_dir)]
    return flags


async def size_reached(local: Local, size: int, *, only: str) -> bool:
    return len(local.instances()) == size and await local.supervising() == [only]


async def test_commits_through_any_manager_survive_switching_the_leader_file(
        local: Local, leader_file: pathlib.Path, tmp_path: pathlib.Path) -> None:
    store_dir = tmp_path / "store"
    local.start(file_flags(leader_file, store_dir))
    group = local.plugins.group
    assert await group("mgr-2").commit_group(spec("v1", size=3), False) == \
        "Managing 3 instances"
    await until(lambda: size_reached(local, 3, only="mgr-1"), timeout=15, what="3 on mgr-1")

    async with Sampler(local) as sampler:
        leader_file.write_text("mgr-3\n")
        # Straight away: mgr-1 may still lead (it saves it, then hands over) or forward it.
        assert await group("mgr-1").commit_group(spec("v1", size=5), False) in (
            "Adding 2 instances to increase the group size to 5", "Managing 5 instances")
        await until(lambda: size_reached(local, 5, only="mgr-3"), timeout=15,
                    what="5 on mgr-3")
        await asyncio.sleep(HOLD)

        leader_file.write_text("mgr-2\n")
        await group("mgr-3").commit_group(spec("v1", size=4), False)  # the old leader
        await until(lambda: size_reached(local, 4, only="mgr-2"), timeout=15,
                    what="4 on mgr-2")
        await asyncio.sleep(HOLD)

    seen = sampler.transitions()
    assert sampler.overlaps() == [], f"two backends supervised the group at once: {seen}"
    assert 0 < sampler.longest_gap() < LONGEST_HANDOVER_GAP, seen
    journal = local.journal()
    assert len(journal.ids("provision")) == 5, "3, then 2 more: no instance created twice"
    assert len(journal.ids("destroy")) == 1
    stored = json.loads((store_dir / "global.config").read_text())
    assert stored["Groups"][GID]["Properties"]["Properties"]["Allocation"] == {"Size": 4}
    history = await client.Client(local.processes.plugins_dir / "mgr-1").call(
        "Manager.History", {"ID": GID})
    sizes = [e["Spec"]["Properties"]["Properties"]["Allocation"]["Size"]
             for e in methods.HistoryResponse.from_wire(history).to_wire()["Entries"]]
    assert sizes[-3:] == [3, 5, 4]


async def test_a_paused_update_stays_paused_after_the_leader_changes(
        local: Local, leader_file: pathlib.Path, tmp_path: pathlib.Path) -> None:
    local.start(file_flags(leader_file, tmp_path / "store"))
    group = local.plugins.group
    await group("mgr-1").commit_group(spec("v1", size=4), False)
    await until(lambda: size_reached(local, 4, only="mgr-1"), timeout=15, what="4 on mgr-1")
    old = local.shas()[0]
    await group("mgr-1").commit_group(spec("v2", size=4, probe="sleep 0.3"), False)
    await group("mgr-2").pause(GID)  # forwarded to mgr-1, saved at once

    def new_members() -> int:
        return sum(sha != old for sha in local.shas())

    await until(lambda: len(local.instances()) == 4, timeout=10, what="4 members")
    paused_at = new_members()
    assert paused_at < 4

    leader_file.write_text("mgr-3\n")
    await until(lambda: size_reached(local, 4, only="mgr-3"), timeout=10,
                what="mgr-3 taking over")
    for _ in range(3):  # several reconciles of the new leader's backend: nothing replaced
        description = await group("mgr-3").describe_group(GID)
        assert description.status["Phase"] == "Paused"
        assert description.status["Update"]["Paused"] is True
        assert new_members() == paused_at
        await asyncio.sleep(0.4)

    await group("mgr-1").resume(GID)  # forwarded to mgr-3
    await until(lambda: new_members() == 4 and len(local.instances()) == 4, timeout=30,
                what="the update resumed and completed")


def destroy_records(store_dir: pathlib.Path) -> dict[str, object]:
    """The groups' states in the store that are a destroy's record."""
    path = store_dir / store_file.STATE
    states = json.loads(path.read_text()) if path.exists() else {}
    return {gid: state for gid, state in states.items() if store.DESTROYING in state}


def stored_groups(store_dir: pathlib.Path) -> list[str]:
    return list(json.loads((store_dir / store_file.CONFIG).read_text())["Groups"])


async def destroy_refused(local: Local, store_dir: pathlib.Path) -> None:
    """Commit 3 members through mgr-1, then destroy the group while the provider refuses:
    the group is out of the store, its members are there, and a record says so."""
    group = local.plugins.group
    await group("mgr-1").commit_group(spec("v1", size=3), False)
    await until(lambda: size_reached(local, 3, only="mgr-1"), timeout=15, what="3 on mgr-1")
    (local.root / REFUSE_DESTROYS).touch()
    with pytest.raises(errors.TemporaryError, match="could not destroy"):
        await group("mgr-2").destroy_group(GID)  # forwarded to mgr-1
    assert stored_groups(store_dir) == []
    assert list(destroy_records(store_dir)) == [GID]
    assert len(local.instances()) == 3


async def test_a_destroy_the_provider_refused_is_finished_by_the_leader(
        local: Local, leader_file: pathlib.Path, tmp_path: pathlib.Path) -> None:
    store_dir = tmp_path / "store"
    local.start(file_flags(leader_file, store_dir))
    await destroy_refused(local, store_dir)
    (local.root / REFUSE_DESTROYS).unlink()
    await until(lambda: not local.instances() and not destroy_records(store_dir), timeout=15,
                what="the leader destroying the members and clearing the record")
    assert len(local.journal().ids("provision")) == 3


async def test_a_destroy_cut_short_by_the_leaders_death_is_finished_by_the_next(
        local: Local, leader_file: pathlib.Path, tmp_path: pathlib.Path) -> None:
    store_dir = tmp_path / "store"
    local.start(file_flags(leader_file, store_dir))
    await destroy_refused(local, store_dir)
    local.processes.kill9("mgr-1")
    gone = sorted(local.instances())[0]
    (local.files / gone).unlink()  # one member is gone meanwhile: not to be replaced
    leader_file.write_text("mgr-2\n")
    assert await local.leader(among=NAMES[1:]) == "mgr-2"
    (local.root / REFUSE_DESTROYS).unlink()
    await until(lambda: not local.instances() and not destroy_records(store_dir), timeout=15,
                what="the next leader destroying the members and clearing the record")
    assert len(local.journal().ids("provision")) == 3, "the group handed over emptied"
    assert await local.supervising() == []
    assert stored_groups(store_dir) == []
