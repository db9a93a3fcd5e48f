"""instance-host: each instance a host with its own address, hostname and process tree on a
private network whose bridge lives in a switch namespace; reached only from inside it."""

from __future__ import annotations

import ipaddress
import os
import pathlib
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from infrakit import errors, testing
from infrakit.plugins.instance.host import network, plugin
from infrakit.spi import instance

pytestmark = pytest.mark.slow

NETWORK = ipaddress.IPv4Network("10.77.0.0/24")
WEB = """www=$(mktemp -d) && hostname > $www/index.html
exec /bin/busybox httpd -f -p 8080 -h $www"""
"""A host's boot script: a web server answering its hostname (busybox's: Python's
http.server looks its own name up in DNS, which no host here can reach)."""


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network, UTS and PID namespaces)"
    for tool in ("ip", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} not found: install iproute2 and util-linux"
    if not pathlib.Path("/bin/busybox").exists():
        return "/bin/busybox not found: run scripts/deps-docker.sh as root"
    return None


@pytest.fixture
def hosts(tmp_path: pathlib.Path) -> Iterator[plugin.Plugin]:
    """A plugin on its own switch; every host and the switch removed after the test."""
    reason = _missing()
    if reason is not None:
        testing.missing_engine(f"instance-host tests: {reason}")
    changes: list[int] = []
    made = plugin.Plugin(tmp_path / "hosts", network_=NETWORK,
                         switch=f"ikh-t{secrets.token_hex(3)}",
                         on_change=lambda: changes.append(1))
    made.changes = changes  # type: ignore[attr-defined]
    try:
        yield made
    finally:
        for found in made.describe_instances({}):
            made.destroy(found.id)
        made.close()
        network.remove_switch(made.switch)
        leftovers = [name for name in os.listdir(network.NETNS)
                     if name.startswith(made.switch)] if network.NETNS.exists() else []
        assert leftovers == []


def web(logical_id: str | None = None, **props: object) -> instance.Spec:
    return instance.Spec.model_validate({
        "Init": WEB, "LogicalID": logical_id,
        "Tags": {"infrakit.group": "g"}, "Properties": props or None})


def inside(namespace: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside a network namespace (never from the root namespace)."""
    return subprocess.run(["nsenter", f"--net={network.NETNS / namespace}", *argv],
                          capture_output=True, text=True, timeout=20, check=False)


def fetch(namespace: str, address: str) -> str | None:
    done = inside(namespace, sys.executable, "-c",
                  "import sys, urllib.request; print(urllib.request.urlopen("
                  f"'http://{address}:8080/', timeout=2).read().decode().strip())")
    return done.stdout.strip() if done.returncode == 0 else None


def host_pid1(hosts: plugin.Plugin, iid: str) -> int:
    """The host's PID 1 as the root namespace sees it: the child of its unshare."""
    record = hosts._records[iid]
    children = pathlib.Path(f"/proc/{record.pid}/task/{record.pid}/children").read_text()
    return int(children.split()[0])


def test_hosts_have_their_own_address_name_and_reach_each_other(
        hosts: plugin.Plugin) -> None:
    pet = hosts.provision(web("10.77.0.5"))
    cattle = hosts.provision(web(Hostname="cattle-1"))
    found = {d.id: d for d in hosts.describe_instances({"infrakit.group": "g"})}
    assert found[pet].tags[plugin.ADDRESS_TAG] == "10.77.0.5"
    assert found[pet].logical_id == "10.77.0.5"
    other = found[cattle].tags[plugin.ADDRESS_TAG]
    assert other == "10.77.0.2"  # the lowest free: .1 is the switch's

    switch = hosts.switch
    assert testing.wait_for(lambda: fetch(switch, "10.77.0.5"), what="the pet's server",
                            timeout=30) == "10.77.0.5"
    assert testing.wait_for(lambda: fetch(switch, other), what="the cattle's server",
                            timeout=30) == "cattle-1"
    # host to host, over the switch
    assert fetch(hosts.namespace(pet), other) == "cattle-1"
    # the root namespace has no route to the private network: nothing was added there
    assert str(NETWORK.network_address) not in subprocess.run(
        ["ip", "route"], capture_output=True, text=True, check=True).stdout


def test_a_killed_host_is_gone_with_every_process_and_its_namespace(
        hosts: plugin.Plugin) -> None:
    iid = hosts.provision(web())
    testing.wait_for(lambda: fetch(hosts.switch, "10.77.0.2"), what="the server", timeout=30)
    pid1 = host_pid1(hosts, iid)
    server = [int(p) for p in pathlib.Path(f"/proc/{pid1}/task/{pid1}/children").read_text()
              .split()]
    assert server

    os.kill(pid1, signal.SIGKILL)  # the host goes down

    testing.wait_for(lambda: not hosts.describe_instances({}) or None,
                     what="the host gone from Describe", timeout=30)
    assert not network.exists(hosts.namespace(iid))
    assert all(not pathlib.Path(f"/proc/{pid}").exists() or
               "Z" in pathlib.Path(f"/proc/{pid}/stat").read_text().split()[2]
               for pid in server)
    assert testing.wait_until(lambda: bool(hosts.changes), timeout=10)  # type: ignore[attr-defined]


def test_destroy_stops_the_host_and_removes_its_namespace(hosts: plugin.Plugin) -> None:
    iid = hosts.provision(web())
    testing.wait_for(lambda: fetch(hosts.switch, "10.77.0.2"), what="the server", timeout=30)
    port = network.port_name(hosts.namespace(iid))
    assert port in inside(hosts.switch, "ip", "-o", "link").stdout

    hosts.destroy(iid)

    assert hosts.describe_instances({}) == []
    assert not network.exists(hosts.namespace(iid))
    # the kernel tears a deleted namespace's veth down in the background
    testing.wait_for(lambda: port not in inside(hosts.switch, "ip", "-o", "link").stdout or None,
                     what="the host's veth gone from the switch", timeout=30)
    assert fetch(hosts.switch, "10.77.0.2") is None
    with pytest.raises(errors.NotFoundError):
        hosts.destroy(iid)


def test_a_replacement_on_the_same_address_announces_its_new_mac(
        hosts: plugin.Plugin) -> None:
    hosts.provision(web())  # another host keeps the bridge up (its entries stay)
    first = hosts.provision(web("10.77.0.7"))
    testing.wait_for(lambda: fetch(hosts.switch, "10.77.0.7"), what="the first host", timeout=30)
    assert neighbour(hosts.switch, "10.77.0.7") == mac(hosts.namespace(first))
    hosts.destroy(first)

    second = hosts.provision(web("10.77.0.7"))

    # No traffic is sent to the address: the switch learns the new MAC from the host alone
    # (else its entry keeps the old MAC until it expires, up to a minute).
    assert testing.wait_for(lambda: neighbour(hosts.switch, "10.77.0.7") == mac(
        hosts.namespace(second)) or None, what="the switch's entry updated", timeout=10)
    assert fetch(hosts.switch, "10.77.0.7") == "10.77.0.7"
    # the switch keeps its own MAC while hosts come and go (the hosts' gateway entries hold)
    assert mac(hosts.switch, network.BRIDGE) == network.bridge_mac(hosts.switch)


def neighbour(namespace: str, address: str) -> str | None:
    """The MAC that ``namespace`` has for ``address`` (its ARP entry), if any."""
    words = inside(namespace, "ip", "neigh", "show", address).stdout.split()
    return words[words.index("lladdr") + 1] if "lladdr" in words else None


def mac(namespace: str, link: str = network.LINK) -> str:
    """The MAC of ``link`` in ``namespace`` (``ip``: sysfs would show the root namespace's)."""
    words = inside(namespace, "ip", "-o", "link", "show", link).stdout.split()
    return words[words.index("link/ether") + 1]


def test_a_new_plugin_adopts_the_running_hosts(hosts: plugin.Plugin) -> None:
    iid = hosts.provision(web("10.77.0.9"))
    hosts.close()
    again = plugin.Plugin(hosts.directory, network_=NETWORK, switch=hosts.switch)
    try:
        assert [d.id for d in again.describe_instances({})] == [iid]
        assert testing.wait_for(lambda: fetch(again.switch, "10.77.0.9"),
                                what="the adopted host's server", timeout=30) == "10.77.0.9"
        with pytest.raises(errors.ConflictError, match=r"10\.77\.0\.9 is taken"):
            again.provision(web("10.77.0.9"))
    finally:
        again.close()
    hosts._adopt()  # the fixture's plugin cleans up


@pytest.mark.parametrize(("spec", "error", "words"), [
    (web("10.78.0.5"), errors.InvalidError, r"Spec\.LogicalID: 10\.78\.0\.5 is not a host "
                                            r"address of the network 10\.77\.0\.0/24"),
    (web("10.77.0.255"), errors.InvalidError, r"Spec\.LogicalID"),
    (web(Hostname="-bad name"), errors.InvalidError, r"Properties\.Hostname"),
    (web(Memory=3), errors.InvalidError, r"Properties\.Memory"),
])
def test_bad_specs_are_refused_naming_the_field_and_leave_nothing(
        hosts: plugin.Plugin, spec: instance.Spec, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        hosts.provision(spec)
    assert hosts.describe_instances({}) == []
    assert [name for name in os.listdir(network.NETNS)
            if name.startswith(hosts.switch + "-")] == []
