"""Running ``vagrant`` in a machine's directory: ``up``, ``destroy -f`` and ``status``.

The plugin (:mod:`.plugin`) makes every call through :class:`Vagrant`. Each command is an
asyncio subprocess (Vagrant is a Ruby program: a second or more per command, minutes for a
VM's ``up``), in a session of its own so that a timeout or a cancelled call stops it and
whatever it started; its output is logged line by line and the tail kept for errors.
``--max-parallel`` bounds how many run at once, separately for the commands that change
machines and for ``status`` reads, so that a Describe never waits behind slow ``up`` runs.
Vagrant locks each machine, not the host: ``up`` in different directories run in parallel.

The environment is the plugin's own (``DOCKER_HOST``, ``VAGRANT_HOME``,
``VAGRANT_DEFAULT_PROVIDER`` … pass through) with ``VAGRANT_CWD`` set to the machine's
directory and ``VAGRANT_CHECKPOINT_DISABLE=1`` unless set: no version checks over the network.

Errors: a failed command is ``TemporaryError`` carrying Vagrant's own last words (the group
retries with backoff); one that outlives its timeout is stopped and ``CallTimeout``; a
missing ``vagrant`` is ``PermanentError`` saying what to install.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import pathlib
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from infrakit import durations, errors, processes

log = logging.getLogger(__name__)

INSTALL = "install Vagrant (Debian and Ubuntu: apt-get install vagrant)"
TAIL = 12
"""Lines of a failed command's output kept for its error message."""
STOP_GRACE = 5.0
"""Seconds a stopped command gets between TERM and KILL."""
COMMA = "%!(VAGRANT_COMMA)"
"""How ``--machine-readable`` output escapes a comma inside a field."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds each command may take."""

    up: float = 900.0
    destroy: float = 300.0
    status: float = 60.0


@dataclass(frozen=True, slots=True)
class Status:
    """``vagrant status``'s answer for the machine of one directory."""

    state: str
    """Vagrant's state name: ``running``, ``not_created``, ``stopped``, ``poweroff`` …"""
    provider: str | None
    """The provider backing the machine."""


class Vagrant:
    """The ``vagrant`` program at ``binary``, at most ``parallel`` runs of each kind at once."""

    def __init__(self, binary: str = "vagrant", *, parallel: int = 4,
                 timeouts: Timeouts | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        if parallel < 1:
            raise errors.UsageError(f"--max-parallel: expected at least 1, got {parallel}")
        self.binary = binary
        self.timeouts = timeouts or Timeouts()
        self._environ = dict(os.environ if environ is None else environ)
        self._environ.setdefault("VAGRANT_CHECKPOINT_DISABLE", "1")
        self._changes = asyncio.Semaphore(parallel)
        self._reads = asyncio.Semaphore(parallel)

    async def up(self, machine: pathlib.Path, *, provider: str | None) -> None:
        """Create and boot the machine of ``machine``'s Vagrantfile."""
        args = ["up", *(["--provider", provider] if provider else [])]
        async with self._changes:
            await self._checked(machine, args, timeout=self.timeouts.up)

    async def destroy(self, machine: pathlib.Path) -> None:
        """Destroy the machine (done already is fine)."""
        async with self._changes:
            await self._checked(machine, ["destroy", "-f"], timeout=self.timeouts.destroy)

    async def status(self, machine: pathlib.Path) -> Status:
        """The machine's state as its provider reports it now."""
        async with self._reads:
            code, lines = await self.run(machine, ["status", "--machine-readable"],
                                         timeout=self.timeouts.status)
        found = parse_status(lines)
        if code != 0 or found is None:
            raise errors.TemporaryError(
                f"vagrant status in {machine.name} failed: {failure(lines, code=code)}",
                instance=machine.name)
        return found

    async def _checked(self, machine: pathlib.Path, args: Sequence[str], *,
                       timeout: float) -> None:
        code, lines = await self.run(machine, args, timeout=timeout)
        if code != 0:
            raise errors.TemporaryError(
                f"vagrant {' '.join(args)} in {machine.name} failed: "
                f"{failure(lines, code=code)}", delay=2.0, instance=machine.name)

    async def run(self, machine: pathlib.Path, args: Sequence[str], *,
                  timeout: float) -> tuple[int, list[str]]:
        """``vagrant ARGS`` in ``machine``: its exit code and the last lines it printed."""
        what = f"vagrant {' '.join(args)} in {machine.name}"
        environ = {**self._environ, "VAGRANT_CWD": str(machine)}
        try:
            child = await asyncio.create_subprocess_exec(
                self.binary, *args, cwd=machine, env=environ, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True, limit=1 << 20)
        except FileNotFoundError:
            if not machine.is_dir():  # removed meanwhile (a Destroy): not Vagrant's absence
                raise errors.NotFoundError(f"{what}: no directory {machine}",
                                           instance=machine.name) from None
            raise errors.PermanentError(f"{self.binary} not found: {INSTALL}") from None
        except PermissionError:
            raise errors.PermanentError(f"{self.binary} cannot be run (permission denied): "
                                        f"{INSTALL}") from None
        tail: collections.deque[str] = collections.deque(maxlen=TAIL)
        try:
            async with asyncio.timeout(timeout):
                await _follow(child, tail, name=machine.name)
                code = await child.wait()
        except TimeoutError:
            await _stop(child)
            raise errors.CallTimeout(
                f"{what}: no result within {durations.format_duration(timeout)}; stopped it",
                instance=machine.name) from None
        except BaseException:
            await asyncio.shield(_stop(child))  # cancelled: nothing is left running
            raise
        log.debug("%s: exit %d", what, code)
        return code, list(tail)


def parse_status(lines: Sequence[str]) -> Status | None:
    """``vagrant status --machine-readable``'s state and provider; None without a state."""
    state = provider = None
    for line in lines:
        fields = line.split(",")
        if len(fields) < 4:
            continue
        if fields[2] == "state":
            state = fields[3]
        elif fields[2] == "provider-name":
            provider = fields[3]
    return None if state is None else Status(state=state, provider=provider)


def failure(lines: Sequence[str], *, code: int) -> str:
    """What went wrong, in Vagrant's words: its machine-readable ``error-exit`` message, else
    the last lines it printed."""
    for line in reversed(lines):
        fields = line.split(",", 4)
        if len(fields) == 5 and fields[2] == "error-exit":
            return _one_line(fields[4].replace(COMMA, ",").replace("\\n", "\n"))
    text = _one_line("\n".join(lines))
    return text or f"exit status {code}"


def _one_line(text: str) -> str:
    return " / ".join(part.strip() for part in text.splitlines() if part.strip())


async def _follow(child: asyncio.subprocess.Process, tail: collections.deque[str], *,
                  name: str) -> None:
    assert child.stdout is not None
    async for raw in child.stdout:
        line = raw.decode(errors="replace").rstrip()
        if line:
            tail.append(line)
            log.debug("vagrant[%s] %s", name, line)


async def _stop(child: asyncio.subprocess.Process) -> None:
    """TERM the command's session, KILL it after :data:`STOP_GRACE`; reap it."""
    if child.returncode is not None:
        return
    processes.signal_session(child.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_GRACE):
            await child.wait()
            return
    except TimeoutError:
        pass
    processes.signal_session(child.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        await child.wait()
