"""The zookeeper flavor's ``Properties`` and the server ID each logical ID gets.

v0.5's form is all a user must write (``{"Type": "member"}``, logical IDs that are the members'
addresses); the rest is optional::

    {"Type": "member", "UseDocker": false, "ClientPort": 2181, "PeerPort": 2888,
     "ElectionPort": 3888, "DataDir": "zookeeper", "Java": "java",
     "Classpath": "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar",
     "JavaOpts": ["-Xmx128m"], "TickTime": 2000, "InitLimit": 5, "SyncLimit": 2,
     "ServerIDs": {"zk-a.example": 1}, "SuperPassword": "...", "Startup": "60s"}

Server IDs must never change while a member lives, whatever happens to the list of logical
IDs, so they do not follow positions in the list (v0.5's choice: positions shift when the list
changes). An IPv4 address's last octet is its ID (``127.0.0.12`` is server 12); other logical
IDs, or addresses whose last octets clash, need an entry in ``ServerIDs``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import Field, SecretStr

from infrakit import durations, errors
from infrakit.plugins import properties
from infrakit.spi import flavor, instance
from infrakit.spi.wire import Wire

MEMBER = "member"
"""The only node type, as in v0.5."""
PREPARED_TAG = "zookeeper.prepared"
"""The tag Prepare puts on each member: when it was prepared (Unix seconds), which starts its
``Startup`` window."""
GROUP_TAG = "infrakit.group"
"""The group plugin's tag naming a member's group (v0.5's wire contract)."""


class Properties(Wire):
    """How the members of one ensemble run."""

    type: str = ""
    """The node type: ``member`` (v0.5's only type)."""
    use_docker: bool = False
    """v0.5's Docker mode; accepted for compatibility, refused when true."""
    client_port: int = Field(2181, ge=1, le=65535)
    """The port clients (and the four-letter words) use, on each member's address."""
    peer_port: int = Field(2888, ge=1, le=65535)
    """The port followers talk to the leader on."""
    election_port: int = Field(3888, ge=1, le=65535)
    """The port of leader election."""
    data_dir: str = "zookeeper"
    """Where members keep their data: ``<DataDir>/<logical ID>``; a relative path is under
    the instance's working directory."""
    java: str = "java"
    """The Java runtime to run."""
    classpath: str = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
    """ZooKeeper's classes (Debian's layout; entries that are not there are skipped)."""
    java_opts: list[str] = Field(default_factory=lambda: ["-Xmx128m"])
    """Extra JVM flags."""
    tick_time: int = Field(2000, ge=1)
    """ZooKeeper's ``tickTime``, in milliseconds."""
    init_limit: int = Field(5, ge=1)
    """``initLimit``, in ticks."""
    sync_limit: int = Field(2, ge=1)
    """``syncLimit``, in ticks."""
    server_ids: dict[str, int] | None = None
    """Server IDs (1-255) of logical IDs that are not IPv4 addresses, or that override the
    last octet."""
    super_password: SecretStr | None = None
    """The ZooKeeper super user's password, which the flavor uses to reconfigure the
    ensemble (never logged); without it the flavor derives one per group from the key in its
    state directory (:mod:`.secret`)."""
    startup: durations.Seconds = 60.0
    """How long after Prepare a member that does not serve as a voter yet is Unknown
    (starting), not Unhealthy: InfraKit v0.5's rolling update stops at the first Unhealthy."""


def parse(raw: Any) -> Properties:
    """``raw`` as :class:`Properties`, or ``InvalidError`` naming the field."""
    props = properties.parse(Properties, raw)
    if props.type != MEMBER:
        raise errors.InvalidError(
            f"Properties.Type: unrecognized node type {props.type!r}; expected \"member\"",
            field="Properties.Type")
    if props.use_docker:
        raise errors.InvalidError(
            "Properties.UseDocker: not supported; members run with any instance plugin "
            "(instance-docker among them) from the Init this flavor writes",
            field="Properties.UseDocker")
    if props.super_password is not None and not props.super_password.get_secret_value():
        raise errors.InvalidError(
            "Properties.SuperPassword: expected a non-empty password (or none: the flavor "
            "then makes one per group)", field="Properties.SuperPassword")
    for lid, number in (props.server_ids or {}).items():
        if not 1 <= number <= 255:
            raise errors.InvalidError(
                f"Properties.ServerIDs.{lid}: expected a server ID from 1 to 255, got {number}",
                field=f"Properties.ServerIDs.{lid}")
    return props


def server_id(props: Properties, lid: str) -> int:
    """The server ID of logical ID ``lid``: its ``ServerIDs`` entry, else the last octet of an
    IPv4 address; ``InvalidError`` when it has neither."""
    if props.server_ids and lid in props.server_ids:
        return props.server_ids[lid]
    try:
        address = ipaddress.ip_address(lid)
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv4Address) and 1 <= address.packed[-1] <= 255:
        return address.packed[-1]
    raise errors.InvalidError(
        f"logical ID {lid!r}: no server ID: an IPv4 address ending in 1-255 gets its last "
        "octet; give anything else one in Properties.ServerIDs", field="Properties.ServerIDs")


def check_allocation(props: Properties, allocation: flavor.AllocationMethod) -> list[str]:
    """The allocation's logical IDs, each with a server ID of its own; ``InvalidError``
    naming the field otherwise (a size is refused: members are pets)."""
    lids = [str(lid) for lid in allocation.logical_ids or []]
    if not lids:
        raise errors.InvalidError(
            "Allocation.LogicalIDs: a ZooKeeper ensemble needs its members' addresses as "
            "logical IDs (a Size is not enough)", field="Allocation.LogicalIDs")
    seen: dict[int, str] = {}
    for position, lid in enumerate(lids):
        try:
            number = server_id(props, lid)
        except errors.InvalidError as exc:
            raise errors.InvalidError(f"Allocation.LogicalIDs[{position}]: {exc.message}",
                                      field=f"Allocation.LogicalIDs[{position}]") from None
        if number in seen:
            raise errors.InvalidError(
                f"Allocation.LogicalIDs[{position}]: {lid} and {seen[number]} would both be "
                f"server {number}; give one of them another in Properties.ServerIDs",
                field=f"Allocation.LogicalIDs[{position}]")
        seen[number] = lid
    return lids


def logical_id(inst: instance.Description | instance.Spec) -> str:
    """The member's logical ID; ``InvalidError`` when it has none."""
    if not inst.logical_id:
        raise errors.InvalidError(
            "LogicalID: ZooKeeper members need an assigned logical ID (their address)",
            field="LogicalID")
    return str(inst.logical_id)


def age(inst: instance.Description, *, now: float) -> float | None:
    """Seconds since Prepare made ``inst`` (its tag), ``None`` when it does not say."""
    try:
        return now - float(inst.tags[PREPARED_TAG])
    except (KeyError, ValueError):
        return None
