"""The libvirt domain XML of one instance, from what Provision decided. Pure.

Called by the plugin's Provision with a :class:`Layout`. Choices made here, and why:

- Direct kernel boot when ``Kernel`` is set, else the first disk boots. ACPI is on, so that a
  graceful Destroy (the power button) reaches the guest.
- Disks are virtio (``vda`` …): the instance's overlay or blank disk first, then the
  attachments, then the Init seed (read-only). Virtio keeps the guest's drivers few.
- User-mode network cards are QEMU's ``-netdev user`` with ``hostfwd`` rules, passed through
  ``<qemu:commandline>``: libvirt 9.0's ``<interface type='user'>`` takes ``<portForward>``
  only with the passt backend. Their PCI slots are fixed high (0x18 on), clear of the slots
  libvirt hands out from 0x02. Libvirt marks such a domain "tainted: custom-argv"; that is
  the price of forwards without a bridge.
- A guest that powers off or crashes stays defined but stopped (``destroy``), so the plugin
  can still read its record and clean its files; a reboot restarts it.
- The serial console is logged to a file of the instance's (kept until Destroy).
"""

from __future__ import annotations

import dataclasses
import hashlib
import xml.etree.ElementTree as ET

from infrakit.plugins.instance.libvirt import metadata
from infrakit.plugins.instance.libvirt import properties as props

QEMU_NAMESPACE = "http://libvirt.org/schemas/domain/qemu/1.0"
FIRST_NIC_SLOT = 0x18
MAX_USER_NICS = 0x20 - FIRST_NIC_SLOT


@dataclasses.dataclass(frozen=True, slots=True)
class Disk:
    """A disk of the domain: a file, or a volume of a libvirt storage pool."""

    path: str | None = None
    pool: str | None = None
    volume: str | None = None
    format: str | None = "raw"
    """``None``: libvirt reads it off the pool's volume."""
    readonly: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Nic:
    """A network card as set up: its kind, its libvirt network, its forwards."""

    type: str
    source: str | None = None
    forwards: tuple[metadata.Forward, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    """Everything the domain is made of."""

    name: str
    domain_type: str
    wanted: props.Properties
    record: metadata.Record
    cmdline: str = ""
    disks: tuple[Disk, ...] = ()
    nics: tuple[Nic, ...] = ()
    console_log: str | None = None
    title: str | None = None


def xml(layout: Layout) -> str:
    """The ``<domain>`` document for ``defineXML``."""
    root = ET.Element("domain", type=layout.domain_type)
    root.set("xmlns:qemu", QEMU_NAMESPACE)
    ET.SubElement(root, "name").text = layout.name
    if layout.title:
        ET.SubElement(root, "title").text = layout.title
    meta = ET.SubElement(root, "metadata")
    meta.append(ET.fromstring(metadata.element(layout.record)))
    ET.SubElement(root, "memory", unit="MiB").text = str(layout.wanted.memory)
    ET.SubElement(root, "vcpu").text = str(layout.wanted.cpus)
    _os(root, layout)
    features = ET.SubElement(root, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    if layout.domain_type == "qemu" and layout.wanted.tb_cache is not None:
        tcg = ET.SubElement(features, "tcg")
        ET.SubElement(tcg, "tb-cache", unit="MiB").text = str(layout.wanted.tb_cache)
    ET.SubElement(root, "on_poweroff").text = "destroy"
    ET.SubElement(root, "on_reboot").text = "restart"
    ET.SubElement(root, "on_crash").text = "destroy"
    devices = ET.SubElement(root, "devices")
    for index, disk in enumerate(layout.disks):
        _disk(devices, disk, target=_disk_name(index))
    for nic in layout.nics:
        if nic.type == props.NETWORK:
            interface = ET.SubElement(devices, "interface", type="network")
            ET.SubElement(interface, "source", network=nic.source or "")
            ET.SubElement(interface, "model", type="virtio")
    _console(devices, layout.console_log)
    ET.SubElement(devices, "memballoon", model="none")
    _user_nics(root, layout)
    return ET.tostring(root, encoding="unicode")


def _os(root: ET.Element, layout: Layout) -> None:
    os_element = ET.SubElement(root, "os")
    ET.SubElement(os_element, "type").text = "hvm"
    if layout.wanted.kernel:
        ET.SubElement(os_element, "kernel").text = layout.wanted.kernel
        if layout.wanted.ramdisk:
            ET.SubElement(os_element, "initrd").text = layout.wanted.ramdisk
        ET.SubElement(os_element, "cmdline").text = layout.cmdline
    else:
        ET.SubElement(os_element, "boot", dev="hd")


def _disk(devices: ET.Element, disk: Disk, *, target: str) -> None:
    kind = "file" if disk.path is not None else "volume"
    element = ET.SubElement(devices, "disk", type=kind, device="disk")
    driver = ET.SubElement(element, "driver", name="qemu")
    if disk.format is not None:
        driver.set("type", disk.format)
    if disk.path is not None:
        ET.SubElement(element, "source", file=disk.path)
    else:
        ET.SubElement(element, "source", pool=disk.pool or "", volume=disk.volume or "")
    ET.SubElement(element, "target", dev=target, bus="virtio")
    if disk.readonly:
        ET.SubElement(element, "readonly")


def _disk_name(index: int) -> str:
    """``vda`` … ``vdz``, ``vdaa`` …"""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return "vd" + letters


def _console(devices: ET.Element, log_path: str | None) -> None:
    serial = ET.SubElement(devices, "serial", type="pty")
    if log_path:
        ET.SubElement(serial, "log", file=log_path, append="off")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")


def _user_nics(root: ET.Element, layout: Layout) -> None:
    users = [nic for nic in layout.nics if nic.type == props.USER]
    if not users:
        return
    commandline = ET.SubElement(root, "qemu:commandline")
    for index, nic in enumerate(users):
        netdev = f"user,id=ik{index}" + "".join(
            f",hostfwd={forward.protocol}:{forward.address}:{forward.host_port}-"
            f":{forward.guest_port}" for forward in nic.forwards)
        device = (f"virtio-net-pci,netdev=ik{index},addr={FIRST_NIC_SLOT + index:#x},"
                  f"mac={mac(layout.name, index)}")
        for arg in ("-netdev", netdev, "-device", device):
            ET.SubElement(commandline, "qemu:arg", value=arg)


def mac(name: str, index: int) -> str:
    """A stable locally administered MAC in QEMU's range for card ``index`` of ``name``."""
    digest = hashlib.sha256(f"{name}/{index}".encode()).digest()
    return "52:54:00:" + ":".join(f"{byte:02x}" for byte in digest[:3])
