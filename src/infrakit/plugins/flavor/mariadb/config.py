"""The ``flavor-mariadb`` Properties, their checks, and the facts derived from them per member.

Every method of the plugin parses its Properties here, so a bad value is refused with the
field it came from (``Properties.User: expected letters, digits or _``) before anything reaches
a shell script, a server's config file or an SQL statement.
"""

from __future__ import annotations

import ipaddress
import re
import zlib
from typing import Any

import pydantic
from pydantic import Field, field_validator

from infrakit import durations, errors
from infrakit.plugins import properties
from infrakit.spi import flavor, instance
from infrakit.spi.wire import Wire

ROLE_TAG = "mariadb.role"
"""The tag Prepare puts on each member: ``primary`` or ``replica``."""
PREPARED_TAG = "mariadb.prepared"
"""The tag Prepare puts on each member: when it was prepared (Unix seconds), which starts
its ``Startup`` window."""
PRIMARY, REPLICA = "primary", "replica"

_USER = re.compile(r"[A-Za-z0-9_]{1,32}")
_OPTION = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Properties(Wire):
    """What the MariaDB flavor needs to run and judge a member; every field optional."""

    primary: str | None = None
    """The primary's logical ID; the first of the group's LogicalIDs when unset."""
    port: int = Field(3306, ge=1, le=65535)
    """The port every member listens on, at its logical ID (its address)."""
    data_dir: str = "mariadb"
    """Where members keep their data: ``<DataDir>/<logical ID>``; relative to the instance's
    working directory."""
    bin: str | None = None
    """A directory put first on PATH to find ``mariadbd`` and ``mariadb-install-db``."""
    user: str = "infrakit"
    """The account replicas replicate with and this flavor checks members with."""
    password: pydantic.SecretStr = pydantic.SecretStr("infrakit")
    """Its password (never logged)."""
    max_lag: durations.Seconds = 5.0
    """A replica further behind than this (Seconds_Behind_Master) is Unhealthy."""
    timeout: durations.Seconds = Field(2.0, gt=0)
    """How long one check of one member may take (connect, then each query)."""
    startup: durations.Seconds = 60.0
    """How long after Prepare a member that does not serve or replicate yet is Unknown
    (starting), not Unhealthy: InfraKit v0.5's rolling update stops at the first Unhealthy."""
    catch_up: durations.Seconds = 10.0
    """How long Drain of the primary waits for the replicas to apply its last writes."""
    options: dict[str, str] = Field(default_factory=dict)
    """More ``mariadbd`` options for every member, e.g. ``{"max_connections": "200"}``."""

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not _USER.fullmatch(value):
            raise ValueError("expected 1 to 32 letters, digits or _")
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: pydantic.SecretStr) -> pydantic.SecretStr:
        if not value.get_secret_value() or _CONTROL.search(value.get_secret_value()):
            raise ValueError("expected a non-empty password without control characters")
        return value

    @field_validator("data_dir", "bin")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and (not value or _CONTROL.search(value)):
            raise ValueError("expected a non-empty path without control characters")
        return value

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, str]) -> dict[str, str]:
        for key, setting in value.items():
            if not _OPTION.fullmatch(key):
                raise ValueError(f"{key!r}: expected an option name such as max_connections")
            if _CONTROL.search(setting):
                raise ValueError(f"{key}: expected a value without control characters")
        return value

    def address(self, logical_id: str) -> str:
        """``host:port`` of the member with ``logical_id``."""
        host = f"[{logical_id}]" if ":" in logical_id else logical_id
        return f"{host}:{self.port}"


def parse(raw: Any) -> Properties:
    """``raw`` as Properties, or ``InvalidError`` naming the field."""
    return properties.parse(Properties, raw)


def check_allocation(wanted: Properties, allocation: flavor.AllocationMethod) -> list[str]:
    """The group's logical IDs, or ``InvalidError``: members are pets named by their address,
    and an explicit ``Primary`` must be one of them."""
    ids: list[str] = list(allocation.logical_ids or [])
    if not ids:
        raise errors.InvalidError(
            "Allocation: flavor-mariadb members are pets: expected LogicalIDs (each member's "
            "address), not a Size", field="Allocation.LogicalIDs")
    if wanted.primary is not None and wanted.primary not in ids:
        raise errors.InvalidError(
            f"Properties.Primary: {wanted.primary!r} is not one of the group's LogicalIDs "
            f"({', '.join(ids)})", field="Properties.Primary")
    return ids


def primary_of(wanted: Properties, ids: list[str]) -> str:
    """The primary's logical ID: ``Primary``, else the first of ``ids``."""
    return wanted.primary if wanted.primary is not None else ids[0]


def role(wanted: Properties, member: instance.Description) -> str:
    """A member's role: its tag (Prepare put it there), else by ``Primary``, else replica."""
    tagged = member.tags.get(ROLE_TAG)
    if tagged in (PRIMARY, REPLICA):
        return tagged
    if wanted.primary is not None and member.logical_id == wanted.primary:
        return PRIMARY
    return REPLICA


def age(member: instance.Description, *, now: float) -> float | None:
    """Seconds since Prepare made ``member`` (its tag), ``None`` when it does not say."""
    try:
        return now - float(member.tags[PREPARED_TAG])
    except (KeyError, ValueError):
        return None


def server_id(logical_id: str) -> int:
    """The member's ``server_id``: its IPv4 address as a number (127.0.0.31 → 2130706463),
    else a stable hash of the logical ID; never 0, which would disable replication."""
    try:
        address = ipaddress.ip_address(logical_id)
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv4Address) and int(address) != 0:
        return int(address)
    return zlib.crc32(logical_id.encode()) % 0xFFFFFFFF + 1
