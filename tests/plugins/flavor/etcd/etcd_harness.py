"""Harnesses of the etcd flavor's tests: members run from the Init scripts Prepare writes
(:class:`Runner`, no group), and stacks of plugin processes driven through the CLI
(:class:`Stack`: the group plugin, instance-process, flavor-etcd). Both stop what they
started by pid; the fixtures in ``conftest.py`` make sure they do, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from infrakit import processes, testing
from infrakit.rpc import sockets, sync
from infrakit.spi import instance

BIN = pathlib.Path(sys.executable).parent
ADDRESSES = [f"127.0.0.{n}" for n in range(21, 26)]
"""The loopback addresses the members bind: their logical IDs."""
FAST = ["--heartbeat-interval", "100", "--election-timeout", "1000"]
"""etcd's raft timing, spelled out (a quicker one elects spuriously on a busy machine)."""


def free_port_pair() -> tuple[int, int]:
    """A client and a peer port free on every address of :data:`ADDRESSES`."""
    for _ in range(100):
        pair = tuple(testing.free_ports(2))
        if all(_free(address, port) for address in ADDRESSES for port in pair):
            return pair[0], pair[1]
    raise AssertionError("no port pair free on every test address")


def _free(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def cluster_members(client_url: str) -> list[dict[str, Any]]:
    """MemberList as the member at ``client_url`` answers it (``[]`` when it does not)."""
    return list(_post(client_url, "/v3/cluster/member/list").get("members") or [])


def status(client_url: str) -> dict[str, Any]:
    return _post(client_url, "/v3/maintenance/status")


def put(client_url: str, key: str, value: str) -> None:
    import base64
    _post(client_url, "/v3/kv/put", {"key": base64.b64encode(key.encode()).decode(),
                                     "value": base64.b64encode(value.encode()).decode()})


def get(client_url: str, key: str) -> str | None:
    import base64
    kvs = _post(client_url, "/v3/kv/range",
                {"key": base64.b64encode(key.encode()).decode()}).get("kvs") or []
    return base64.b64decode(kvs[0]["value"]).decode() if kvs else None


def _post(url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    import urllib.error
    import urllib.request
    request = urllib.request.Request(url + path, data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=3) as answer:
            found: dict[str, Any] = json.loads(answer.read())
            return found
    except (urllib.error.URLError, OSError, ValueError):
        return {}


class Runner:
    """Runs prepared specs' Init scripts as instance-process would (``/bin/sh -c``, own
    session, in ``work``); members are killed by their session at the end."""

    def __init__(self, work: pathlib.Path) -> None:
        self.work = work
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, spec: instance.Spec) -> instance.Description:
        lid = str(spec.logical_id)
        with (self.work / f"{lid}.log").open("ab") as log:
            self.running[lid] = subprocess.Popen(
                ["/bin/sh", "-c", spec.init], cwd=self.work, stdout=log, stderr=log,
                stdin=subprocess.DEVNULL, start_new_session=True)
        return instance.Description(id=instance.ID(f"i-{lid}"), logical_id=lid, tags=spec.tags)

    def kill(self, lid: str) -> None:
        """``kill -9`` the member's session."""
        process = self.running.pop(lid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def log(self, lid: str) -> str:
        path = self.work / f"{lid}.log"
        return path.read_text(errors="replace")[-1500:] if path.exists() else ""

    def stop(self) -> None:
        for lid in list(self.running):
            self.kill(lid)


class Stack:
    """Plugin processes sharing one plugins dir; the user's view through the CLI."""

    def __init__(self, sockets_dir: pathlib.Path, work: pathlib.Path) -> None:
        self.sockets = sockets_dir
        self.work = work
        self.env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(sockets_dir),
                    "INFRAKIT_HOME": str(work)}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *argv: str) -> None:
        with (self.work / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [str(BIN / argv[0]), *argv[1:]], env=self.env, stdout=log, stderr=log,
                stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for name, process in self.processes.items():
            path = self.sockets / name
            while not (path.exists() and sockets.is_live(path)):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{name} did not start: {self.log(name)}")
                time.sleep(0.05)

    def log(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        testing.stop_processes(self.processes.values(), timeout=10)

    def commit(self, spec: dict[str, Any]) -> str:
        """``infrakit group commit`` of ``spec``; its one line of output."""
        path = self.work / f"{spec['ID']}-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(spec))
        done = subprocess.run([str(BIN / "infrakit"), "group", "commit", str(path)],
                              env=self.env, text=True, capture_output=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def describe(self, gid: str) -> dict[str, Any]:
        client = sync.Client(self.sockets / "group", timeout=20.0)
        found: dict[str, Any] = client.call("Group.DescribeGroup", {"ID": gid})["Description"]
        return found

    def members(self, gid: str) -> dict[str, dict[str, Any]]:
        """The group's instances by logical ID."""
        return {m["LogicalID"]: m for m in self.describe(gid)["Instances"] or []}


def kill_recorded(state: pathlib.Path) -> None:
    """Kill the session of every instance-process instance recorded in ``state`` that is
    still the process it recorded (same start time: never a recycled pid)."""
    for record_path in state.glob("*.json") if state.exists() else []:
        try:
            record = json.loads(record_path.read_text())
            pid, started = int(record["Pid"]), int(record["StartTime"])
        except (OSError, ValueError, KeyError):
            continue
        seen = processes.stat(pid)
        if seen is not None and seen.start_time == started:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


def pid_of(state: pathlib.Path, iid: str) -> int:
    """The pid instance-process recorded for instance ``iid``."""
    return int(json.loads((state / f"{iid}.json").read_text())["Pid"])
