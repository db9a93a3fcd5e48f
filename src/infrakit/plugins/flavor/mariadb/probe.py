"""Checks of live members over the MySQL protocol (PyMySQL), run off the event loop.

Each check opens one connection as the flavor's account, asks what it needs and closes it;
every connect and query is bounded by ``Properties.Timeout`` and the whole check by
:func:`_bounded`. A check never raises for what the server did: a refused connection, a denied
account or a failed query is written into the :class:`state.Member` it returns, in the words
the server used, for :mod:`.decide` to judge. Called by the plugin's judge, gates and drain.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from infrakit import errors
from infrakit.plugins.flavor.mariadb import config, script, state

log = logging.getLogger(__name__)

T = TypeVar("T")

EXTRA = "the mariadb extra: pip install 'infrakit[mariadb]'"

_DENIED = {1044, 1045, 1142, 1227}
"""Server errors that mean "not with this account": access denied, command denied."""


async def primary(wanted: config.Properties, logical_id: str) -> state.Member:
    """The primary as a client sees it: does it take a write (to the heartbeat table)?"""
    return await _bounded(wanted, _primary, wanted, logical_id)


async def replica(wanted: config.Properties, logical_id: str, *,
                  wait_for: str = "", wait: float = 0.0) -> state.Member:
    """A replica's replication threads, lag and position; with ``wait_for`` (a GTID position),
    also whether it applies that position within ``wait`` seconds."""
    check = functools.partial(_replica, wait_for=wait_for, wait=wait)
    return await _bounded(wanted, check, wanted, logical_id, extra=wait)


async def drain(wanted: config.Properties, logical_id: str) -> list[str]:
    """Make the primary read-only, then wait (up to ``CatchUp``) until every replica connected
    to it has applied its last write; the replicas that did not, with why. A primary that
    does not answer has nothing to drain."""
    # Beyond CatchUp, each replica may take a connect and a query to say where it is.
    return await _bounded(wanted, _drain, wanted, logical_id,
                          extra=wanted.catch_up + 4 * wanted.timeout)


async def _bounded(wanted: config.Properties, check: Callable[..., T], *args: Any,
                   extra: float = 0.0) -> T:
    # PyMySQL's own timeouts bound each step; this bounds the whole, should one be missed.
    limit = 4 * wanted.timeout + extra + 1.0
    try:
        return await asyncio.wait_for(asyncio.to_thread(check, *args), timeout=limit)
    except TimeoutError:
        raise errors.CallTimeout(f"MariaDB check took longer than {limit:g}s") from None


def _primary(wanted: config.Properties, logical_id: str) -> state.Member:
    found = state.Member(logical_id=logical_id, address=wanted.address(logical_id),
                         role=config.PRIMARY)
    try:
        with _cursor(wanted, logical_id) as cursor:
            cursor.execute("SELECT @@read_only AS read_only, @@gtid_binlog_pos AS gtid")
            row = cursor.fetchone()
            read_only = bool(row["read_only"])
            if not read_only:
                cursor.execute(f"REPLACE INTO {script.HEARTBEAT} (id, server_id, at) "
                               "VALUES (1, @@server_id, NOW(6))")
                cursor.execute("SELECT @@gtid_binlog_pos AS gtid")
                row = cursor.fetchone()
    except _pymysql().MySQLError as exc:
        return _failed(found, exc)
    return _with(found, read_only=read_only, wrote=not read_only, gtid=row["gtid"] or "")


def _replica(wanted: config.Properties, logical_id: str, *, wait_for: str = "",
             wait: float = 0.0) -> state.Member:
    found = state.Member(logical_id=logical_id, address=wanted.address(logical_id),
                         role=config.REPLICA)
    try:
        with _cursor(wanted, logical_id, extra=wait) as cursor:
            applied = None
            if wait_for:
                cursor.execute("SELECT MASTER_GTID_WAIT(%s, %s) AS waited", (wait_for, wait))
                applied = cursor.fetchone()["waited"] == 0
            cursor.execute("SELECT @@read_only AS read_only, @@gtid_slave_pos AS gtid")
            position = cursor.fetchone()
            cursor.execute("SHOW SLAVE STATUS")
            status = cursor.fetchone()
    except _pymysql().MySQLError as exc:
        return _failed(found, exc)
    found = _with(found, read_only=bool(position["read_only"]), gtid=position["gtid"] or "",
                  applied=applied)
    if status is None:
        return found
    return _with(found, replicating=True,
                 io_running=status["Slave_IO_Running"] or "",
                 sql_running=status["Slave_SQL_Running"] or "",
                 behind=status["Seconds_Behind_Master"],
                 last_error=status["Last_IO_Error"] or status["Last_SQL_Error"] or "",
                 source=f"{status['Master_Host']}:{status['Master_Port']}")


def _drain(wanted: config.Properties, logical_id: str) -> list[str]:
    try:
        with _cursor(wanted, logical_id) as cursor:
            cursor.execute("SET GLOBAL read_only = ON")
            cursor.execute("SELECT @@gtid_binlog_pos AS gtid")
            position = cursor.fetchone()["gtid"] or ""
            cursor.execute("SHOW SLAVE HOSTS")
            hosts = [str(row["Host"]) for row in cursor.fetchall()]
    except _pymysql().MySQLError as exc:
        log.info("drain of primary %s: it does not answer (%s): nothing to drain",
                 logical_id, _message(exc))
        return []
    log.info("primary %s is read-only; waiting for %s to apply %s", logical_id,
             ", ".join(hosts) or "no replica", position)
    deadline = time.monotonic() + wanted.catch_up
    behind = []
    for host in sorted(hosts):
        member = _replica(wanted, host, wait_for=position,
                          wait=max(0.0, deadline - time.monotonic()))
        if not member.applied:
            where = member.error or f"at {member.gtid or 'nothing'}"
            behind.append(f"{member.address}: {where}")
    return behind


@contextmanager
def _cursor(wanted: config.Properties, logical_id: str, *,
            extra: float = 0.0) -> Iterator[Any]:
    pymysql = _pymysql()
    connection = pymysql.connect(
        host=logical_id, port=wanted.port, user=wanted.user,
        password=wanted.password.get_secret_value(), connect_timeout=wanted.timeout,
        read_timeout=wanted.timeout + extra, write_timeout=wanted.timeout, autocommit=True,
        cursorclass=pymysql.cursors.DictCursor)
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()


@functools.cache
def _pymysql() -> Any:
    """The ``pymysql`` module (it ships no type information); ``PermanentError`` saying what
    to install when it is missing."""
    try:
        return importlib.import_module("pymysql")
    except ImportError:
        raise errors.PermanentError(f"flavor-mariadb needs PyMySQL: {EXTRA}") from None


def _failed(found: state.Member, exc: Exception) -> state.Member:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    return _with(found, error=_message(exc), denied=code in _DENIED)


def _message(exc: Exception) -> str:
    """The server's (or PyMySQL's) words, without the error code tuple around them."""
    if len(exc.args) >= 2 and isinstance(exc.args[1], str):
        return exc.args[1]
    return str(exc) or type(exc).__name__


def _with(found: state.Member, **changes: Any) -> state.Member:
    return dataclasses.replace(found, **changes)
