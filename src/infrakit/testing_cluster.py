"""Managers, their backend group plugins and other plugins as local processes, for the
failover tests and ``bench/failover.py`` (a test harness: production code never imports it).

    with testing_cluster.Cluster(plugins_dir, logs_dir) as local:
        local.start("flavor-vanilla", testing_cluster.entry_point("flavor-vanilla"))
        local.backend("group-1", manager="mgr-1", poll="200ms", fence="250ms")
        local.manager("mgr-1", backend="group-1", fence="250ms",
                      election=["etcd", "--endpoint", url, "--lease-ttl", "2s"])
        local.kill9("mgr-1")

Each process runs in a session of its own with ``INFRAKIT_PLUGINS_DIR`` set and its output
in ``<logs dir>/<name>.log``; :meth:`Cluster.start` returns once its socket answers.
Leaving the ``with`` block stops every process still running by pid (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from types import TracebackType

from infrakit import errors, testing
from infrakit.rpc import sync

READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


def entry_point(name: str, *args: str) -> list[str]:
    """The argv that runs the ``infrakit.plugins`` entry point ``name`` as plugin ``name``."""
    return [sys.executable, "-m", "infrakit.cli.entry", name, "--name", name, *args]


class Cluster:
    """Processes started for one test or benchmark run, by name."""

    def __init__(self, plugins_dir: pathlib.Path, logs_dir: pathlib.Path, *,
                 env: Mapping[str, str] | None = None) -> None:
        """``env``: more environment for every process (``INFRAKIT_HOME`` of a test)."""
        self.plugins_dir = plugins_dir
        self.logs_dir = logs_dir
        self.env = dict(env or {})
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._argv: dict[str, list[str]] = {}

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_all()

    def start(self, name: str, argv: Sequence[str], *, wait: bool = True) -> int:
        """Start ``argv`` as plugin ``name``; returns its pid once its socket answers."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "INFRAKIT_PLUGINS_DIR": str(self.plugins_dir)}
        with open(self.logs_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.procs[name], self._argv[name] = proc, list(argv)
        if wait:
            self.wait_ready(name)
        return proc.pid

    def restart(self, name: str) -> int:
        """Start ``name`` again with the argv it was first started with."""
        return self.start(name, self._argv[name])

    def wait_ready(self, name: str, *, timeout: float = READY_TIMEOUT) -> None:
        proc = self.procs[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise errors.Unavailable(f"{name} exited with {proc.returncode}: "
                                         f"{self.log_tail(name)}")
            try:
                sync.Client(self.plugins_dir / name, timeout=1.0).implements()
                return
            except errors.InfrakitError:
                time.sleep(0.05)
        raise errors.CallTimeout(f"{name} did not answer within {timeout:g}s: "
                                 f"{self.log_tail(name)}")

    def log_tail(self, name: str, size: int = 2000) -> str:
        try:
            return (self.logs_dir / f"{name}.log").read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"

    def backend(self, name: str, *, manager: str, poll: str = "1s",
                fence: str = "500ms") -> int:
        """The default group plugin as ``name``, fenced by ``manager``."""
        return self.start(name, [sys.executable, "-m", "infrakit.group.serve", "--name", name,
                                 "--poll-interval", poll, "--manager", manager,
                                 "--fence-interval", fence, "--log", "4"])

    def manager(self, name: str, *, backend: str, election: Sequence[str],
                fence: str = "500ms", state_poll: str = "1s",
                extra: Sequence[str] = ()) -> int:
        """``infrakit-manager`` as ``name`` in front of ``backend``."""
        return self.start(name, [sys.executable, "-m", "infrakit.manager.serve", "--name", name,
                                 "--proxy-for-group", backend, "--fence-interval", fence,
                                 "--state-poll", state_poll, "--log", "4", *extra, *election])

    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def kill9(self, name: str) -> None:
        """``kill -9`` the process (its socket stays behind, as after a crash)."""
        proc = self.procs[name]
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop(self, name: str) -> None:
        """SIGTERM, then SIGKILL after a timeout; waits for the pid."""
        testing.stop_processes([self.procs[name]], timeout=STOP_TIMEOUT)

    def stop_all(self) -> None:
        """Stop every process still running (all at once, then wait for each)."""
        testing.stop_processes(self.procs.values(), timeout=STOP_TIMEOUT)
