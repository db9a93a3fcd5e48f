"""The end-to-end harness: real plugin processes on a private plugins dir, and the real CLI.

:class:`Stack` (``infrakit.testing_stack``, re-exported here for the tests that import
``stack`` through ``sys.path``) starts ``infrakit-group-default``, an instance plugin and
``infrakit-flavor-vanilla`` as their own processes, runs ``infrakit ...`` commands as a user
would, and reads the group's state over RPC where a test waits for something (the CLI is
too slow to poll with). It stops every process it started by pid; the fixtures in
``conftest.py`` make sure it does, also when a test fails.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from infrakit import testing
from infrakit.testing_stack import BIN, Stack

__all__ = ["BIN", "POLL", "Stack", "cattle", "files_of", "free_ports", "settled", "wait_for"]

POLL = "100ms"
"""The group plugin's poll interval in these tests."""

T = TypeVar("T")


def cattle(gid: str, size: int = 3, *, note: str = "v1",
           flavor: dict[str, Any] | None = None, **policies: Any) -> dict[str, Any]:
    """A scaled group spec on instance-file and flavor-vanilla; ``policies`` are our
    optional sections (``Update=...``, ``Health=...``)."""
    return {"ID": gid, "Properties": {
        "Instance": {"Plugin": "instance-file", "Properties": {"Note": note}},
        "Flavor": {"Plugin": "flavor-vanilla",
                   "Properties": flavor or {"Init": ["echo hello"], "Tags": {"tier": "web"}}},
        "Allocation": {"Size": size}, **policies}}


def files_of(stack: Stack, gid: str) -> dict[str, dict[str, Any]]:
    """The instance files (instance-file's dir is ``stack.work / "files"``) of group ``gid``,
    by instance ID."""
    found = {}
    for path in (stack.work / "files").iterdir():
        if path.name.startswith("."):
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # deleted while we looked
        if record["Tags"].get("infrakit.group") == gid:
            found[path.name] = record
    return found


def settled(stack: Stack, gid: str, size: int, *, sha: str | None = None,
            timeout: float = 20.0) -> dict[str, dict[str, Any]]:
    """Wait until ``gid`` has ``size`` instance files (all on ``sha``) and says Converged."""
    def check() -> dict[str, dict[str, Any]] | None:
        found = files_of(stack, gid)
        if len(found) != size or (sha and any(
                r["Tags"]["infrakit.config_sha"] != sha for r in found.values())):
            return None
        described = stack.describe(gid)
        if not described["Converged"] or len(described["Instances"]) != size:
            return None
        return found
    return wait_for(check, what=f"{gid}: {size} converged members", timeout=timeout)


def wait_for(check: Callable[[], T | None], *, what: str, timeout: float = 20.0) -> T:
    """:func:`infrakit.testing.wait_for`, polling as often as these tests need."""
    return testing.wait_for(check, what=what, timeout=timeout, pause=0.02)


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive loopback ports that are free now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count < 65536 and all(_free(base + n) for n in range(count)):
            return base
    raise AssertionError(f"no {count} consecutive free ports found")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
