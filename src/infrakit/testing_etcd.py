"""A real etcd member for tests and benchmarks: free loopback ports, its own data dir,
stopped by pid.

Used by ``tests/manager/conftest.py`` and the failover benchmark::

    with testing_etcd.EtcdProcess(tmp_path / "etcd") as member:
        client = etcd.Client(member.url)
        member.restart()        # same data and ports: a member restart
        member.pause()          # SIGSTOP: requests time out (keep-alive failure)

The binary comes from ``scripts/etcd.sh`` in a source checkout (which installs Debian's
``etcd-server`` when missing), else from ``$ETCD_BIN`` or ``PATH``.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from infrakit import errors, testing

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "etcd.sh"


def etcd_binary() -> str:
    """The etcd server binary's path. In a source checkout ``scripts/etcd.sh`` finds it (and
    installs Debian's ``etcd-server`` when missing); elsewhere ``$ETCD_BIN`` or ``PATH``."""
    if _SCRIPT.exists():
        done = subprocess.run(["sh", str(_SCRIPT)], capture_output=True, text=True, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines and os.access(lines[-1], os.X_OK):
            return lines[-1]
        raise errors.NotFoundError(f"etcd: {_SCRIPT} failed: {done.stderr.strip()[-500:]}")
    for path in (os.environ.get("ETCD_BIN", ""), shutil.which("etcd") or "", "/usr/bin/etcd"):
        if path and os.access(path, os.X_OK):
            return path
    raise errors.NotFoundError("etcd: no etcd binary; install Debian's etcd-server package")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EtcdProcess:
    """One single-member etcd cluster on loopback; ``start``/``stop``/``restart`` by pid."""

    def __init__(self, data_dir: Path, *, binary: str | None = None) -> None:
        self.data_dir = data_dir
        self.binary = binary or etcd_binary()
        self.client_port = free_port()
        self.peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
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
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [
            self.binary, "--name", "default", "--data-dir", str(self.data_dir / "data"),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"default={peer}", "--initial-cluster-state", "new",
        ]

    def start(self, *, timeout: float = 15.0) -> None:
        """Start the member and return once it answers requests."""
        if self._proc is not None:
            raise errors.ConflictError(f"etcd already running as pid {self._proc.pid}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        if platform.machine() not in ("x86_64", "AMD64"):
            env["ETCD_UNSUPPORTED_ARCH"] = platform.machine()  # etcd 3.4 refuses otherwise
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
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
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)
