"""A private Docker engine for the tests, and busybox images built locally (never pulled).

:class:`Dockerd` runs ``dockerd`` with its own data root, exec root, pid file, socket and
cgroup parent under one temp dir, inside a network namespace of its own (``ip netns add``,
then ``nsenter --net=``: ``ip netns exec`` would remount /sys and break dockerd's cgroups),
so that its bridge and iptables rules never touch the root namespace. Containers are
reached only through ports published on the namespace's 127.0.0.1, from inside it
(:meth:`Dockerd.http_get`). :meth:`Dockerd.close` stops dockerd by pid, kills what it left
(its containerd and shims, found by the temp dir in their command lines), unmounts what it
mounted, deletes the namespace and cgroups, and removes what it created outside the temp
dir (``/etc/docker/key.json``, ``/run/docker``, ``/run/containerd/s``) if it was not there
before.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

OUTSIDE = (pathlib.Path("/etc/docker"), pathlib.Path("/etc/docker/key.json"),
           pathlib.Path("/run/docker"), pathlib.Path("/run/containerd"),
           pathlib.Path("/run/containerd/s"))
"""What dockerd 20.10 creates outside its data and exec roots."""
CGROUPS = pathlib.Path("/sys/fs/cgroup")
IMAGE = "ik-busybox:test"
"""Debian's busybox-static as an image (``docker import``): sh, httpd, sleep …"""


def missing() -> str | None:
    """Why the docker tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (a private dockerd in a network namespace)"
    for tool in ("dockerd", "containerd", "runc", "docker", "ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} not found: run scripts/deps-docker.sh as root"
    if not pathlib.Path("/bin/busybox").exists():
        return "/bin/busybox not found: run scripts/deps-docker.sh as root"
    return None


class Dockerd:
    """One private dockerd; :meth:`close` leaves nothing behind."""

    def __init__(self) -> None:
        # A short dir: unix socket paths must stay under 108 bytes.
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="ikd-"))
        tag = secrets.token_hex(4)
        self.netns = f"ikd-{tag}"
        self.cgroup = f"ikd-{tag}"
        self.socket = self.root / "docker.sock"
        self.url = f"unix://{self.socket}"
        self.process: subprocess.Popen[bytes] | None = None
        self._before = {path: path.exists() for path in OUTSIDE}
        self._before_shims = set(_listing(pathlib.Path("/run/containerd/s")))
        self._netns_made = False

    def start(self, timeout: float = 60.0) -> None:
        if not self._netns_made:
            subprocess.run(["ip", "netns", "add", self.netns], check=True)
            self._netns_made = True
            subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        log = (self.root / "dockerd.log").open("ab")
        try:
            self.process = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.netns}", "dockerd",
                 "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "x"),
                 "--pidfile", str(self.root / "docker.pid"), "-H", self.url,
                 "--cgroup-parent", f"/{self.cgroup}", "--log-level", "warn"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None:
                raise AssertionError(f"dockerd exited: {self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"dockerd did not answer in {timeout:g}s: {self.log()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> None:
        """TERM dockerd (it stops its containers and containerd), KILL it after ``timeout``."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self._kill_leftovers()
            self._unmount()
            if self._netns_made:
                subprocess.run(["ip", "netns", "delete", self.netns], check=False)
            self._remove_cgroups()
            self._remove_outside()
            shutil.rmtree(self.root, ignore_errors=True)

    def ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(2.0)
                probe.connect(str(self.socket))
                probe.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
                return probe.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def docker(self, *args: str, check: bool = True,
               stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        """The docker CLI on this engine."""
        done = subprocess.run(["docker", "-H", self.url, *args], input=stdin,
                              capture_output=True, timeout=120, check=False)
        result = subprocess.CompletedProcess(done.args, done.returncode,
                                             done.stdout.decode(errors="replace"),
                                             done.stderr.decode(errors="replace"))
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {result.stderr}")
        return result

    def containers(self, *filters: str) -> list[str]:
        """IDs of every container (running or not) matching ``label=…`` style filters."""
        args = [arg for item in filters for arg in ("--filter", item)]
        return self.docker("ps", "-aq", "--no-trunc", *args).stdout.split()

    def http_get(self, port: int, path: str = "/", *, wait: float = 10.0) -> str | None:
        """GET ``http://127.0.0.1:port/path`` from inside the engine's network namespace,
        retried for up to ``wait`` seconds (a server just started may not listen yet)."""
        deadline = time.monotonic() + wait
        while True:
            done = subprocess.run(
                ["nsenter", f"--net=/run/netns/{self.netns}", "/bin/busybox", "wget", "-q",
                 "-O", "-", f"http://127.0.0.1:{port}{path}"],
                capture_output=True, timeout=10, check=False)
            if done.returncode == 0:
                return done.stdout.decode()
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)

    def log(self) -> str:
        path = self.root / "dockerd.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    # -- cleaning up -----------------------------------------------------------------

    def _kill_leftovers(self) -> None:
        """containerd and shims dockerd started and did not stop (it was killed)."""
        marker = str(self.root).encode()
        for entry in pathlib.Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)

    def _unmount(self) -> None:
        prefix = str(self.root)
        points = []
        with contextlib.suppress(OSError):
            for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
                point = line.split()[4]
                if point == prefix or point.startswith(prefix + "/"):
                    points.append(point)
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)

    def _remove_cgroups(self) -> None:
        for controller in _listing(CGROUPS):
            top = CGROUPS / controller / self.cgroup
            if not top.is_dir():
                continue
            for path in sorted((p for p in top.rglob("*") if p.is_dir()),
                               key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    path.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()

    def _remove_outside(self) -> None:
        shims = pathlib.Path("/run/containerd/s")
        for name in set(_listing(shims)) - self._before_shims:
            with contextlib.suppress(OSError):
                (shims / name).unlink()
        for path in sorted(OUTSIDE, key=lambda p: len(p.parts), reverse=True):
            if self._before[path] or not path.exists():
                continue
            if path.is_dir():
                if path == pathlib.Path("/run/docker"):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        path.rmdir()
            else:
                path.unlink(missing_ok=True)


def build_busybox_image(engine: Dockerd, tag: str) -> None:
    """``tag``: a rootfs of Debian's static busybox (every applet linked in /bin, a page in
    /www), made by ``docker import`` (nothing pulled)."""
    with tempfile.TemporaryDirectory(prefix="ikd-rootfs-") as where:
        root = pathlib.Path(where)
        for folder in ("bin", "www", "tmp", "etc", "var/lib"):
            (root / folder).mkdir(parents=True)
        shutil.copy2("/bin/busybox", root / "bin" / "busybox")
        applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                (root / "bin" / applet).symlink_to("busybox")
        (root / "www" / "index.html").write_text("hello from busybox\n")
        tarball = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True,
                                 check=True).stdout
    engine.docker("import", "--change", 'CMD ["/bin/sh"]', "-", tag, stdin=tarball)


def _listing(path: pathlib.Path) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
