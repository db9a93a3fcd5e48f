"""Fixtures for instance-libvirt's tests against a real session libvirtd and QEMU guests.

``session`` (one libvirtd for the whole run, see ``libvirt_session``) and ``guest`` (the
kernel and the busybox initramfs, see ``libvirt_guest``) are skipped, with what is missing,
when the engine is not installed: ``scripts/deps-libvirt.sh`` and ``pip install -e
'.[libvirt]'`` install it (``make test`` does both).
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator

import libvirt_guest
import libvirt_session
import pytest

from infrakit import testing
from infrakit.rpc import sockets, sync


@pytest.fixture(scope="session")
def session() -> Iterator[libvirt_session.Session]:
    absent = libvirt_session.missing() + libvirt_guest.missing()
    if absent:
        testing.missing_engine(f"libvirt tests need {', '.join(absent)}: run "
                               "scripts/deps-libvirt.sh")
    with libvirt_session.started() as started:
        yield started


@pytest.fixture(scope="session")
def guest(session: libvirt_session.Session) -> libvirt_guest.Guest:
    return libvirt_guest.Guest(kernel=libvirt_guest.kernel(),
                               initrd=libvirt_guest.build(session.directory("guest")))


def wait_served(session: libvirt_session.Session, path: pathlib.Path, *,
                timeout: float = 30.0) -> None:
    """Wait until the session's plugin serves at ``path``."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and sockets.is_live(path)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} did not start: {session.plugin_log()}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def plugin(session: libvirt_session.Session) -> Iterator[sync.Client]:
    """``infrakit-instance-libvirt`` as the session's user; a client to its socket."""
    plugins_dir = session.directory("plugins-module")
    process = session.start_plugin(plugins_dir, "--log", "5", name="instance-libvirt")
    try:
        wait_served(session, plugins_dir / "instance-libvirt")
        yield sync.Client(plugins_dir / "instance-libvirt", timeout=120.0)
    finally:
        testing.stop_processes([process], timeout=10)
