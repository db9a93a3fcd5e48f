"""Fixtures for the RPC tests: an in-process server, raw socket access, plugin processes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import pathlib
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from infrakit.rpc import server

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import memory_plugin
from rpc_helpers import Process

ASYNCIO_COMPLAINTS = ("Task exception was never retrieved", "Task was destroyed but it is pending",
                      "Future exception was never retrieved")


@pytest.fixture
async def asyncio_hygiene(caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
    """Fail an async test that, once its fixtures are torn down, leaves tasks running or
    sockets open, or makes asyncio complain of a task exception nobody retrieved.

    Listed first (``rpc_helpers.HYGIENE``), so it is torn down last, after the servers and
    clients the test used."""
    gc.collect()  # what earlier tests dropped is not this test's leak
    before_tasks, before_sockets = asyncio.all_tasks(), _open_sockets()
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        yield
        await asyncio.sleep(0)  # let closed transports run their last callbacks
        gc.collect()  # lost task exceptions are reported when the task is collected
    leftover = {task for task in asyncio.all_tasks() - before_tasks
                if task is not asyncio.current_task() and not task.done()}
    assert not leftover, f"tasks left running: {leftover}"
    assert _open_sockets() <= before_sockets, "sockets left open"
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    complaints = [record.getMessage() for record in records if record.name == "asyncio"
                  and any(words in record.getMessage() for words in ASYNCIO_COMPLAINTS)]
    assert not complaints, complaints


def _open_sockets() -> set[str]:
    """This process's open sockets, as ``socket:[inode]`` (Linux)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:"):
                found.add(target)
    return found


@pytest.fixture
def memory() -> memory_plugin.Memory:
    return memory_plugin.Memory()


@pytest.fixture
async def served(plugins_dir: pathlib.Path,
                 memory: memory_plugin.Memory) -> AsyncIterator[server.Server]:
    """``memory`` served in-process as ``mem`` (default type) and ``mem/east``."""
    east = memory_plugin.Memory()
    async with server.Server("mem", instance={"": memory, "east": east},
                             plugins_dir=plugins_dir) as running:
        yield running


@pytest.fixture
def processes(plugins_dir: pathlib.Path) -> Iterator[Any]:
    started: list[Process] = []

    def start(name: str) -> Process:
        process = Process(name, plugins_dir)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop(signal.SIGKILL)
            for stream in (process.popen.stdout, process.popen.stderr):
                if stream:
                    stream.close()
