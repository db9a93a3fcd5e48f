"""A group of QEMU guests run by real plugin processes, for the group tests and bench/vms.py.

:class:`Stack` starts ``infrakit-group-default``, ``infrakit-flavor-vanilla`` and
``infrakit-instance-libvirt --notify group`` on a plugins dir of the session's user, all as
that user (as a person runs their plugins; the libvirt plugin must reach the group's socket,
mode 0600, to wake it), and talks to the group over its socket. :func:`vms` is a group spec
of test guests whose Init writes a version where the flavor's HTTP health probe reads it, and
:func:`serving` checks that every member answers with it through its host forward.
"""

from __future__ import annotations

import contextlib
import pathlib
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Iterator
from typing import Any, TypeVar

import libvirt_session
from libvirt_guest import Guest

from infrakit import testing
from infrakit.rpc import sockets, sync

BIN = pathlib.Path(sys.executable).parent
T = TypeVar("T")
FORWARD = "libvirt.forward.tcp.80"
HEALTH = "http://{{ instance.Tags['libvirt.forward.tcp.80'] }}/version.txt"


class Stack:
    """The group plugin, flavor-vanilla and instance-libvirt, all as the session's user."""

    def __init__(self, session: libvirt_session.Session, name: str) -> None:
        self.session = session
        self.name = name
        self.sockets = session.directory(f"plugins-{name}")
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *, poll: str) -> None:
        self.processes.append(self.session.start_plugin(
            self.sockets, "--notify", "group", "--log", "4", name="instance-libvirt"))
        env = {**self.session.env, "INFRAKIT_PLUGINS_DIR": str(self.sockets)}
        for name, argv in (("flavor-vanilla", ["infrakit-flavor-vanilla", "--log", "2"]),
                           ("group", ["infrakit-group-default", "--poll-interval", poll,
                                      "--log", "4"])):
            log = (self.session.root / "work" / f"{self.name}-{name}.log").open("ab")
            try:
                self.processes.append(subprocess.Popen(
                    self.session.as_user([str(BIN / argv[0]), *argv[1:]]), env=env,
                    stdout=log, stderr=log, stdin=subprocess.DEVNULL))
            finally:
                log.close()
        for name in ("instance-libvirt", "flavor-vanilla", "group"):
            path = self.sockets / name
            wait_for(lambda path=path: path.exists() and sockets.is_live(path),
                     what=f"{name} to serve", timeout=30)

    def stop(self) -> None:
        testing.stop_processes(self.processes, timeout=20)

    def call(self, method: str, params: dict[str, Any]) -> Any:
        return sync.Client(self.sockets / "group", timeout=60.0).call(method, params)

    def commit(self, spec: dict[str, Any]) -> None:
        self.call("Group.CommitGroup", {"Spec": spec, "Pretend": False})

    def members(self, gid: str) -> tuple[bool, list[dict[str, Any]]]:
        described = self.call("Group.DescribeGroup", {"ID": gid})["Description"]
        return bool(described["Converged"]), list(described["Instances"] or [])


@contextlib.contextmanager
def running(session: libvirt_session.Session, name: str, *, poll: str) -> Iterator[Stack]:
    stack = Stack(session, name)
    try:
        stack.start(poll=poll)
        yield stack
    finally:
        stack.stop()




def vms(gid: str, guest: Guest, *, size: int, version: str) -> dict[str, Any]:
    """``size`` guests whose Init writes ``version`` where the health probe reads it."""
    return {"ID": gid, "Properties": {
        "Instance": {"Plugin": "instance-libvirt",
                     "Properties": guest.properties(StopTimeout="5s")},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {
            "Init": [f"echo {version} > /www/version.txt"],
            "Tags": {"tier": "vm"},
            "Health": {"HTTP": HEALTH, "Timeout": "2s"}}},
        "Allocation": {"Size": size}}}


def version_of(member: dict[str, Any]) -> str | None:
    """What the member's guest serves at /version.txt, through its host forward."""
    target = member["Tags"].get(FORWARD)
    try:
        with urllib.request.urlopen(f"http://{target}/version.txt", timeout=3) as answer:
            return str(answer.read().decode().strip())
    except (urllib.error.URLError, OSError):
        return None


def serving(stack: Stack, gid: str, size: int, version: str, *, without: Collection[str] = (),
            converged: bool = True) -> Callable[[], dict[str, dict[str, Any]] | None]:
    """A check: ``gid`` with ``size`` members (and Converged, with ``converged``), none of
    ``without``, each serving ``version``; the members by ID."""
    def check() -> dict[str, dict[str, Any]] | None:
        done, members = stack.members(gid)
        found = {member["ID"]: member for member in members}
        if (converged and not done) or len(found) != size or set(found) & set(without):
            return None
        if any(version_of(member) != version for member in members):
            return None
        return found
    return check


def wait_for(check: Callable[[], T | None], *, what: str, timeout: float = 180.0) -> T:
    """:func:`infrakit.testing.wait_for` at a guest's pace (boots take seconds under TCG)."""
    return testing.wait_for(check, what=what, timeout=timeout, pause=0.25)
