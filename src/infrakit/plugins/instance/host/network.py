"""The hosts' private network: one switch namespace holding a bridge, a veth per host.

Every step is an ``ip`` command (iproute2). The bridge lives inside the switch namespace, the
host ends of the veths inside the hosts' namespaces; nothing is added to the root namespace.
The switch's bridge has the network's first address, so a process entered into the switch
namespace (``nsenter --net=/run/netns/<switch>``) reaches every host.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import pathlib
import subprocess
from collections.abc import Collection

from infrakit import errors

log = logging.getLogger(__name__)

NETNS = pathlib.Path("/run/netns")
BRIDGE = "br0"
LINK = "eth0"
"""The host's end of its veth, as a machine would name its first interface."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """One ``ip`` command; a failure is a ``PermanentError`` with ip's own words."""
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                              check=False)
    except FileNotFoundError:
        raise errors.PermanentError("ip not found: install Debian's iproute2") from None
    except subprocess.TimeoutExpired:
        raise errors.TemporaryError(f"ip {' '.join(args)}: no answer in 30s") from None
    if check and done.returncode != 0:
        raise errors.PermanentError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def exists(namespace: str) -> bool:
    return (NETNS / namespace).exists()


def gateway(network: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The switch's own address: the network's first."""
    return next(network.hosts())


def ensure_switch(switch: str, network: ipaddress.IPv4Network) -> None:
    """The switch namespace with its bridge up, made once."""
    if exists(switch):
        return
    ip("netns", "add", switch)
    try:
        ip("-n", switch, "link", "set", "lo", "up")
        # A bridge takes its ports' lowest MAC unless given its own: a host joining or
        # leaving would change it, and the switch would forget every neighbour entry.
        ip("-n", switch, "link", "add", BRIDGE, "address", bridge_mac(switch), "type",
           "bridge")
        ip("-n", switch, "addr", "add", f"{gateway(network)}/{network.prefixlen}",
           "dev", BRIDGE)
        ip("-n", switch, "link", "set", BRIDGE, "up")
    except errors.InfrakitError:
        ip("netns", "delete", switch, check=False)
        raise
    log.info("switch %s: bridge %s on %s", switch, BRIDGE, network)


def bridge_mac(switch: str) -> str:
    """The switch bridge's own MAC: locally administered, from the switch's name."""
    digest = hashlib.sha1(switch.encode()).digest()
    return ":".join(f"{byte:02x}" for byte in (0x02, *digest[:5]))


def remove_switch(switch: str) -> None:
    if exists(switch):
        ip("netns", "delete", switch, check=False)


def attach(host: str, *, switch: str, address: ipaddress.IPv4Address,
           network: ipaddress.IPv4Network, hostname: str) -> None:
    """A namespace for ``host`` joined to the switch with ``address``."""
    ip("netns", "add", host)
    port = port_name(host)
    try:
        ip("-n", host, "link", "set", "lo", "up")
        ip("-n", switch, "link", "add", port, "type", "veth", "peer", "name", LINK,
           "netns", host)
        ip("-n", switch, "link", "set", port, "master", BRIDGE, "up")
        ip("-n", host, "addr", "add", f"{address}/{network.prefixlen}", "dev", LINK)
        ip("-n", host, "link", "set", LINK, "up")
        ip("-n", host, "route", "add", "default", "via", str(gateway(network)))
    except errors.InfrakitError:
        detach(host)
        raise
    log.debug("host %s (%s): %s on %s", host, hostname, address, switch)


def detach(host: str) -> None:
    """Remove ``host``'s namespace; its veth (both ends) goes with it."""
    if exists(host):
        ip("netns", "delete", host, check=False)


def port_name(host: str) -> str:
    """The switch's end of a host's veth: at most 15 characters, as Linux wants."""
    return "v" + hashlib.sha1(host.encode()).hexdigest()[:12]


def allocate(network: ipaddress.IPv4Network, *, wanted: str | None,
             used: Collection[str]) -> ipaddress.IPv4Address:
    """``wanted`` (a pet's logical ID) when it is an address of ``network``, else the lowest
    free address (the gateway is the switch's)."""
    taken = {*used, str(gateway(network))}
    if wanted is not None:
        try:
            address = ipaddress.IPv4Address(wanted)
        except ValueError:
            address = None
        if address is not None:
            if address not in network or address in (network.network_address,
                                                     network.broadcast_address):
                raise errors.InvalidError(
                    f"Spec.LogicalID: {wanted} is not a host address of the network "
                    f"{network}", field="Spec.LogicalID")
            if str(address) in taken:
                raise errors.ConflictError(f"Spec.LogicalID: {wanted} is taken on {network}")
            return address
    for address in network.hosts():
        if str(address) not in taken:
            return address
    raise errors.TemporaryError(f"no free address left on {network}")
