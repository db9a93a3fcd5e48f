"""What instance-libvirt keeps in a domain's ``<metadata>``: the instance's record.

Tags, the logical ID, the host ports forwarded to it, the files it owns and how long its
guest gets to power off live in one element of our namespace, as v0.5 kept them (same
namespace URI and element, same ``<logicalid>`` and ``<tag><key/><value/></tag>``), so the
domain carries its own state and the plugin keeps none: a restarted plugin, or another one on
the same libvirt, sees the same instances. Pure: :func:`element` writes the XML,
:func:`parse` reads it back (v0.5's extra ``<metadata-disk>`` is skipped).

Each forward also shows as a tag, ``libvirt.forward.<protocol>.<guest port>`` =
``<address>:<host port>`` (:func:`forward_tags`), so a health probe can find a guest whose host
port was picked for it: ``http://{{ instance.Tags['libvirt.forward.tcp.80'] }}/``.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Mapping

NAMESPACE = "https://github.com/docker/infrakit"
"""v0.5's namespace URI for the element."""
KEY = "infrakit"
"""The element's name, and the prefix libvirt writes its namespace with."""
FORWARD_TAG = "libvirt.forward"
"""Prefix of the tags that show forwards."""


@dataclasses.dataclass(frozen=True, slots=True)
class Forward:
    """A forward as set up: ``address:host_port`` on the host to ``guest_port``."""

    protocol: str
    address: str
    host_port: int
    guest_port: int

    @property
    def tag(self) -> str:
        return f"{FORWARD_TAG}.{self.protocol}.{self.guest_port}"

    @property
    def target(self) -> str:
        return f"{self.address}:{self.host_port}"


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """One instance's state, as its domain carries it."""

    logical_id: str | None = None
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    forwards: tuple[Forward, ...] = ()
    files: tuple[str, ...] = ()
    """Files made for this instance alone (overlay, seed, console log): Destroy removes them."""
    stop_timeout: float = 10.0
    created: float = 0.0
    """Seconds since the epoch."""

    def with_tags(self, labels: Mapping[str, str]) -> Record:
        return dataclasses.replace(self, tags={**self.tags, **labels})


def element(record: Record, *, prefixed: bool = True) -> str:
    """``record`` as our element: prefixed with its namespace for a domain's ``<metadata>``,
    or bare for ``virDomainSetMetadata`` (which adds the namespace itself)."""
    root = ET.Element(f"{KEY}:{KEY}" if prefixed else KEY)
    if prefixed:
        root.set(f"xmlns:{KEY}", NAMESPACE)
    if record.logical_id is not None:
        ET.SubElement(root, "logicalid").text = record.logical_id
    for key, value in sorted(record.tags.items()):
        tag = ET.SubElement(root, "tag")
        ET.SubElement(tag, "key").text = key
        ET.SubElement(tag, "value").text = value
    for forward in record.forwards:
        ET.SubElement(root, "forward", protocol=forward.protocol, address=forward.address,
                      host=str(forward.host_port), guest=str(forward.guest_port))
    for path in record.files:
        ET.SubElement(root, "file").text = path
    ET.SubElement(root, "stop-timeout").text = repr(record.stop_timeout)
    ET.SubElement(root, "created").text = repr(record.created)
    return ET.tostring(root, encoding="unicode")


def parse(text: str) -> Record:
    """Our element (as libvirt hands it back, namespaced or not) as a :class:`Record`;
    ``ValueError`` when it is not one."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from None
    if _local(root.tag) != KEY:
        raise ValueError(f"expected <{KEY}>, got <{_local(root.tag)}>")
    logical_id, tags, forwards, files = None, {}, [], []
    stop_timeout, created = 10.0, 0.0
    for child in root:
        name = _local(child.tag)
        if name == "logicalid":
            logical_id = child.text or ""
        elif name == "tag":
            parts = {_local(part.tag): part.text or "" for part in child}
            tags[parts.get("key", "")] = parts.get("value", "")
        elif name == "forward":
            forwards.append(Forward(protocol=child.get("protocol", "tcp"),
                                    address=child.get("address", "127.0.0.1"),
                                    host_port=int(child.get("host", "0")),
                                    guest_port=int(child.get("guest", "0"))))
        elif name == "file" and child.text:
            files.append(child.text)
        elif name == "stop-timeout":
            stop_timeout = float(child.text or 10.0)
        elif name == "created":
            created = float(child.text or 0.0)
    return Record(logical_id=logical_id, tags=tags, forwards=tuple(forwards),
                  files=tuple(files), stop_timeout=stop_timeout, created=created)


def forward_tags(record: Record) -> dict[str, str]:
    """The tags that show ``record``'s forwards."""
    return {forward.tag: forward.target for forward in record.forwards}


def _local(tag: str) -> str:
    """``{uri}name`` or ``prefix:name`` → ``name``."""
    return tag.rpartition("}")[2].rpartition(":")[2]
