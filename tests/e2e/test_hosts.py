"""A group of hosts end to end: infrakit-instance-host makes each member a host of its own
(address = logical ID, hostname, process tree), the group replaces a host that goes down."""

from __future__ import annotations

import ipaddress
import json
import os
import pathlib
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from stack import Stack, wait_for

from infrakit import testing
from infrakit.plugins.instance.host import network, plugin

NETWORK = "10.78.0.0/24"
PETS = ["10.78.0.11", "10.78.0.12", "10.78.0.13"]


@pytest.fixture
def hosts_stack(tmp_path: pathlib.Path) -> Iterator[Stack]:
    if os.geteuid() != 0 or not pathlib.Path("/bin/busybox").exists():
        testing.missing_engine("host tests: need root and /bin/busybox (scripts/deps-docker.sh)")
    sockets_dir = pathlib.Path(tempfile.mkdtemp(prefix="ikh-"))
    stack = Stack(sockets_dir, tmp_path)
    switch = f"ikh-e{secrets.token_hex(3)}"
    try:
        stack.start("instance-host", "infrakit-instance-host", "--dir", str(tmp_path / "hosts"),
                    "--network", NETWORK, "--switch", switch, "--notify", "group", "--log", "3")
        stack.start("flavor-vanilla", "infrakit-flavor-vanilla", "--log", "2")
        stack.start("group", "infrakit-group-default", "--poll-interval", "1s", "--log", "3")
        stack.wait_ready()
        stack.switch = switch  # type: ignore[attr-defined]
        yield stack
    finally:
        stack.stop()
        # Hosts outlive their plugin (as processes do instance-process): end them here.
        left = plugin.Plugin(tmp_path / "hosts", network_=ipaddress.IPv4Network(NETWORK),
                             switch=switch)
        for found in left.describe_instances({}):
            left.destroy(found.id)
        left.close()
        network.remove_switch(switch)
        shutil.rmtree(sockets_dir, ignore_errors=True)


def spec(gid: str) -> dict[str, Any]:
    return {"ID": gid, "Properties": {
        "Allocation": {"LogicalIDs": PETS},
        "Instance": {"Plugin": "instance-host", "Properties": {"StopTimeout": "2s"}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Init": [
            "www=$(mktemp -d) && hostname > $www/index.html",
            "exec /bin/busybox httpd -f -p 8080 -h $www"]}}}}


def fetch(switch: str, address: str) -> str | None:
    """GET a host's page from inside the switch namespace."""
    done = subprocess.run(
        ["nsenter", f"--net={network.NETNS / switch}", sys.executable, "-c",
         "import urllib.request; print(urllib.request.urlopen("
         f"'http://{address}:8080/', timeout=2).read().decode().strip())"],
        capture_output=True, text=True, timeout=20, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def members(stack: Stack, gid: str) -> dict[str, str]:
    """{logical ID: instance ID} of the group's members."""
    return {m["LogicalID"]: m["ID"] for m in stack.members(gid)}


def test_a_group_of_hosts_converges_and_replaces_a_host_that_goes_down(
        hosts_stack: Stack) -> None:
    stack, switch = hosts_stack, hosts_stack.switch  # type: ignore[attr-defined]
    stack.commit(spec("hosts"))
    first = wait_for(lambda: (found := members(stack, "hosts")) and len(found) == 3 and found,
                     what="three hosts", timeout=60)
    for address in PETS:  # each host answers on its logical ID with its own name
        assert wait_for(lambda a=address: fetch(switch, a), what=f"host {address}",
                        timeout=30) == address

    victim = first["10.78.0.12"]
    leader = _pid_of(stack, victim)
    pid1 = int(pathlib.Path(f"/proc/{leader}/task/{leader}/children").read_text().split()[0])
    os.kill(pid1, signal.SIGKILL)  # the host goes down

    again = wait_for(lambda: (found := members(stack, "hosts")) and len(found) == 3
                     and found["10.78.0.12"] != victim and found,
                     what="the host replaced", timeout=60)
    assert again["10.78.0.11"] == first["10.78.0.11"]
    assert wait_for(lambda: fetch(switch, "10.78.0.12"), what="the new host",
                    timeout=30) == "10.78.0.12"

    stack.cli("group", "destroy", "hosts")
    wait_for(lambda: not [n for n in os.listdir(network.NETNS)
                          if n.startswith(switch + "-")] or None,
             what="every host's namespace removed", timeout=30)


def _pid_of(stack: Stack, iid: str) -> int:
    """The pid instance-host recorded for ``iid`` (its state file)."""
    record = json.loads((stack.work / "hosts" / f"{iid}.json").read_text())
    return int(record["Pid"])
