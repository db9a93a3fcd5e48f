"""Harnesses of the etcd flavor's tests: members run from the Init scripts Prepare writes
(:class:`Runner`, no group), and stacks of plugin processes driven through the CLI
(:class:`Stack`, ``infrakit.testing_stack``'s: the group plugin, instance-process,
flavor-etcd). Both stop what they started by pid; the fixtures in ``conftest.py`` make sure
they do, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
from typing import Any

from infrakit import testing_stack
from infrakit.spi import instance

ADDRESSES = [f"127.0.0.{n}" for n in range(21, 26)]
"""The loopback addresses the members bind: their logical IDs."""
FAST = ["--heartbeat-interval", "100", "--election-timeout", "1000"]
"""etcd's raft timing, spelled out (a quicker one elects spuriously on a busy machine)."""


def free_port_pair() -> tuple[int, int]:
    """A client and a peer port free on every address of :data:`ADDRESSES`."""
    client, peer = testing_stack.port_free_on(ADDRESSES, count=2)
    return client, peer


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

    def hang(self, lid: str) -> None:
        """``kill -STOP`` the member's session: its sockets still take connections but
        nothing answers, as with a host that went down (``kill`` ends it)."""
        os.killpg(self.running[lid].pid, signal.SIGSTOP)

    def log(self, lid: str) -> str:
        path = self.work / f"{lid}.log"
        return path.read_text(errors="replace")[-1500:] if path.exists() else ""

    def stop(self) -> None:
        for lid in list(self.running):
            self.kill(lid)


class Stack(testing_stack.Stack):
    """Plugin processes sharing one plugins dir; the user's view through the CLI."""

    def __init__(self, sockets_dir: pathlib.Path, work: pathlib.Path) -> None:
        super().__init__(sockets_dir, work, raw=False, rpc_timeout=20.0)

    def members(self, gid: str) -> dict[str, dict[str, Any]]:  # type: ignore[override]
        """The group's instances by logical ID."""
        return self.by_logical_id(gid)


kill_recorded = testing_stack.kill_recorded
pid_of = testing_stack.pid_of
