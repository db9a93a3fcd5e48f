"""Helpers for the RPC tests: raw bytes on a socket, and plugin processes."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from infrakit.rpc import sockets

HERE = pathlib.Path(__file__).parent

HYGIENE = [pytest.mark.usefixtures("asyncio_hygiene")]
"""``pytestmark`` for async test modules: no task, socket or lost task exception outlives a
test (the ``asyncio_hygiene`` fixture in conftest)."""


async def raw(path: pathlib.Path, data: bytes, *, read: bool = True) -> bytes:
    """Send bytes as they are on the socket; return all that comes back."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(data)
        await writer.drain()
        if not read:
            return b""
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


def http_post(body: bytes, *, content_type: str = "application/json",
              extra: str = "") -> bytes:
    head = (f"POST / HTTP/1.1\r\nHost: plugin\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n")
    return head.encode() + body


def stop_process(popen: subprocess.Popen[str], signum: int = signal.SIGTERM) -> int:
    """Send ``signum`` to a process the test started (by pid), KILL it if it is still there
    after 10 s; its exit status."""
    if popen.poll() is None:
        os.kill(popen.pid, signum)
    try:
        return popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        popen.kill()
        return popen.wait()


class Process:
    """A plugin process started by a test; stopped by pid in teardown."""

    def __init__(self, name: str, directory: pathlib.Path) -> None:
        self.name = name
        self.path = directory / name
        self.popen = subprocess.Popen(
            [sys.executable, str(HERE / "memory_plugin.py"), name, str(directory)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"plugin exited: {self.popen.communicate()}")
            if self.path.exists() and sockets.is_live(self.path):
                return
            time.sleep(0.02)
        raise AssertionError("plugin did not start listening")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        return stop_process(self.popen, signum)


class Racer:
    """A ``racing_plugin.py`` process: started at once, released by :meth:`go`."""

    def __init__(self, name: str, directory: pathlib.Path) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, str(HERE / "racing_plugin.py"), name, str(directory)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def line(self) -> str:
        assert self.popen.stdout is not None
        return self.popen.stdout.readline().strip()

    def go(self) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write("go\n")
        self.popen.stdin.flush()

    def stop(self, signum: int = signal.SIGTERM) -> int:
        return stop_process(self.popen, signum)

    def close(self) -> None:
        """Kill if still running and close the pipes (teardown, also after a failure)."""
        self.stop(signal.SIGKILL)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream:
                stream.close()
