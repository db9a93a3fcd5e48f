"""The etcd flavor's Properties, and each member's identity derived from its logical ID.

Every method of :class:`~infrakit.plugins.flavor.etcd.plugin.Plugin` parses its properties
here (errors name the field). Properties, all optional::

    {"ClientPort": 2379, "PeerPort": 2380, "DataDir": "etcd-data", "Binary": "etcd",
     "Flags": ["--heartbeat-interval", "50"], "Token": "...", "Timeout": "2s",
     "ReconfigureTimeout": "20s"}

A member's logical ID is its address (a host name, an IPv4 or an IPv6 address): its name
is the logical ID, its client URL ``http://<logical ID>:<ClientPort>``, its peer URL
``http://<logical ID>:<PeerPort>``, its data ``<DataDir>/<logical ID>`` (relative to the
instance's working directory unless ``DataDir`` is absolute).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field, model_validator

from infrakit import durations, errors
from infrakit.plugins import properties
from infrakit.spi import flavor
from infrakit.spi.wire import Wire

_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
"""A host name or address: what may stand in a URL and in ``--initial-cluster``."""


class Properties(Wire):
    """How the members run etcd and how the flavor talks to them."""

    client_port: int = Field(2379, ge=1, le=65535)
    """The port of every member's client URL."""
    peer_port: int = Field(2380, ge=1, le=65535)
    """The port of every member's peer URL."""
    data_dir: str = Field("etcd-data", min_length=1)
    """The directory holding each member's data dir (``<DataDir>/<logical ID>``)."""
    binary: str = Field("etcd", min_length=1)
    """The etcd server command the Init script runs."""
    flags: list[str] | None = None
    """More flags for etcd (``--heartbeat-interval``, ``--election-timeout``, …)."""
    token: str | None = Field(None, min_length=1)
    """The ``--initial-cluster-token``; ``infrakit-<group ID>`` when unset."""
    timeout: durations.Seconds = Field(2.0, gt=0)
    """How long one member has to answer one request, e.g. ``"2s"``."""
    reconfigure_timeout: durations.Seconds = Field(20.0, ge=0)
    """How long Prepare and Drain retry a membership change etcd refuses for now (its
    strict reconfiguration check right after a member started); keep it below the group's
    RPC timeout (30s)."""

    @model_validator(mode="after")
    def _distinct_ports(self) -> Properties:
        if self.client_port == self.peer_port:
            raise ValueError(f"ClientPort and PeerPort must differ, both are {self.peer_port}")
        return self


def parse(raw: Any) -> Properties:
    """``raw`` as :class:`Properties`, or ``InvalidError`` naming the field."""
    return properties.parse(Properties, raw)


@dataclass(frozen=True, slots=True)
class Address:
    """One member's identity, all of it derived from its logical ID."""

    name: str
    """The etcd member name: the logical ID."""
    client_url: str
    """Where clients (and this flavor) reach it."""
    peer_url: str
    """Where the other members reach it."""


def address(logical_id: str, settings: Properties) -> Address:
    """The identity of the member whose logical ID is ``logical_id``."""
    host = f"[{logical_id}]" if ":" in logical_id else logical_id
    return Address(name=logical_id, client_url=f"http://{host}:{settings.client_port}",
                   peer_url=f"http://{host}:{settings.peer_port}")


def check_logical_id(logical_id: str | None, *, field: str = "Spec.LogicalID") -> str:
    """``logical_id`` when it can name an etcd member, else ``InvalidError`` naming ``field``."""
    if not logical_id:
        raise errors.InvalidError(
            f"{field}: required; etcd members are pets whose logical IDs are their addresses "
            "(Allocation.LogicalIDs)", field=field)
    if not _HOST.match(logical_id):
        raise errors.InvalidError(
            f"{field}: expected a host name or an IP address, got {logical_id!r}", field=field)
    return logical_id


def check_allocation(allocation: flavor.AllocationMethod) -> list[str]:
    """The logical IDs of ``allocation``; ``InvalidError`` unless it lists usable ones."""
    ids: Sequence[str] = allocation.logical_ids or []
    if not ids:
        raise errors.InvalidError(
            "Allocation.LogicalIDs: required; etcd members are pets whose logical IDs are "
            "their addresses, e.g. [127.0.0.21, 127.0.0.22, 127.0.0.23]",
            field="Allocation.LogicalIDs")
    return [check_logical_id(lid, field=f"Allocation.LogicalIDs[{number}]")
            for number, lid in enumerate(ids)]
