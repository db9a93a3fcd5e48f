"""instance-file's fast paths stay correct: what it wrote is not read back, a destroy trusts
the cache only for the very file it knows, calls leave the event loop when they are slow, and
only someone else's change to the directory wakes the group."""

from __future__ import annotations

import os
import pathlib
import threading
import time

import pytest

from infrakit import errors
from infrakit.plugins.instance import dirwatch, file
from infrakit.rpc import dispatch
from infrakit.spi import instance

WEB = {"infrakit.group": "workers"}


@pytest.fixture
def watch() -> bool:
    """The plugin's default mode (inotify) only."""
    return True


def test_provisioned_and_labelled_files_are_not_read_back(
        plugin: file.Plugin, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real_parse = file._parse

    def counting(name: str, raw: bytes) -> file._Parsed:
        reads.append(name)
        return real_parse(name, raw)

    monkeypatch.setattr(plugin._index, "_parse", counting)
    iid = plugin.provision(instance.Spec(tags=WEB))
    plugin.label(iid, {"a": "b"})
    found = plugin.describe(WEB)
    assert [(m.id, m.tags) for m in found] == [(iid, {**WEB, "a": "b"})]
    assert iid not in reads
    (plugin.directory / iid).write_text((plugin.directory / iid).read_text() + "\n")
    assert plugin.describe(WEB)[0].tags == {**WEB, "a": "b"} and reads == [iid]  # edited: read


def test_destroy_refuses_a_foreign_file_that_replaced_a_known_instance(
        plugin: file.Plugin) -> None:
    iid = plugin.provision(instance.Spec(tags=WEB))
    plugin.describe(WEB)
    (plugin.directory / iid).unlink()
    (plugin.directory / iid).write_text("my notes")
    with pytest.raises(errors.NotFoundError, match="not JSON"):
        plugin.destroy(iid)
    assert (plugin.directory / iid).read_text() == "my notes"


async def test_fast_calls_run_on_the_loop_and_slow_ones_in_threads(
        plugin: file.Plugin) -> None:
    loop_thread = threading.get_ident()
    seen: list[bool] = []

    def work(cpu_seconds: float) -> None:
        seen.append(threading.get_ident() == loop_thread)
        started = time.thread_time()
        while time.thread_time() - started < cpu_seconds:
            pass

    await dispatch.invoke(plugin.provision, instance.Spec(tags=WEB))  # the server's way
    for _ in range(30):
        await plugin.run_sync(work, file.SLOW_CALL * 4)  # each costs 4x SLOW_CALL of CPU
    assert seen[0] is True and seen[-1] is False
    for _ in range(60):
        await plugin.run_sync(work, 0.0)
    assert seen[-1] is True  # cheap again: back on the loop


async def test_a_call_that_blocks_sends_calls_to_threads_for_a_while(
        plugin: file.Plugin) -> None:
    loop_thread = threading.get_ident()
    await plugin.run_sync(time.sleep, file.STALL * 2)
    where = await plugin.run_sync(threading.get_ident)
    assert where != loop_thread


def test_only_someone_elses_change_wakes_the_notifier(tmp_path: pathlib.Path) -> None:
    woken = threading.Event()
    subject = file.Plugin(tmp_path / "instances", on_change=woken.set)
    try:
        ids = [subject.provision(instance.Spec(tags=WEB)) for _ in range(5)]
        subject.label(ids[0], {"a": "b"})
        subject.destroy(ids[1])
        assert not woken.wait(4 * dirwatch.Notifier.BURST)
        os.unlink(subject.directory / ids[2])
        assert woken.wait(2.0)
    finally:
        subject.close()


def test_a_burst_of_deletions_wakes_once(tmp_path: pathlib.Path) -> None:
    calls: list[float] = []
    subject = file.Plugin(tmp_path / "instances", on_change=lambda: calls.append(1))
    try:
        ids = [subject.provision(instance.Spec(tags=WEB)) for _ in range(50)]
        for iid in ids:
            os.unlink(subject.directory / iid)
        time.sleep(10 * dirwatch.Notifier.BURST)
    finally:
        subject.close()
    assert 1 <= len(calls) <= 3
