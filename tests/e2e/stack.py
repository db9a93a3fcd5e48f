"""The end-to-end harness: real plugin processes on a private plugins dir, and the real CLI.

:class:`Stack` starts ``infrakit-group-default``, an instance plugin and
``infrakit-flavor-vanilla`` as their own processes, runs ``infrakit ...`` commands as a user
would, and reads the group's state over RPC where a test waits for something (the CLI is
too slow to poll with). It stops every process it started by pid; the fixtures in
``conftest.py`` make sure it does, also when a test fails.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from infrakit import errors, testing
from infrakit.rpc import sockets, sync

BIN = pathlib.Path(sys.executable).parent
POLL = "100ms"
"""The group plugin's poll interval in these tests."""

T = TypeVar("T")


class Stack:
    """Plugin processes sharing one plugins dir (sockets) and one work dir (state)."""

    def __init__(self, sockets_dir: pathlib.Path, work: pathlib.Path) -> None:
        self.sockets = sockets_dir
        self.work = work
        self.env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(sockets_dir),
                    "INFRAKIT_HOME": str(work)}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.argv: dict[str, tuple[str, ...]] = {}

    # Processes -------------------------------------------------------------------------

    def start(self, name: str, *argv: str) -> None:
        """Start ``argv`` (a console script of the venv, then its flags) serving ``name``."""
        self.argv[name] = argv
        log = (self.work / f"{name}.log").open("ab")
        try:
            self.processes[name] = subprocess.Popen(
                [str(BIN / argv[0]), *argv[1:]], env=self.env, stdout=log, stderr=log,
                stdin=subprocess.DEVNULL)
        finally:
            log.close()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for name, process in self.processes.items():
            path = self.sockets / name
            while not (path.exists() and sockets.is_live(path)):
                if process.poll() is not None:
                    raise AssertionError(f"{name} exited: {self.log(name)}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} did not start: {self.log(name)}")
                time.sleep(0.02)

    def restart(self, name: str) -> None:
        """Stop the process serving ``name`` (by its pid) and start it again, as it was."""
        testing.stop_processes([self.processes[name]], timeout=10)
        self.start(name, *self.argv[name])
        self.wait_ready()

    def stop(self) -> None:
        """TERM every process we started, KILL the ones still there after 10 s."""
        testing.stop_processes(self.processes.values(), timeout=10)

    def log(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    # The user's view -----------------------------------------------------------------

    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """``infrakit ARGS``; with ``ok``, fail the test unless it exits 0."""
        done = subprocess.run([str(BIN / "infrakit"), *args], env=self.env, text=True,
                              capture_output=True, timeout=60, check=False)
        if ok and done.returncode != 0:
            raise AssertionError(f"infrakit {' '.join(args)} exited {done.returncode}: "
                                 f"{done.stderr}")
        return done

    def commit(self, spec: dict[str, Any], *extra: str) -> str:
        """``infrakit group commit`` of ``spec`` (written to a file); its one line of output."""
        path = self.work / f"{spec['ID']}-{time.monotonic_ns()}.json"
        # The CLI renders its input as a template: the flavor's own templates pass through raw.
        path.write_text("{% raw %}" + json.dumps(spec) + "{% endraw %}")
        return self.cli("group", "commit", *extra, str(path)).stdout.strip()

    def describe(self, gid: str) -> dict[str, Any]:
        """Group.DescribeGroup over RPC: ``{Instances, Converged, Status}``."""
        client = sync.Client(self.sockets / "group", timeout=10.0)
        answer: dict[str, Any] = client.call("Group.DescribeGroup", {"ID": gid})["Description"]
        return answer

    def members(self, gid: str) -> list[dict[str, Any]]:
        return list(self.describe(gid)["Instances"] or [])


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
    """Poll ``check`` until it returns something other than ``None``/``False``; return it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except errors.InfrakitError:
            found = None  # e.g. a plugin restarting: ask again
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


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
