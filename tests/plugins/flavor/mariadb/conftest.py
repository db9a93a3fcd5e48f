"""Fixtures of the MariaDB flavor tests: real ``mariadbd`` members (``mariadb_cluster.py``).

- ``members``: a primary and two replicas run from the flavor's Init script, per module;
- ``stack``: the group plugin, ``instance-process`` and ``infrakit-flavor-mariadb`` as
  processes (``tests/e2e/stack.py``), for group commits end to end.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys
from collections.abc import Iterator

import pytest
from mariadb_cluster import IDS, Members, kill_recorded, shared_port, workdir

from infrakit import testing

sys.path.insert(0, str(pathlib.Path(__file__).parents[3] / "e2e"))
from stack import POLL, Stack  # the e2e harness, found through the line above


@pytest.fixture(scope="session")
def engine() -> None:
    """Debian's ``mariadb-server`` and PyMySQL, or skip (fail under INFRAKIT_REQUIRE_ENGINES)."""
    path = f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin"
    for program in ("mariadbd", "mariadb-install-db"):
        if shutil.which(program, path=path) is None:
            testing.missing_engine(f"{program} is not installed (Debian's mariadb-server; "
                                   "scripts/deps-apps.sh)")
    try:
        import pymysql  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        testing.missing_engine("PyMySQL is not installed (the mariadb extra)")


@pytest.fixture(scope="module")
def members(engine: None) -> Iterator[Members]:
    """A primary and two replicas, up and replicating, from the flavor's Init scripts."""
    with workdir("ikmdb-") as work:
        started = Members(work, {"Port": shared_port(), "DataDir": str(work / "mariadb"),
                                 "Timeout": "5s", "CatchUp": "20s"})
        try:
            for lid in IDS:
                started.start(lid)
            started.wait_up(*IDS)
            yield started
        finally:
            started.stop()


@pytest.fixture(scope="module")
def stack(engine: None) -> Iterator[Stack]:
    """The group plugin (polling every 100 ms), instance-process (state in ``work/procs``;
    a member that dies wakes the group) and infrakit-flavor-mariadb, as processes; the
    members' data under ``work/mariadb``."""
    with workdir("ikm-") as sockets_dir, workdir("ikmw-") as work:
        started = Stack(sockets_dir, work)
        state = work / "procs"
        try:
            started.start("instance-process", "infrakit-instance-process", "--dir",
                          str(state), "--notify", "group", "--log", "2")
            started.start("flavor-mariadb", "infrakit-flavor-mariadb", "--log", "3")
            started.start("group", "infrakit-group-default", "--poll-interval", POLL,
                          "--log", "3")
            started.wait_ready()
            yield started
        finally:
            started.stop()
            kill_recorded(state)


