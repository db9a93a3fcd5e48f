"""A host's announcement of its addresses: one gratuitous ARP per interface, as a machine's
network setup sends when its link comes up (RFC 5227's ARP announcement).

A replacement host takes over its predecessor's address with a new MAC. Without the
announcement, the switch and the other hosts keep sending to the old MAC until their
neighbour entries expire, which takes up to a minute. Run by :mod:`.init` inside the host's
network namespace, before the boot script.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import socket
import struct
import time

_SIOCGIFFLAGS = 0x8913
_SIOCGIFADDR = 0x8915
_SIOCGIFHWADDR = 0x8927
_IFF_LOOPBACK = 0x8
_IFF_RUNNING = 0x40
_ETH_P_ARP = 0x0806
_BROADCAST = b"\xff" * 6


def frame(mac: bytes, address: ipaddress.IPv4Address) -> bytes:
    """The Ethernet frame of a gratuitous ARP request: sender and target are ``address``."""
    ip = address.packed
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, ip, b"\0" * 6, ip)
    return _BROADCAST + mac + struct.pack("!H", _ETH_P_ARP) + arp


def interfaces(probe: socket.socket) -> list[tuple[str, bytes, ipaddress.IPv4Address]]:
    """(name, MAC, IPv4 address) of each interface but loopback that has an address."""
    found = []
    for _, name in socket.if_nameindex():
        if _flags(probe, name) & _IFF_LOOPBACK:
            continue
        try:
            mac = _ioctl(probe, _SIOCGIFHWADDR, name)[18:24]
            raw = _ioctl(probe, _SIOCGIFADDR, name)[20:24]
        except OSError:
            continue  # no IPv4 address
        found.append((name, mac, ipaddress.IPv4Address(raw)))
    return found


def announce(*, wait: float = 2.0) -> list[str]:
    """Announce every address of this namespace's interfaces; each interface is waited for
    until it runs (its carrier is up), at most ``wait`` seconds. Returns what was announced,
    as ``name address`` lines. An interface that does not come up in time, or that cannot be
    announced on (no raw sockets, say), is left out: the host boots all the same."""
    announced = []
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for name, mac, address in interfaces(probe):
            if not _running(probe, name, wait):
                continue
            try:
                with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
                    raw.bind((name, _ETH_P_ARP))
                    raw.send(frame(mac, address))
            except OSError:
                continue
            announced.append(f"{name} {address}")
    return announced


def _running(probe: socket.socket, name: str, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while not _flags(probe, name) & _IFF_RUNNING:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _flags(probe: socket.socket, name: str) -> int:
    return int(struct.unpack("H", _ioctl(probe, _SIOCGIFFLAGS, name)[16:18])[0])


def _ioctl(probe: socket.socket, request: int, name: str) -> bytes:
    return fcntl.ioctl(probe.fileno(), request, struct.pack("256s", name.encode()[:15]))
