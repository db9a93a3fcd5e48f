"""Harness of the zookeeper flavor's tests (and its benchmark): real ZooKeeper ensembles run
by the real group plugin, ``instance-process`` and ``flavor-zookeeper`` as processes.

:class:`Stack` starts the three plugins on a private plugins dir and drives them as a user
does (``infrakit group commit``), reading state over RPC where a test waits. Members bind
127.0.0.11 … 127.0.0.15 (Linux routes all of 127.0.0.0/8 to lo) on ports free when the test
started. :class:`Writer` is a client writing to the ensemble throughout, counting how long
writes failed. Everything started here is stopped by pid, also when a test fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from infrakit import testing, testing_stack

ADDRESSES = [f"127.0.0.{octet}" for octet in range(11, 16)]
"""The members' addresses (and logical IDs); their server IDs are 11 … 15."""
JAR = pathlib.Path("/usr/share/java/zookeeper.jar")


def missing() -> str | None:
    """Why real ensembles cannot run here, or None."""
    if not JAR.exists():
        return f"ZooKeeper is not installed ({JAR}; scripts/deps-apps.sh installs it)"
    if shutil.which("java") is None:
        return "no java on PATH (Debian's zookeeper package brings one)"
    try:
        import kazoo  # noqa: F401  (the zookeeper extra)
    except ImportError:
        return "kazoo is not installed (the zookeeper extra)"
    return None


class Stack(testing_stack.Stack):
    """The group plugin, instance-process and flavor-zookeeper, on one plugins dir."""

    def __init__(self, work: pathlib.Path, *, group_bin: pathlib.Path | None = None) -> None:
        super().__init__(pathlib.Path(tempfile.mkdtemp(prefix="ikz-")), work, raw=False,
                         rpc_timeout=30.0)
        self.state = work / "procs"
        self.group_bin = group_bin

    def start_all(self, *, poll: str = "200ms") -> None:
        self.start("instance-process", "infrakit-instance-process", "--dir", str(self.state),
                   "--notify", "group", "--log", "3")
        self.start("flavor-zookeeper", "infrakit-flavor-zookeeper", "--log", "4")
        self.start("group", str(self.group_bin or "infrakit-group-default"),
                   "--poll-interval", poll, "--log", "3")
        self.wait_ready()

    def close(self, *, show: Sequence[str] = ()) -> None:
        """Stop the plugins, then kill every member still running (by its recorded pid)."""
        super().close(show=show)
        kill_members(self.state)

    def restart_flavor(self) -> None:
        """Stop flavor-zookeeper and start a new one on the same state directory."""
        self.restart("flavor-zookeeper")

    def members(self, gid: str) -> dict[str, dict[str, Any]]:  # type: ignore[override]
        """The group's instances by logical ID."""
        return self.by_logical_id(gid)

    def free(self, gid: str) -> None:
        """Stop supervising ``gid`` (best effort) and kill its members."""
        with contextlib.suppress(Exception):
            self.call("Group.FreeGroup", {"ID": gid})
        kill_members(self.state)


@dataclasses.dataclass
class Ensemble:
    """A committed group of ZooKeeper members, and how to write its spec again."""

    stack: Stack
    gid: str
    lids: list[str]
    ports: list[int]
    cwd: pathlib.Path
    flavor: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Flavor properties beyond the ports."""

    @property
    def client_port(self) -> int:
        return self.ports[0]

    def spec(self, lids: list[str] | None = None, *,
             flavor: dict[str, Any] | None = None) -> dict[str, Any]:
        return ensemble(self.gid, lids or self.lids, ports=self.ports, cwd=self.cwd,
                        flavor={**self.flavor, **(flavor or {})})


def ensemble(gid: str, lids: list[str], *, ports: list[int], cwd: pathlib.Path,
             flavor: dict[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    """A group spec of ZooKeeper members ``lids`` on instance-process."""
    client, peer, election = ports
    return {"ID": gid, "Properties": {
        "Allocation": {"LogicalIDs": lids},
        "Instance": {"Plugin": "instance-process",
                     "Properties": {"Cwd": str(cwd), "StopTimeout": "10s"}},
        "Flavor": {"Plugin": "flavor-zookeeper", "Properties": {
            "Type": "member", "ClientPort": client, "PeerPort": peer, "ElectionPort": election,
            **(flavor or {})}},
        "Health": {"Interval": "500ms", "StartupGrace": "30s", "UnhealthyAfter": "10s"},
        "Update": {"HealthTimeout": "2m"},
        **sections}}


# Looking at members ------------------------------------------------------------------


def word(host: str, port: int, text: str, *, timeout: float = 2.0) -> str:
    """A four-letter word's answer; ``""`` when the member does not answer."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(text.encode())
            chunks = []
            while chunk := conn.recv(4096):
                chunks.append(chunk)
    except OSError:
        return ""
    return b"".join(chunks).decode(errors="replace")


def mode(host: str, port: int) -> str:
    """``leader``, ``follower``, or ``""`` when the member does not serve."""
    for line in word(host, port, "srvr").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return ""


def voters(host: str, port: int) -> set[int]:
    """The voting server IDs in the membership the member follows."""
    found = set()
    for line in word(host, port, "conf").splitlines():
        key, _, value = line.partition("=")
        if key.startswith("server.") and ":participant;" in value:
            found.add(int(key.removeprefix("server.")))
    return found


def quorum(lids: list[str], port: int) -> str | None:
    """The leader's address when ``lids`` are exactly the voters, one leading and the others
    following; None otherwise."""
    modes = {lid: mode(lid, port) for lid in lids}
    leaders = [lid for lid, m in modes.items() if m == "leader"]
    if len(leaders) != 1 or any(m not in ("leader", "follower") for m in modes.values()):
        return None
    wanted = {int(lid.rsplit(".", 1)[1]) for lid in lids}
    if any(voters(lid, port) != wanted for lid in lids):
        return None
    return leaders[0]


def converged(stack: Stack, gid: str, lids: list[str]) -> bool:
    described = stack.describe(gid)
    found = sorted(m["LogicalID"] for m in described["Instances"] or [])
    return bool(described["Converged"]) and found == sorted(lids)


kill_members = testing_stack.kill_recorded
start_time = testing_stack.start_time


def member_pid(stack: Stack, iid: str) -> int:
    """The pid instance-process recorded for instance ``iid``."""
    record = json.loads((stack.state / f"{iid}.json").read_text())
    return int(record["Pid"])


# A client writing throughout ----------------------------------------------------------


class Writer:
    """Writes ``/infrakit-test/n`` with increasing values from a thread; remembers the
    longest stretch during which writes failed and the last value written."""

    def __init__(self, lids: list[str], port: int) -> None:
        from kazoo.client import KazooClient

        hosts = ",".join(f"{lid}:{port}" for lid in lids)
        self.client = KazooClient(hosts=hosts, timeout=10.0, connection_retry={"max_tries": -1,
                                  "delay": 0.05, "max_delay": 0.2})
        self.written = 0
        self.failures = 0
        self.longest = 0.0
        self._since: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self.client.start(timeout=20)
        self.client.ensure_path("/infrakit-test/n")
        self._thread.start()
        testing.wait_for(lambda: self.written > 0, what="a first write", timeout=20)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self._since is not None:  # still failing at the end: that stretch counts too
            self.longest = max(self.longest, time.monotonic() - self._since)
        self.client.stop()
        self.client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.set("/infrakit-test/n", str(self.written + 1).encode())
            except Exception:  # every failure counts, whatever kazoo calls it
                self.failures += 1
                if self._since is None:
                    self._since = time.monotonic()
                time.sleep(0.02)
                continue
            self.written += 1
            if self._since is not None:
                self.longest = max(self.longest, time.monotonic() - self._since)
                self._since = None
            time.sleep(0.01)


def read(lid: str, port: int, path: str) -> bytes:
    """``path``'s data as member ``lid`` sees it (after a sync with the leader)."""
    from kazoo.client import KazooClient

    client = KazooClient(hosts=f"{lid}:{port}", timeout=10.0)
    client.start(timeout=20)
    try:
        client.sync(path)
        data: bytes = client.get(path)[0]
        return data
    finally:
        client.stop()
        client.close()


def reconfig_refused(lid: str, port: int) -> bool:
    """Whether the ensemble refuses an unauthenticated client's reconfig (removing ``lid``)."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoAuthError

    client = KazooClient(hosts=f"{lid}:{port}", timeout=10.0)
    client.start(timeout=20)
    try:
        client.reconfig(joining=None, leaving=lid.rsplit(".", 1)[1], new_members=None)
    except NoAuthError:
        return True
    finally:
        client.stop()
        client.close()
    return False


@contextlib.contextmanager
def running(work: pathlib.Path, **options: Any) -> Iterator[Stack]:
    """A started :class:`Stack`, stopped (members killed) at the end."""
    stack = Stack(work, **options)
    try:
        stack.start_all()
        yield stack
    finally:
        stack.close()
