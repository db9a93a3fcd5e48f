"""Real etcd members for tests and benchmarks: free loopback ports, their own data dirs,
stopped by pid.

Used by ``tests/manager/conftest.py`` and the failover benchmark::

    with testing_etcd.EtcdProcess(tmp_path / "etcd") as member:
        client = etcd.Client(member.url)
        member.restart()        # same data and ports: a member restart
        member.pause()          # SIGSTOP: requests time out (keep-alive failure)

    with testing_etcd.EtcdCluster(tmp_path / "etcd", size=3) as cluster:
        client = etcd.Client(cluster.urls)
        cluster.pause(cluster.leader())   # the raft leader hangs; the others elect anew

This module only finds etcd (``$ETCD_BIN``, ``PATH``, ``/usr/bin/etcd``); it never
installs anything. ``make test`` installs Debian's ``etcd-server`` when it is missing.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from infrakit import errors, testing

FALLBACKS: tuple[str, ...] = ("/usr/bin/etcd",)
"""Where Debian's ``etcd-server`` puts the binary, tried after ``$ETCD_BIN`` and ``PATH``."""

READY_TIMEOUT = 15.0


def etcd_binary() -> str:
    """The etcd server binary's path: ``$ETCD_BIN``, else ``etcd`` on ``PATH``, else
    :data:`FALLBACKS`. Raises :class:`errors.NotFoundError` saying how to get one."""
    for path in (os.environ.get("ETCD_BIN", ""), shutil.which("etcd") or "", *FALLBACKS):
        if path and os.access(path, os.X_OK):
            return path
    raise errors.NotFoundError(
        "etcd: no etcd server binary ($ETCD_BIN, PATH, " + ", ".join(FALLBACKS) + "); "
        "install Debian's etcd-server package (`make test` does this), or set ETCD_BIN")


class EtcdProcess:
    """One etcd member on loopback; ``start``/``stop``/``restart`` by pid.

    Alone it is a single-member cluster. :class:`EtcdCluster` makes several and sets
    ``initial_cluster`` (and ``name``) so that they form one cluster.
    """

    def __init__(self, data_dir: Path, *, binary: str | None = None, name: str = "default",
                 client_port: int | None = None, peer_port: int | None = None,
                 flags: Sequence[str] = ()) -> None:
        self.data_dir = data_dir
        self.binary = binary or etcd_binary()
        self.name = name
        self.client_port = client_port or testing.free_port()
        self.peer_port = peer_port or testing.free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.peer_url = f"http://127.0.0.1:{self.peer_port}"
        self.initial_cluster = f"{name}={self.peer_url}"
        self.flags = list(flags)
        self.log_path = data_dir / "etcd.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def __enter__(self) -> EtcdProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def command(self) -> list[str]:
        return [
            self.binary, "--name", self.name, "--data-dir", str(self.data_dir / "data"),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster, "--initial-cluster-state", "new",
            "--pre-vote=true", *self.flags,
        ]

    def start(self, *, timeout: float = READY_TIMEOUT) -> None:
        """Start the member and return once it answers requests."""
        self.launch()
        try:
            self.wait_ready(timeout=timeout)
        except BaseException:
            self.stop()
            raise

    def launch(self) -> None:
        """Start the process and return at once (a cluster's members need each other before
        any is ready: launch them all, then :meth:`wait_ready`)."""
        if self._proc is not None:
            raise errors.ConflictError(f"etcd already running as pid {self._proc.pid}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        if platform.machine() not in ("x86_64", "AMD64"):
            env["ETCD_UNSUPPORTED_ARCH"] = platform.machine()  # etcd 3.4 refuses otherwise
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env)

    def wait_ready(self, *, timeout: float = READY_TIMEOUT) -> None:
        """Return once the member is healthy (it has a raft leader)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None:
                raise errors.Unavailable(f"etcd {self.name} is not running")
            if self._proc.poll() is not None:
                raise errors.Unavailable(f"etcd exited with {self._proc.returncode}: "
                                         f"{self._log_tail()}")
            if self._healthy():
                return
            time.sleep(0.05)
        raise errors.CallTimeout(f"etcd at {self.url} not ready in {timeout:g}s: "
                                 f"{self._log_tail()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as resp:
                return b"true" in resp.read()
        except (urllib.error.URLError, OSError):
            return False

    def status(self) -> tuple[int, int]:
        """``(member ID, raft leader's member ID)`` as this member sees them (0: none)."""
        request = urllib.request.Request(self.url + "/v3/maintenance/status", data=b"{}",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=2) as resp:
            reply = json.loads(resp.read())
        return int(reply.get("header", {}).get("member_id", 0)), int(reply.get("leader", 0))

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-1500:]
        except OSError:
            return "(no log)"

    def stop(self, *, timeout: float = 5.0) -> None:
        """TERM, then KILL after ``timeout``; waits for the pid. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            testing.stop_processes([proc], timeout=timeout)

    def kill(self) -> None:
        """``kill -9`` the member (its data stays; :meth:`start` brings it back)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        """Stop and start again with the same data dir and ports."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the member holds its sockets but answers nothing."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)


class EtcdCluster:
    """``size`` etcd members on loopback forming one cluster; every member has its own
    ports and data dir under ``root`` and is started and stopped by pid.

    ``flags`` go to every member (e.g. a shorter ``--election-timeout``).
    """

    def __init__(self, root: Path, *, size: int = 3, binary: str | None = None,
                 flags: Sequence[str] = ()) -> None:
        if size < 1:
            raise errors.InvalidError(f"size: expected 1 or more members, got {size}",
                                      field="size")
        binary = binary or etcd_binary()
        ports = testing.free_ports(2 * size)
        self.members = [
            EtcdProcess(root / f"m{i}", binary=binary, name=f"m{i}", client_port=ports[2 * i],
                        peer_port=ports[2 * i + 1], flags=flags)
            for i in range(size)]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for member in self.members:
            member.initial_cluster = initial

    @property
    def urls(self) -> list[str]:
        """Every member's client URL, in member order."""
        return [m.url for m in self.members]

    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self, *, timeout: float = READY_TIMEOUT) -> None:
        """Start every member; return once each is healthy. Stops them all on failure."""
        try:
            for member in self.members:
                member.launch()
            for member in self.members:
                member.wait_ready(timeout=timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every member by pid (paused ones too), the raft leader last: a leader
        that stops while its followers stop too waits seconds for a leadership transfer.
        Safe to call twice."""
        running = [i for i, m in enumerate(self.members) if m.pid is not None]
        for index in running:
            self.members[index].resume()
        try:
            last = self.leader() if running else -1
        except errors.Unavailable:
            last = -1
        for index in sorted(running, key=lambda i: i == last):
            self.members[index].stop()

    def leader(self) -> int:
        """The index of the raft leader, as the first member that answers sees it."""
        ids: dict[int, int] = {}
        seen = 0
        failures: list[str] = []
        for index, member in enumerate(self.members):
            try:
                own, leader = member.status()
            except (urllib.error.URLError, OSError, ValueError) as e:
                failures.append(f"{member.url}: {e}")
                continue
            ids[own] = index
            seen = seen or leader
        if seen in ids:
            return ids[seen]
        raise errors.Unavailable("etcd cluster: no member reports a reachable leader: "
                                 + "; ".join(failures))

    def pause(self, index: int) -> None:
        """SIGSTOP member ``index``: it keeps its sockets and answers nothing."""
        self.members[index].pause()

    def resume(self, index: int) -> None:
        """SIGCONT member ``index``."""
        self.members[index].resume()
