"""Fixtures for the end-to-end tests: stacks of real plugin processes, stopped by pid.

Each stack lives for one test module (starting three Python processes costs a second);
tests in a module use different group IDs, so they do not see each other's members.
"""

from __future__ import annotations

import contextlib
import pathlib
import tempfile
from collections.abc import Iterator

import pytest
from stack import POLL, Stack

from infrakit import testing_stack


@contextlib.contextmanager
def _stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Unix socket paths must stay under 108 bytes: a short dir of our own, not tmp_path.
    sockets_dir = pathlib.Path(tempfile.mkdtemp(prefix="ike-"))
    stack = Stack(sockets_dir, tmp_path_factory.mktemp("e2e"))
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """instance-file (its dir is ``stack.work / "files"``), flavor-vanilla, the group plugin."""
    with _stack(tmp_path_factory) as stack:
        stack.start("instance-file", "infrakit-instance-file", "--dir",
                    str(stack.work / "files"), "--log", "2")
        stack.start("flavor-vanilla", "infrakit-flavor-vanilla", "--log", "2")
        stack.start("group", "infrakit-group-default", "--poll-interval", POLL, "--log", "3")
        stack.wait_ready()
        yield stack


@pytest.fixture(scope="module")
def notifying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Like :func:`files`, but the group plugin polls once a minute and instance-file wakes
    it (``--notify group``) when someone else changes an instance file."""
    with _stack(tmp_path_factory) as stack:
        stack.start("instance-file", "infrakit-instance-file", "--dir",
                    str(stack.work / "files"), "--notify", "group", "--log", "2")
        stack.start("flavor-vanilla", "infrakit-flavor-vanilla", "--log", "2")
        stack.start("group", "infrakit-group-default", "--poll-interval", "1m", "--log", "3")
        stack.wait_ready()
        yield stack


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """instance-process (state in ``stack.work / "procs"``; a dying instance wakes the
    group plugin), flavor-vanilla, the group plugin. Every instance process still running
    at the end is killed, by the pid and start time its state record holds."""
    with _stack(tmp_path_factory) as stack:
        state = stack.work / "procs"
        try:
            stack.start("instance-process", "infrakit-instance-process", "--dir", str(state),
                        "--notify", "group", "--log", "2")
            stack.start("flavor-vanilla", "infrakit-flavor-vanilla", "--log", "2")
            stack.start("group", "infrakit-group-default", "--poll-interval", POLL,
                        "--log", "3")
            stack.wait_ready()
            yield stack
        finally:
            stack.stop()
            testing_stack.kill_recorded(state)


