"""Helpers for the tests of starting and stopping plugin processes (``rpc.starting``,
``rpc.stopping``): a launch rule for the memory plugin, and killing what a test left running."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shlex
import signal
import sys
from collections.abc import Iterator

from infrakit.rpc import launch

HERE = pathlib.Path(__file__).parent
MEMORY = HERE / "memory_plugin.py"


def memory_rule(name: str, directory: pathlib.Path, *, same_pgid: bool = False) -> launch.Rule:
    """A launch rule that runs ``memory_plugin.py`` as plugin ``name`` in ``directory``."""
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(MEMORY))} {name} {directory}"
    return launch.Rule.from_wire({"Plugin": name,
                                  "Launch": {"os": {"Cmd": command, "SamePgID": same_pgid}}})


@contextlib.contextmanager
def reaping(plugins_dir: pathlib.Path) -> Iterator[list[int]]:
    """Pids to SIGKILL at the end (and every plugin whose pid file is left in the dir)."""
    pids: list[int] = []
    try:
        yield pids
    finally:
        for pid_file in plugins_dir.glob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                pids.append(int(pid_file.read_text()))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
