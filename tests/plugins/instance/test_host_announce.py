"""The gratuitous ARP a host sends at boot: its frame, byte for byte."""

from __future__ import annotations

import ipaddress

from infrakit.plugins.instance.host import announce


def test_the_frame_is_a_broadcast_arp_request_for_the_hosts_own_address() -> None:
    mac = bytes.fromhex("02aabbccddee")
    frame = announce.frame(mac, ipaddress.IPv4Address("10.77.0.7"))
    assert frame.hex() == (
        "ffffffffffff" "02aabbccddee" "0806"  # Ethernet: broadcast, from the host, ARP
        "0001" "0800" "06" "04" "0001"        # Ethernet/IPv4, sizes 6 and 4, a request
        "02aabbccddee" "0a4d0007"             # sender: the host's MAC and address
        "000000000000" "0a4d0007")            # target: no MAC, the same address
