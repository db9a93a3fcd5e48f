"""``rpc.stopping``: stopping plugins safely (never a pid that is not the plugin's), SIGKILL
for one that ignores SIGTERM, leftovers removed."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest
from launch_helpers import memory_rule, reaping

from infrakit import errors, processes
from infrakit.rpc import launch, starting, stopping


@pytest.fixture
def reaper(plugins_dir: pathlib.Path) -> Iterator[list[int]]:
    with reaping(plugins_dir) as pids:
        yield pids


def test_stop_of_a_plugin_that_is_not_there(plugins_dir: pathlib.Path) -> None:
    [missing] = stopping.stop(["ghost"], plugins_dir=plugins_dir)
    assert isinstance(missing.error, errors.NotFoundError)
    assert missing.message == f"ghost is not running (no socket {plugins_dir}/ghost)"


def test_a_stale_pid_file_is_reported_and_removed(plugins_dir: pathlib.Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    (plugins_dir / "old.pid").write_text(f"{gone.pid}\n")
    [stale] = stopping.stop(["old"], plugins_dir=plugins_dir)
    assert isinstance(stale.error, errors.NotFoundError)
    assert stale.message == (f"old is not running (stale pid file: pid {gone.pid} does not "
                             "exist; removed it)")
    assert not (plugins_dir / "old.pid").exists()


def test_a_pid_file_naming_another_process_is_never_signalled(
        plugins_dir: pathlib.Path, reaper: list[int]) -> None:
    [started] = starting.start(["mem"], {"mem": memory_rule("mem", plugins_dir)},
                               plugins_dir=plugins_dir)
    assert started.pid is not None
    reaper.append(started.pid)  # its pid file is about to lie about it
    bystander = subprocess.Popen(["sleep", "30"])
    reaper.append(bystander.pid)
    (plugins_dir / "mem.pid").write_text(f"{bystander.pid}\n")
    [refused] = stopping.stop(["mem"], plugins_dir=plugins_dir)
    assert isinstance(refused.error, errors.ConflictError)
    assert refused.message == (f"mem: pid {bystander.pid} (from {plugins_dir}/mem.pid) does not "
                               f"serve {plugins_dir}/mem; not signalling it")
    assert bystander.poll() is None
    assert processes.alive(started.pid)
    bystander.kill()
    bystander.wait()


def test_a_live_pid_without_socket_is_not_signalled(plugins_dir: pathlib.Path,
                                                    reaper: list[int]) -> None:
    bystander = subprocess.Popen(["sleep", "30"])
    reaper.append(bystander.pid)
    (plugins_dir / "mem.pid").write_text(f"{bystander.pid}\n")
    [refused] = stopping.stop(["mem"], plugins_dir=plugins_dir)
    assert isinstance(refused.error, errors.ConflictError)
    assert bystander.poll() is None
    bystander.kill()
    bystander.wait()


STUBBORN = """
import asyncio, signal, sys
from infrakit import testing
from infrakit.rpc import server

async def main():
    async with server.Server(sys.argv[1], instance=testing.FakeInstancePlugin(),
                             plugins_dir=sys.argv[2]):
        await asyncio.Event().wait()

signal.signal(signal.SIGTERM, signal.SIG_IGN)
asyncio.run(main())
"""


def test_a_plugin_that_ignores_sigterm_is_killed_and_its_files_removed(
        plugins_dir: pathlib.Path, tmp_path: pathlib.Path, reaper: list[int]) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    rule = launch.Rule.from_wire({"Plugin": "stubborn", "Launch": {"os": {
        "Cmd": f"{sys.executable} {script} stubborn {plugins_dir}"}}})
    [started] = starting.start(["stubborn"], {"stubborn": rule}, plugins_dir=plugins_dir)
    assert started.ok, started.message
    [killed] = stopping.stop(["stubborn"], plugins_dir=plugins_dir, timeout=0.3)
    assert killed.ok
    assert killed.message == (f"stubborn killed (pid {started.pid}): it did not exit within "
                              "300ms of SIGTERM")
    assert not (plugins_dir / "stubborn").exists()
    assert not (plugins_dir / "stubborn.pid").exists()
