"""Fixtures for the RPC tests: an in-process server, raw socket access, plugin processes."""

from __future__ import annotations

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
