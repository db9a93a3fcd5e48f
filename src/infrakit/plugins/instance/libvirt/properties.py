"""instance-libvirt's ``Properties``: what one virtual machine is made of.

Parsed strictly by :func:`parse` (an unknown key is refused with its path and the closest known
key, :mod:`infrakit.plugins.properties`), then checked against the host by :func:`check`
(files that must exist). The plugin calls both from Validate and Provision. v0.5's keys keep
their meaning (``Kernel``, ``Ramdisk``, ``Cmdline``, ``CmdlineFile``, ``CPUs``, ``Memory`` in
MiB, ``DomainType``; ``MetadataStoragePool`` is accepted and unused: the Init seed is a file of
ours, not a pool volume), and v0.5's example ``Disk`` (MiB) now sizes the instance's disk::

    {"Kernel": "/boot/vmlinuz", "Ramdisk": "/srv/initrd.gz", "Cmdline": "console=ttyS0",
     "Image": "/srv/debian.qcow2", "Disk": 4096, "CPUs": 1, "Memory": 256,
     "Networks": [{"Type": "user", "Forwards": [{"GuestPort": 80}]}],
     "Metadata": {"local-hostname": "web"}, "StopTimeout": "10s"}
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from infrakit import durations, errors
from infrakit.plugins import properties
from infrakit.spi.wire import Wire

USER: Literal["user"] = "user"
NETWORK: Literal["network"] = "network"
MAX_NICS = 8
"""User-mode cards sit on fixed PCI slots 0x18 to 0x1f (see ``domain``)."""


class Forward(Wire):
    """One host port forwarded to a guest port (user-mode networking's ``hostfwd``)."""

    guest_port: int = Field(ge=1, le=65535)
    """The port in the guest."""
    host_port: int = Field(0, ge=0, le=65535)
    """The port on the host; 0 (the default) picks a free one per instance."""
    address: str = "127.0.0.1"
    """The host address to listen on: loopback unless said otherwise."""
    protocol: Literal["tcp", "udp"] = "tcp"
    """``tcp`` or ``udp``."""

    @field_validator("address")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError(f"expected an IPv4 address such as 127.0.0.1, got {value!r}"
                             ) from None
        return value


class Network(Wire):
    """One network card: user-mode (QEMU's own NAT, no bridge) or a libvirt network."""

    type: Literal["user", "network"] = USER
    """``user`` (the default) or ``network``."""
    source: str | None = None
    """The libvirt network's name, for ``network``."""
    forwards: list[Forward] | None = None
    """Host ports forwarded into the guest (``user`` only)."""

    @model_validator(mode="after")
    def _consistent(self) -> Network:
        if self.type == NETWORK and not self.source:
            raise ValueError("a network of Type network needs Source (a libvirt network)")
        if self.type == NETWORK and self.forwards:
            raise ValueError("Forwards are for Type user; a libvirt network has its own")
        if self.type == USER and self.source:
            raise ValueError("Source is for Type network")
        return self


class Properties(Wire):
    """One virtual machine. Either ``Kernel`` (direct kernel boot) or ``Image`` is required."""

    kernel: str | None = None
    """A kernel to boot directly."""
    ramdisk: str | None = None
    """Its initrd."""
    cmdline: str | None = None
    """Its command line (default ``console=ttyS0``)."""
    cmdline_file: str | None = None
    """A file holding the command line, read at provision time."""
    image: str | None = None
    """A disk image to boot from: each instance runs on a copy-on-write qcow2 overlay of it."""
    disk: int | None = Field(None, ge=1)
    """The instance's disk in MiB: the overlay's size (at least the image's), or a blank disk
    without ``Image``."""
    cpus: int = Field(1, ge=1, alias="CPUs")
    """Virtual CPUs."""
    memory: int = Field(512, ge=16)
    """Memory in MiB."""
    domain_type: Literal["", "kvm", "qemu"] = ""
    """``kvm``, ``qemu`` (TCG), or ``""``: kvm when the host offers it."""
    tb_cache: int | None = Field(None, ge=1, alias="TBCache")
    """MiB of QEMU's translated-code cache, under TCG only; QEMU's default (up to 1 GiB)
    when unset. A small guest runs as well with 32 and its QEMU holds ~30 MiB less."""
    networks: list[Network] | None = Field(None, max_length=MAX_NICS)
    """Network cards (at most 8); one user-mode card without forwards when unset."""
    metadata: dict[str, str] | None = None
    """Extra keys of the NoCloud ``meta-data`` (``local-hostname`` …)."""
    stop_timeout: durations.Seconds = Field(10.0, ge=0)
    """How long Destroy waits for the guest to power off before it pulls the plug."""
    metadata_storage_pool: str | None = None
    """v0.5's pool for the Init volume; accepted and unused."""

    @model_validator(mode="after")
    def _boots(self) -> Properties:
        if not self.kernel and not self.image:
            raise ValueError("expected Kernel (direct kernel boot) or Image (a disk to boot)")
        if self.cmdline is not None and self.cmdline_file is not None:
            raise ValueError("expected Cmdline or CmdlineFile, not both")
        return self

    def nics(self) -> list[Network]:
        """The network cards, the default one included."""
        return list(self.networks) if self.networks is not None else [Network()]


def parse(raw: Any) -> Properties:
    """``raw`` as :class:`Properties`; ``InvalidError`` naming every bad field."""
    return properties.parse(Properties, raw)


def check(wanted: Properties) -> Properties:
    """``wanted`` if the files it names can be read now; ``InvalidError`` naming the field."""
    for field, path in (("Kernel", wanted.kernel), ("Ramdisk", wanted.ramdisk),
                        ("CmdlineFile", wanted.cmdline_file), ("Image", wanted.image)):
        if path is None:
            continue
        if not os.path.isabs(path):
            raise errors.InvalidError(f"Properties.{field}: expected an absolute path, "
                                      f"got {path!r}", field=f"Properties.{field}")
        if not os.path.isfile(path):
            raise errors.InvalidError(f"Properties.{field}: no such file: {path}",
                                      field=f"Properties.{field}")
    return wanted


def cmdline(wanted: Properties) -> str:
    """The kernel command line: ``Cmdline``, the contents of ``CmdlineFile``, or the default."""
    if wanted.cmdline_file is not None:
        try:
            with open(wanted.cmdline_file) as text:
                return text.read().strip()
        except OSError as exc:
            raise errors.InvalidError(f"Properties.CmdlineFile: {exc.strerror}: "
                                      f"{wanted.cmdline_file}",
                                      field="Properties.CmdlineFile") from None
    return wanted.cmdline if wanted.cmdline is not None else "console=ttyS0"
