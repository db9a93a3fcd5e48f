"""Helpers for leadership tests: waiting for a condition, and contender processes.

Run as a script it is a manager stand-in that takes part in an election and says so::

    python elections.py flock LOCK_FILE NAME
    python elections.py etcd URL KEY NAME TTL

It prints ``leading`` when it gains leadership and ``lost: <reason>`` when it loses it,
and runs until killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve()


async def eventually(condition: Callable[[], bool], *, timeout: float,
                     step: float = 0.01) -> float:
    """Wait until ``condition()`` holds; returns the seconds it took. Fails the test after
    ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(step)
    return time.monotonic() - start


class Contender:
    """One contender process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def line(self, *, timeout: float) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        return raw.decode().strip()

    async def kill9(self) -> None:
        if self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()


class Contenders:
    """Every contender a test starts, so the fixture can kill them all by pid."""

    def __init__(self) -> None:
        self.started: list[Contender] = []

    async def start(self, *args: str) -> Contender:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        contender = Contender(proc)
        self.started.append(contender)
        return contender

    async def kill_all(self) -> None:
        for contender in self.started:
            await contender.kill9()


async def _main(argv: list[str]) -> None:
    from infrakit.manager import etcd, leader, leader_etcd, leader_file

    lead: leader.Leadership
    if argv[0] == "flock":
        lead = leader_file.FlockLeadership(argv[1], argv[2], poll=0.05)
    else:
        client = etcd.Client(argv[1])
        lead = leader_etcd.EtcdLeadership(client, argv[3], key=argv[2], ttl=int(argv[4]))
    await lead.start()
    async for change in lead.changes():
        if change.reason != "current state" or change.leading:
            print("leading" if change.leading else f"lost: {change.reason}", flush=True)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1:]))
