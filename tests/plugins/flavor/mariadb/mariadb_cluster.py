"""Real ``mariadbd`` members on 127.0.0.31-33 for the MariaDB flavor tests (used by their
fixtures in ``conftest.py`` and by the tests).

- :class:`Members`: members started straight from the Init script the flavor prepares (what
  an instance plugin would run), for tests of the plugin's methods against live servers;
- :func:`sql` and friends: a client of the members, as the cluster's administrator;
- :func:`kill_recorded`: the end of every member ``instance-process`` started.

Every server listens on a port free on all three addresses, keeps its data under a directory
of its test module, and is stopped by pid at the end, also when a test fails.
"""

from __future__ import annotations

import contextlib
import pathlib
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from infrakit import testing, testing_stack
from infrakit.plugins.flavor.mariadb import config, script

IDS = ["127.0.0.31", "127.0.0.32", "127.0.0.33"]
PRIMARY = IDS[0]
ACCOUNT = {"user": "infrakit", "password": "infrakit"}
"""The flavor's default account, which the tests use as the cluster's administrator."""
APP = {"user": "app", "password": "app-secret"}
"""An application's account: a drained (read-only) primary refuses its writes."""


def shared_port() -> int:
    """A port nothing listens on at any of :data:`IDS` now."""
    return testing_stack.port_free_on(IDS)[0]


def sql(lid: str, port: int, query: str, args: Any = None) -> list[dict[str, Any]]:
    """Run one statement on member ``lid`` as the administrator; its rows."""
    import pymysql

    connection = pymysql.connect(host=lid, port=port, connect_timeout=5, read_timeout=30,
                                 autocommit=True, cursorclass=pymysql.cursors.DictCursor,
                                 **ACCOUNT)
    try:
        with connection.cursor() as cursor:
            cursor.execute(query, args)
            return list(cursor.fetchall())
    finally:
        connection.close()


def answers(lid: str, port: int) -> bool:
    try:
        sql(lid, port, "SELECT 1")
    except Exception:  # any failure: not up yet
        return False
    return True


def applied(lid: str, port: int, position: str, *, timeout: float = 30.0) -> bool:
    """Whether replica ``lid`` applies GTID ``position`` within ``timeout`` seconds."""
    rows = sql(lid, port, "SELECT MASTER_GTID_WAIT(%s, %s) AS waited", (position, timeout))
    return bool(rows[0]["waited"] == 0)


def position(port: int) -> str:
    """The primary's last write."""
    return str(sql(PRIMARY, port, "SELECT @@gtid_binlog_pos AS gtid")[0]["gtid"])


class Members:
    """Members run from the flavor's Init script, each a session of its own."""

    def __init__(self, work: pathlib.Path, properties: dict[str, Any]) -> None:
        self.work = work
        self.properties = properties
        self.port = int(properties["Port"])
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, lid: str) -> None:
        init = script.render(config.parse(self.properties), logical_id=lid, primary=PRIMARY)
        with (self.work / f"{lid}.out").open("ab") as out:
            self.processes[lid] = subprocess.Popen(
                ["/bin/sh", "-c", init], cwd=self.work, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)

    def wait_up(self, *lids: str, timeout: float = 90.0) -> None:
        for lid in lids:
            if not testing.wait_until(lambda lid=lid: self._up(lid), timeout=timeout):
                raise AssertionError(f"{lid} did not come up: {self.said(lid)}")

    def _up(self, lid: str) -> bool:
        process = self.processes[lid]
        if process.poll() is not None:
            raise AssertionError(f"{lid} exited {process.returncode}: {self.said(lid)}")
        return answers(lid, self.port)

    def stop(self, *lids: str) -> None:
        testing.stop_processes([self.processes[lid] for lid in lids or list(self.processes)],
                               timeout=60)

    def said(self, lid: str) -> str:
        texts = [path.read_text(errors="replace")[-1500:] for path in
                 (self.work / f"{lid}.out", self.work / "mariadb" / lid / "error.log")
                 if path.exists()]
        return "\n".join(texts)


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[pathlib.Path]:
    """A directory of our own (short, for the servers' unix sockets; and out of reach of the
    clean-up of pytest's numbered temporary dirs), removed at the end."""
    path = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


recorded = testing_stack.recorded
same_process = testing_stack.same_process
kill_recorded = testing_stack.kill_recorded
"""instance-process's records by logical ID, whether one still runs, and the end of all."""


@dataclass
class Writer:
    """A client writing to the primary throughout, as the application's account."""

    port: int
    acknowledged: list[int] = field(default_factory=list)
    longest_outage: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        import pymysql

        n, failing_since = 0, None
        while not self.stop.is_set():
            n += 1
            try:
                connection = pymysql.connect(host=PRIMARY, port=self.port, connect_timeout=2,
                                             read_timeout=5, autocommit=True, **APP)
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("INSERT INTO app.log VALUES (%s)", (n,))
                finally:
                    connection.close()
            except pymysql.MySQLError:
                failing_since = failing_since or time.monotonic()
                time.sleep(0.02)
                continue
            self.acknowledged.append(n)
            if failing_since is not None:
                self.longest_outage = max(self.longest_outage, time.monotonic() - failing_since)
                failing_since = None
            time.sleep(0.01)
