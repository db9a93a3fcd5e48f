"""The swarm flavor's ``Properties``, v0.5's form plus where each node's engine listens.

::

    {"SwarmJoinIP": "10.77.0.11",
     "Docker": {"Host": "unix:///srv/swarm/10.77.0.11/docker.sock",
                "NodeHost": "unix:///srv/swarm/{LogicalID}/docker.sock",
                "Managers": ["unix:///srv/swarm/10.77.0.12/docker.sock"]},
     "EngineLabels": {"storage": "ssd"},
     "Init": ["exec dockerd -H unix:///srv/swarm/10.77.0.11/docker.sock $SWARM_ENGINE_LABELS"],
     "Attachments": {"10.77.0.11": [{"ID": "vol-1", "Type": "ebs"}], "*": []}}

``Docker.Host`` (v0.5) and ``Docker.Managers`` are engines of managers the flavor asks for
join tokens, nodes and quorum; ``Docker.NodeHost`` is each node's own engine, ``{LogicalID}``
and ``{ID}`` replaced (in the Init, ``{ID}`` is ``$INFRAKIT_INSTANCE_ID``): the Init joins
through it and Drain makes the node leave through it. In the manager group every logical ID
expanded into ``NodeHost`` is a manager's engine too.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from infrakit import errors
from infrakit.plugins import properties
from infrakit.spi import flavor, instance
from infrakit.spi.wire import Wire

MANAGER = "manager"
WORKER = "worker"
ROLES = (MANAGER, WORKER)
_LABEL = re.compile(r"^[A-Za-z0-9._/:@+-]+$")
"""What an engine label's key and value may hold: they reach dockerd as unquoted words."""


class TLS(Wire):
    """v0.5's TLS settings; accepted for compatibility, refused when set (unix sockets only)."""

    ca_file: str = ""
    """CA certificate."""
    cert_file: str = ""
    """Client certificate."""
    key_file: str = ""
    """Client key."""
    insecure_skip_verify: bool = False
    """Skip server verification."""
    client_auth: Any = None
    """v0.5's client auth mode."""


class Docker(Wire):
    """Where the engines are."""

    host: str = ""
    """A manager's engine (v0.5): ``unix:///path/docker.sock`` or ``tcp://host:port``."""
    tls: TLS | None = Field(None, alias="TLS")
    """v0.5's TLS; not supported."""
    node_host: str = ""
    """(ext) Each node's own engine, ``{LogicalID}`` and ``{ID}`` replaced."""
    managers: list[str] = Field(default_factory=list)
    """(ext) More managers' engines, tried after ``Host``."""


class Properties(Wire):
    """One swarm group's settings."""

    swarm_join_ip: str = Field("", alias="SwarmJoinIP")
    """The logical ID of the manager that initializes the swarm (default: the first)."""
    docker: Docker = Field(default_factory=Docker)
    """The engines."""
    init_script_template_url: str = Field("", alias="InitScriptTemplateURL")
    """v0.5's Go template for the Init; not supported."""
    engine_labels: dict[str, str] = Field(default_factory=dict)
    """Labels the Init hands to the node's dockerd (``$SWARM_ENGINE_LABELS``)."""
    attachments: dict[str, list[instance.Attachment]] = Field(default_factory=dict)
    """Attachments by logical ID, ``*`` for every instance."""
    init: list[str] = Field(default_factory=list)
    """(ext) The node's own boot lines, run after the spec's Init and the background join:
    typically starting dockerd (with ``$SWARM_ENGINE_LABELS``) where ``NodeHost`` says."""
    join_timeout: float = Field(300.0, gt=0)
    """(ext) Seconds the Init waits for its engine and retries the join."""


def parse(raw: Any) -> Properties:
    """``raw`` as :class:`Properties`, or ``InvalidError`` naming the field."""
    if raw is None:
        raise errors.InvalidError("Properties: missing config", field="Properties")
    props = properties.parse(Properties, raw)
    if props.docker.tls is not None and (props.docker.tls.ca_file or props.docker.tls.cert_file
                                         or props.docker.tls.key_file):
        raise errors.InvalidError(
            "Properties.Docker.TLS: not supported; reach the engines on unix sockets",
            field="Properties.Docker.TLS")
    if props.init_script_template_url:
        raise errors.InvalidError(
            "Properties.InitScriptTemplateURL: not supported; the flavor adds its join to "
            "the spec's Init", field="Properties.InitScriptTemplateURL")
    if not props.docker.node_host:
        raise errors.InvalidError(
            "Properties.Docker.NodeHost: no docker connect info: expected each node's engine, "
            "e.g. unix:///srv/swarm/{LogicalID}/docker.sock", field="Properties.Docker.NodeHost")
    for key, value in props.engine_labels.items():
        if not _LABEL.match(key) or not (value == "" or _LABEL.match(value)):
            raise errors.InvalidError(
                f"Properties.EngineLabels.{key}: expected letters, digits and ._/:@+- only, "
                f"got {key}={value!r}", field=f"Properties.EngineLabels.{key}")
    for field, url in [("Host", props.docker.host), ("NodeHost", props.docker.node_host),
                       *((f"Managers[{n}]", u) for n, u in enumerate(props.docker.managers))]:
        if url and not url.startswith(("unix:///", "tcp://")):
            raise errors.InvalidError(
                f"Properties.Docker.{field}: expected unix:///path or tcp://host:port, "
                f"got {url!r}", field=f"Properties.Docker.{field}")
    return props


def check(props: Properties, allocation: flavor.AllocationMethod, *, role: str) -> list[str]:
    """The allocation's logical IDs, checked as v0.5 does; ``InvalidError`` otherwise."""
    lids = [str(lid) for lid in allocation.logical_ids or []]
    seen: set[str] = set()
    for position, lid in enumerate(lids):
        if lid in seen:
            raise errors.InvalidError(
                f"Allocation.LogicalIDs[{position}]: LogicalID {lid} specified more than once",
                field=f"Allocation.LogicalIDs[{position}]")
        seen.add(lid)
    if role == MANAGER and len(lids) % 2 == 0:
        raise errors.InvalidError(
            f"Allocation.LogicalIDs: managers must have an odd number for quorum, got "
            f"{len(lids)} (managers are pets: their logical IDs are their addresses)",
            field="Allocation.LogicalIDs")
    if props.swarm_join_ip and role == MANAGER and props.swarm_join_ip not in seen:
        raise errors.InvalidError(
            f"Properties.SwarmJoinIP: {props.swarm_join_ip} is not one of the logical IDs",
            field="Properties.SwarmJoinIP")
    attached: set[str] = set()
    for key, items in props.attachments.items():
        if key != "*" and key not in seen:
            raise errors.InvalidError(
                f"Properties.Attachments.{key}: not a logical ID of the group nor '*'",
                field=f"Properties.Attachments.{key}")
        for n, item in enumerate(items):
            where = f"Properties.Attachments.{key}[{n}]"
            if not item.type:
                raise errors.InvalidError(f"{where}: no attachment type", field=where)
            if item.id in attached:
                raise errors.InvalidError(
                    f"{where}: Attachment {item.id} specified more than once", field=where)
            attached.add(item.id)
    return lids


def node_url(props: Properties, *, lid: str = "", iid: str = "") -> str:
    """The node's own engine."""
    return props.docker.node_host.replace("{LogicalID}", lid).replace("{ID}", iid)


def manager_urls(props: Properties, lids: list[str], *, skip: str = "") -> list[str]:
    """Engines to ask about the swarm, ``skip`` (the node being changed) left out."""
    urls = [props.docker.host, *props.docker.managers]
    if "{ID}" not in props.docker.node_host:
        urls += [node_url(props, lid=lid) for lid in lids]
    unique = dict.fromkeys(url for url in urls if url and url != skip)
    return list(unique)


def attachments(props: Properties, lid: str | None) -> list[instance.Attachment]:
    """The logical ID's attachments, then every instance's."""
    mine = props.attachments.get(lid, []) if lid else []
    return [*mine, *props.attachments.get("*", [])]
