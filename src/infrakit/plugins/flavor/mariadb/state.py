"""What one check of one member found: the facts the verdicts and the gates are made of.

:mod:`.probe` fills a :class:`Member` from a live server; :mod:`.decide` reads it, and tests
build them by hand. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    """One member as a check saw it."""

    logical_id: str
    """Its logical ID (its address)."""
    address: str
    """``host:port`` it serves on."""
    role: str
    """``primary`` or ``replica``."""
    error: str = ""
    """Why it could not be checked (it did not answer, refused our account, a query failed);
    ``""`` when it answered."""
    denied: bool = False
    """It answered but refused the flavor's account: a configuration problem, not a sick
    server, so no verdict."""
    read_only: bool = False
    """``@@read_only`` (a drained primary is read-only)."""
    wrote: bool = False
    """Primary: the heartbeat write succeeded."""
    gtid: str = ""
    """Primary: ``@@gtid_binlog_pos``; replica: ``@@gtid_slave_pos``."""
    replicating: bool = False
    """Replica: replication is configured (``SHOW SLAVE STATUS`` has a row)."""
    io_running: str = ""
    """Replica: ``Slave_IO_Running`` (``Yes``, ``No``, ``Connecting``)."""
    sql_running: str = ""
    """Replica: ``Slave_SQL_Running``."""
    behind: int | None = None
    """Replica: ``Seconds_Behind_Master``; ``None`` when not replicating."""
    last_error: str = ""
    """Replica: the IO or SQL thread's last error."""
    source: str = ""
    """Replica: the ``host:port`` it replicates from."""
    applied: bool | None = None
    """Replica: whether it applied a position it was asked to wait for (the primary's last
    write); ``None`` when not asked."""

    @property
    def answered(self) -> bool:
        return not self.error
