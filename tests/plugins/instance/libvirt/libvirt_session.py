"""A private session libvirtd for the tests and bench/vms.py, and plugin processes beside it.

Session libvirt belongs to an unprivileged user: as root, ``qemu:///session`` means the system
daemon, and a session daemon run as root is refused or odd. So when the tests run as root,
the daemon, its QEMU guests and ``infrakit-instance-libvirt`` run as ``nobody`` under
``setpriv``; otherwise as the user running the tests. Everything lives in one temp dir owned
by that user: ``XDG_RUNTIME_DIR``, ``XDG_CONFIG_HOME``, ``XDG_DATA_HOME``, ``XDG_CACHE_HOME``
and ``HOME`` point inside it, so the daemon shares nothing with any other libvirt.

The daemon is told (its ``qemu.conf``) to let QEMU write its own logs rather than start
``virtlogd``, so the daemon's pid is the only process to stop besides the guests. The test
process talks to it by socket (``qemu+unix:///session?socket=…``); the plugin process, as the
user, by the plain ``qemu:///session`` and the XDG variables.

:meth:`Session.close` destroys and undefines every domain, stops the daemon by pid (TERM,
then KILL), kills any QEMU left by the pid files the daemon wrote, and removes the dir.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from infrakit import testing

BIN = pathlib.Path(sys.executable).parent
NOBODY = 65534
TOOLS = ("libvirtd", "qemu-system-x86_64", "qemu-img", "genisoimage", "setpriv")

QEMU_CONF = 'stdio_handler = "file"\n'
"""QEMU writes its log and console files itself: no virtlogd to start and stop."""


def missing() -> list[str]:
    """What a session cannot start without (empty when all is there)."""
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    try:
        import libvirt  # noqa: F401  (only whether it imports)
    except ImportError:
        absent.append("the libvirt Python bindings (pip install -e '.[libvirt]')")
    return absent


class Session:
    """A session libvirtd of its own user, in a temp dir; see the module docstring."""

    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        self.uid, self.gid = (NOBODY, NOBODY) if self.as_root else (os.getuid(), os.getgid())
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="ik-lv-"))
        self.run_dir = self.root / "run"
        self.env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(self.run_dir), "XDG_CONFIG_HOME": str(self.root / "config"),
            "XDG_DATA_HOME": str(self.root / "data"), "XDG_CACHE_HOME": str(self.root / "cache"),
            "HOME": str(self.root / "home"),
        }
        self.socket = self.run_dir / "libvirt" / "libvirt-sock"
        self.uri = f"qemu+unix:///session?socket={self.socket}"
        """How the test process reaches the daemon (root cannot say qemu:///session)."""
        self.daemon: subprocess.Popen[bytes] | None = None
        self.processes: list[subprocess.Popen[bytes]] = []
        self._conn: Any = None

    # -- the daemon ------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        for name in ("run", "config/libvirt", "data", "cache", "home", "work"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        (self.root / "config" / "libvirt" / "qemu.conf").write_text(QEMU_CONF)
        self.root.chmod(0o755)
        self.run_dir.chmod(0o700)
        self._give_to_user(self.root)
        log = (self.root / "libvirtd.log").open("ab")
        try:
            self.daemon = subprocess.Popen(self.as_user(["libvirtd"]), env=self.env,
                                           stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while self._conn is None:
            if self.daemon.poll() is not None:
                raise RuntimeError(f"libvirtd exited {self.daemon.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"libvirtd did not answer within {timeout:g}s: {self.log()}")
            if self.socket.exists():
                with contextlib.suppress(Exception):
                    self._conn = _libvirt().open(self.uri)
            if self._conn is None:
                time.sleep(0.05)

    def restart(self) -> None:
        """Stop the daemon by pid and start it again; the guests run on (libvirtd finds
        them again by their state files), connections to the old daemon die."""
        libvirt = _libvirt()
        with contextlib.suppress(libvirt.libvirtError):
            self._conn.close()
        self._conn = None
        if self.daemon is not None:
            testing.stop_processes([self.daemon], timeout=10)
        self.start()

    def log(self) -> str:
        path = self.root / "libvirtd.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    @property
    def conn(self) -> Any:
        """The test process's own connection (to look at and kill guests)."""
        return self._conn

    def close(self) -> None:
        """Stop everything we started and remove the dir (see the module docstring)."""
        try:
            testing.stop_processes(self.processes, timeout=10)
        finally:
            try:
                self._remove_domains()
            finally:
                try:
                    if self.daemon is not None:
                        testing.stop_processes([self.daemon], timeout=10)
                finally:
                    self._kill_leftover_guests()
                    shutil.rmtree(self.root, ignore_errors=True)

    def _remove_domains(self) -> None:
        if self._conn is None:
            return
        libvirt = _libvirt()
        try:
            domains = self._conn.listAllDomains(0)
        except libvirt.libvirtError:
            domains = []  # the daemon is gone: its guests are killed by pid below
        for domain in domains:
            with contextlib.suppress(libvirt.libvirtError):
                if domain.isActive():
                    domain.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                domain.undefine()
        with contextlib.suppress(libvirt.libvirtError):
            self._conn.close()
        self._conn = None

    def _kill_leftover_guests(self) -> None:
        """QEMU outlives a stopped libvirtd: kill what its pid files name, if still QEMU."""
        for pidfile in (self.run_dir / "libvirt" / "qemu" / "run").glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                pid = int(pidfile.read_text().strip())
                if "qemu" in pathlib.Path(f"/proc/{pid}/comm").read_text():
                    os.kill(pid, signal.SIGKILL)

    # -- the user's processes --------------------------------------------------------------

    def as_user(self, argv: list[str]) -> list[str]:
        """``argv`` run as the session's user."""
        if not self.as_root:
            return argv
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                "--", *argv]

    def directory(self, name: str) -> pathlib.Path:
        """A dir of the session's user (for plugin state, plugins dir, guest files)."""
        path = self.root / "work" / name
        path.mkdir(parents=True, exist_ok=True)
        self._give_to_user(path)
        return path

    def start_plugin(self, plugins_dir: pathlib.Path, *args: str,
                     name: str = "instance-libvirt") -> subprocess.Popen[bytes]:
        """``infrakit-instance-libvirt --name NAME ARGS`` as the user, serving in
        ``plugins_dir`` (which the user must be able to write), its log in the work dir."""
        log = (self.root / "work" / f"{name}.log").open("ab")
        try:
            process = subprocess.Popen(
                self.as_user([str(BIN / "infrakit-instance-libvirt"), "--name", name,
                              "--dir", str(self.directory(f"{name}-state")), *args]),
                env={**self.env, "INFRAKIT_PLUGINS_DIR": str(plugins_dir)},
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        self.processes.append(process)
        return process

    def plugin_log(self, name: str = "instance-libvirt") -> str:
        path = self.root / "work" / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    # -- guests ----------------------------------------------------------------------------

    def running(self) -> list[str]:
        """Names of the running domains."""
        return sorted(domain.name() for domain in self._conn.listAllDomains(0)
                      if domain.isActive())

    def defined(self) -> list[str]:
        """Names of every domain, running or not."""
        return sorted(domain.name() for domain in self._conn.listAllDomains(0))

    def kill(self, name: str) -> int:
        """Kill guest ``name``'s QEMU process (SIGKILL, behind libvirt's back); its pid."""
        pid = int((self.run_dir / "libvirt" / "qemu" / "run" / f"{name}.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        return pid

    def qemu_pids(self) -> dict[str, int]:
        """The QEMU pid of each running guest, by name."""
        found = {}
        for pidfile in (self.run_dir / "libvirt" / "qemu" / "run").glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                found[pidfile.stem] = int(pidfile.read_text().strip())
        return found

    def _give_to_user(self, path: pathlib.Path) -> None:
        if not self.as_root:
            return
        for directory, _, files in os.walk(path):
            os.chown(directory, self.uid, self.gid)
            for name in files:
                os.chown(os.path.join(directory, name), self.uid, self.gid)


@contextlib.contextmanager
def started() -> Iterator[Session]:
    """A started :class:`Session`, closed at the end whatever happens."""
    session = Session()
    try:
        session.start()
        yield session
    finally:
        session.close()


def _libvirt() -> Any:
    import libvirt

    return libvirt
