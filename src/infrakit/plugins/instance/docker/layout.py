"""``instance-docker``'s Properties, in either of two layouts, and the container they describe.

Our layout names what a container needs in a few plain fields::

    {"Image": "busybox:stable", "Command": ["httpd", "-f", "-p", "80"],
     "Env": {"MODE": "web"}, "Ports": ["127.0.0.1:8080:80/tcp"],
     "Mounts": [{"Source": "/srv/www", "Target": "/www", "ReadOnly": true}],
     "Resources": {"Memory": "64m", "CPUs": 0.5, "PidsLimit": 100},
     "Network": "bridge", "RestartPolicy": "on-failure:3", "StopTimeout": "5s",
     "Tags": {"tier": "web"}}

The original's layout (InfraKit v0.5) is accepted as it was: ``Config`` is Docker's
``container.Config`` and ``HostConfig`` its ``container.HostConfig``, with Docker's field
names, ``NetworkAttachments`` a list of ``{"Name", "Driver"}`` networks to join (created
when missing), ``Tags`` extra labels. The two layouts do not mix: a document with
``Config`` takes none of our container fields (``StopTimeout`` goes in ``Config`` too).

Both are strict: a key neither layout knows is refused with its path and the closest known
key (``Properties.HostConfig.Memroy: unknown field; did you mean Memory?``). Docker checks
the values of the fields we pass through untyped. :func:`parse` is called by the plugin's
Validate and Provision; :func:`container` turns the result into the Engine API's terms.
Ports publish on 127.0.0.1 unless a host address is given (Docker's own default is every
address).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BeforeValidator, ConfigDict, Field

from infrakit import durations, errors, validation
from infrakit.plugins import properties
from infrakit.spi.wire import Wire

# container.Config and container.HostConfig of the Engine API (1.25 to 1.41), by Docker's
# names. Values pass through to Docker untyped, except the few typed below.
CONFIG_FIELDS = (
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
    "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
    "ArgsEscaped", "Image", "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled",
    "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell",
)
HOST_CONFIG_FIELDS = (
    "Binds", "ContainerIDFile", "LogConfig", "NetworkMode", "PortBindings", "RestartPolicy",
    "AutoRemove", "VolumeDriver", "VolumesFrom", "CapAdd", "CapDrop", "CgroupnsMode", "Dns",
    "DnsOptions", "DnsSearch", "ExtraHosts", "GroupAdd", "IpcMode", "Cgroup", "Links",
    "OomScoreAdj", "PidMode", "Privileged", "PublishAllPorts", "ReadonlyRootfs",
    "SecurityOpt", "StorageOpt", "Tmpfs", "UTSMode", "UsernsMode", "ShmSize", "Sysctls",
    "Runtime", "ConsoleSize", "Isolation", "CpuShares", "Memory", "NanoCpus",
    "CgroupParent", "BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "CpuPeriod",
    "CpuQuota", "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems",
    "Devices", "DeviceCgroupRules", "DeviceRequests", "KernelMemory", "KernelMemoryTCP",
    "MemoryReservation", "MemorySwap", "MemorySwappiness", "OomKillDisable", "PidsLimit",
    "Ulimits", "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth", "Mounts",
    "MaskedPaths", "ReadonlyPaths", "Init",
)
NETWORK_FIELDS = ("Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM",
                  "Internal", "Attachable", "Ingress", "ConfigFrom", "ConfigOnly",
                  "Containers", "Options", "Labels")
"""Docker's ``NetworkResource``; only ``Name`` and ``Driver`` are read, as in the original."""

_DOCKER = ConfigDict(frozen=True, populate_by_name=True, extra="allow")
Words = list[str] | str
"""An argv (``["httpd", "-f"]``) or one string: in our layout a string is run by ``/bin/sh -c``;
in ``Config`` Docker takes it as a one-word argv, as it always has."""


def _docker_model(name: str, names: tuple[str, ...], **typed: Any) -> type[pydantic.BaseModel]:
    fields: dict[str, Any] = {key: (Any, Field(None, alias=key)) for key in names}
    fields.update(typed)
    model: type[pydantic.BaseModel] = pydantic.create_model(name, __config__=_DOCKER, **fields)
    return model


DockerConfig = _docker_model(
    "Config", CONFIG_FIELDS,
    Image=(str, Field(alias="Image", min_length=1)),
    Cmd=(Words | None, Field(None, alias="Cmd")),
    Entrypoint=(Words | None, Field(None, alias="Entrypoint")),
    Env=(list[str] | None, Field(None, alias="Env")),
    Labels=(dict[str, str] | None, Field(None, alias="Labels")),
)
DockerHostConfig = _docker_model("HostConfig", HOST_CONFIG_FIELDS)
NetworkAttachment = _docker_model("NetworkAttachment", NETWORK_FIELDS,
                                  Name=(str, Field(alias="Name", min_length=1)),
                                  Driver=(str, Field("", alias="Driver")))

_PORT = re.compile(r"^(?:(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?P<host>\d+)?:)?"
                   r"(?P<container>\d+)(?:/(?P<protocol>tcp|udp|sctp))?$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$", re.IGNORECASE)
_RESTART = re.compile(r"^(no|always|unless-stopped|on-failure)(?::(\d+))?$")


def _port(value: Any) -> Any:
    """``"127.0.0.1:8080:80/tcp"``, ``"8080:80"`` or ``"80"`` as a :class:`Port` object."""
    if not isinstance(value, str):
        return value
    match = _PORT.match(value.strip())
    if match is None:
        raise ValueError(f"expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL], "
                         f"got {value!r}")
    found: dict[str, Any] = {"Container": int(match["container"])}
    if match["host"]:
        found["Host"] = int(match["host"])
    if match["ip"]:
        found["HostIP"] = match["ip"].strip("[]")
    if match["protocol"]:
        found["Protocol"] = match["protocol"]
    return found


def _size(value: Any) -> Any:
    """``"64m"`` → bytes (Docker's binary units b, k, m, g, t); numbers are bytes."""
    if not isinstance(value, str):
        return value
    match = _SIZE.match(value.strip())
    if match is None:
        raise ValueError(f"expected a size such as 64m, 1g or a number of bytes, got {value!r}")
    scale = 1024 ** "bkmgt".index((match[2] or "b").lower())
    return int(float(match[1]) * scale)


def _restart(value: Any) -> Any:
    if value is None or (isinstance(value, str) and _RESTART.match(value)):
        return value
    raise ValueError(f"expected no, always, unless-stopped, on-failure or on-failure:N, "
                     f"got {value!r}")


class Port(Wire):
    """A published port (the string form is Docker's ``-p``)."""

    container: int = Field(ge=1, le=65535)
    """The port inside the container."""
    host: int = Field(0, ge=0, le=65535)
    """The port on the engine's host; 0 lets Docker pick one."""
    host_ip: str = Field("127.0.0.1", alias="HostIP")
    """The host address to publish on (loopback unless given)."""
    protocol: Literal["tcp", "udp", "sctp"] = "tcp"
    """tcp, udp or sctp."""


class Mount(Wire):
    """A bind mount, volume or tmpfs."""

    type: Literal["bind", "volume", "tmpfs"] = "bind"
    """bind (a host path), volume (a named volume) or tmpfs."""
    source: str = ""
    """The host path or volume name (none for tmpfs)."""
    target: str = Field(min_length=1)
    """The path inside the container."""
    read_only: bool = False
    """Mount read-only."""


class Resources(Wire):
    """Limits on what the container may use."""

    memory: Annotated[int | None, BeforeValidator(_size)] = Field(None, ge=0)
    """Memory limit: bytes or a size such as ``64m``."""
    cpus: float | None = Field(None, alias="CPUs", gt=0)
    """CPU limit in cores (``0.5``: half a core)."""
    pids_limit: int | None = Field(None, ge=1)
    """Most processes at once."""


class Properties(Wire):
    """What one container is: our layout's fields, or the original's (``Config`` …)."""

    image: str | None = Field(None, min_length=1)
    """The image to run; never pulled: it must be on the engine."""
    command: Words | None = None
    """The command (Docker's Cmd); the image's when unset."""
    entrypoint: Words | None = None
    """The entrypoint; the image's when unset."""
    env: dict[str, str] | None = None
    """Environment variables."""
    ports: list[Annotated[Port, BeforeValidator(_port)]] | None = None
    """Published ports."""
    mounts: list[Mount] | None = None
    """Bind mounts, volumes, tmpfs."""
    resources: Resources | None = None
    """Memory, CPU and process limits."""
    network: str | None = Field(None, min_length=1)
    """The network to join (Docker's network mode): ``bridge`` unless set."""
    restart_policy: Annotated[str | None, BeforeValidator(_restart)] = None
    """Docker's restart policy: no, always, unless-stopped, on-failure[:N]."""
    stop_timeout: durations.Seconds = Field(10.0, ge=0)
    """How long Destroy lets the container stop after SIGTERM before it is killed."""
    user: str | None = None
    """The user to run as."""
    working_dir: str | None = None
    """The working directory."""
    tags: dict[str, str] | None = None
    """Extra labels (both layouts)."""
    config: DockerConfig | None = None  # type: ignore[valid-type]
    """(v0.5 layout) Docker's container.Config."""
    host_config: DockerHostConfig | None = None  # type: ignore[valid-type]
    """(v0.5 layout) Docker's container.HostConfig."""
    network_attachments: list[NetworkAttachment] | None = None  # type: ignore[valid-type]
    """(v0.5 layout) Networks to join, created when missing."""


OURS = ("Image", "Command", "Entrypoint", "Env", "Ports", "Mounts", "Resources", "Network",
        "RestartPolicy", "StopTimeout", "User", "WorkingDir")
"""The fields of our layout that the original's does not take."""


@dataclass(frozen=True)
class Container:
    """A container in the Engine API's terms, before the plugin adds labels, name and Init."""

    config: dict[str, Any]
    """``container.Config`` with Docker's names (no ``Labels``)."""
    host_config: dict[str, Any]
    """``container.HostConfig``."""
    tags: dict[str, str] = field(default_factory=dict)
    """``Properties.Tags``."""
    networks: list[tuple[str, str]] = field(default_factory=list)
    """Networks to join after create, as (name, driver)."""


def parse(raw: Any) -> Properties:
    """``raw`` as :class:`Properties`, or ``InvalidError`` naming each bad field."""
    props = properties.parse(Properties, raw)
    given = {Properties.model_fields[name].alias or name for name in props.model_fields_set}
    if props.config is not None or props.host_config is not None \
            or props.network_attachments is not None:
        mixed = [name for name in OURS if name in given]
        if mixed:
            raise validation.invalid([validation.Problem(
                f"Properties.{name}", "not with Config/HostConfig (the v0.5 layout): "
                "set it there in Docker's terms, or use our layout alone") for name in mixed])
        if props.config is None:
            raise errors.InvalidError("Properties.Config: required with HostConfig or "
                                      "NetworkAttachments (Config.Image names the image)",
                                      field="Properties.Config")
    elif props.image is None:
        raise errors.InvalidError("Properties.Image: required (the image to run; or "
                                  "Config.Image in the v0.5 layout)", field="Properties.Image")
    return props


def container(props: Properties) -> Container:
    """What ``props`` asks for, in the Engine API's terms."""
    tags = dict(props.tags or {})
    if props.config is not None:
        config = props.config.model_dump(by_alias=True, exclude_unset=True)
        config.pop("Labels", None)  # the original replaced them with the tags, as we do
        given = (props.host_config.model_dump(by_alias=True, exclude_unset=True)
                 if props.host_config is not None else {})
        networks = [(net.Name, net.Driver) for net in props.network_attachments or []]
        return Container(config=config, host_config=given, tags=tags, networks=networks)
    return _ours(props, tags)


def _ours(props: Properties, tags: dict[str, str]) -> Container:
    config: dict[str, Any] = {"Image": props.image, "StopTimeout": math.ceil(props.stop_timeout)}
    host: dict[str, Any] = {}
    _put(config, Cmd=_argv(props.command), Entrypoint=_argv(props.entrypoint), User=props.user,
         WorkingDir=props.working_dir)
    if props.env:
        config["Env"] = [f"{key}={value}" for key, value in props.env.items()]
    if props.ports:
        config["ExposedPorts"] = {_port_key(port): {} for port in props.ports}
        bindings: dict[str, list[dict[str, str]]] = {}
        for port in props.ports:
            bindings.setdefault(_port_key(port), []).append(
                {"HostIp": port.host_ip, "HostPort": str(port.host) if port.host else ""})
        host["PortBindings"] = bindings
    if props.mounts:
        host["Mounts"] = [{"Type": m.type, "Source": m.source, "Target": m.target,
                           "ReadOnly": m.read_only} for m in props.mounts]
    if props.resources is not None:
        limits = props.resources
        _put(host, Memory=limits.memory, PidsLimit=limits.pids_limit,
             NanoCpus=round(limits.cpus * 1e9) if limits.cpus is not None else None)
    _put(host, NetworkMode=props.network, RestartPolicy=_restart_policy(props.restart_policy))
    return Container(config=config, host_config=host, tags=tags)


def _argv(words: Words | None) -> list[str] | None:
    return ["/bin/sh", "-c", words] if isinstance(words, str) else words


def _port_key(port: Port) -> str:
    return f"{port.container}/{port.protocol}"


def _restart_policy(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    name, _, count = text.partition(":")
    return {"Name": "" if name == "no" else name, "MaximumRetryCount": int(count or 0)}


def _put(target: dict[str, Any], **values: Any) -> None:
    """Set the values that are not ``None``."""
    target.update((key, value) for key, value in values.items() if value is not None)
