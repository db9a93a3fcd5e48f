"""Managers on separate hosts, for the e2e test and ``bench/hosts_failover.py`` (a test
harness: production code never imports it).

    with testing_hosts.HostCluster(root) as hosts:   # needs root, etcd, iproute2, util-linux
        hosts.start()                                # three hosts booted, a leader elected
        hosts.infrakit("group", "commit", "web.json", via=hosts.addresses[0])
        hosts.kill_host(hosts.leader())              # kill -9 of that host's PID 1

``infrakit-instance-host`` (its own process, on a switch namespace of its own) makes each
host; a host's Init is its boot script, which starts on the host's address: an etcd member
of a three-member cluster, ``instance-file`` and ``flavor-vanilla``, the backend group
plugin and ``infrakit-manager`` (etcd election and store, ``--listen`` with mutual TLS),
each on the host's own plugins dir. The instance-file plugins share one directory: a
stand-in for a cloud's API, which every host sees alike, so a new leader's backend finds the
members the old one made. Everything is reached from inside the switch namespace only;
leaving the ``with`` block destroys every host and removes the switch, also after a failure.

:class:`GroupedHosts` makes the same hosts as the pets of the managers' own group
(flavor-combo of flavor-vanilla and flavor-etcd on instance-host), so a new leader's backend
replaces a dead manager host.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from infrakit import errors, pki, testing, testing_cluster, testing_etcd
from infrakit.rpc import sync

NETWORK = "10.79.0.0/24"
MANAGER_PORT = 24864
CLIENT_PORT = 2379
PEER_PORT = 2380
BOOT_TIMEOUT = 90.0
"""Seconds for three hosts to boot and elect a leader on a busy 2-core machine."""


def missing() -> str | None:
    """Why these hosts cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network, UTS and PID namespaces)"
    for tool in ("ip", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} not found: install iproute2 and util-linux"
    try:
        testing_etcd.etcd_binary()
    except errors.NotFoundError as exc:
        return exc.message
    return None


class HostCluster:
    """Three hosts each running etcd, a manager, its backend and the groups' plugins."""

    def __init__(self, root: pathlib.Path, *, network: str = NETWORK, size: int = 3,
                 ttl: int = 3, fence: str = "1s", poll: str = "1s") -> None:
        self.root = root
        self.network = ipaddress.IPv4Network(network)
        self.addresses = [str(self.network.network_address + 11 + i) for i in range(size)]
        self.ttl, self.fence, self.poll = ttl, fence, poll
        # Unix socket paths must stay under 108 bytes: short dirs of our own.
        self.sockets = pathlib.Path(tempfile.mkdtemp(prefix="ikx-"))
        self.switch = f"ikx-{self.sockets.name[-6:]}"
        self.instances = root / "instances"
        self.pki = root / "pki"
        self.control = testing_cluster.Cluster(self.sockets / "control", root / "logs")
        self.hosts: dict[str, str] = {}
        """Address -> the host's instance ID."""

    def __enter__(self) -> HostCluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- setting up ---------------------------------------------------------------------

    def start(self) -> None:
        """The certificates, the hosts' plugin, the hosts booted; returns once one leads and
        every manager answers."""
        pki.init(self.pki)
        for address in self.addresses:
            pki.issue(self.pki, self.manager_name(address), ips=[address])
        pki.issue(self.pki, "client", usage="client")
        self.instances.mkdir(mode=0o700, exist_ok=True)
        (self.sockets / "cli").mkdir(mode=0o700)
        self.control.start("instance-host", testing_cluster.entry_point(
            "instance-host", "--dir", str(self.root / "hosts"), "--network", str(self.network),
            "--switch", self.switch, "--log", "3"))
        for address in self.addresses:
            self.boot(address)
        testing.wait_for(self.leader, what="a manager leading", timeout=BOOT_TIMEOUT)
        # a standby's manager may start after the leader's: a test talks to standbys first
        testing.wait_for(lambda: all(self.is_leader(a) is not None for a in self.addresses),
                         what="every manager answering", timeout=BOOT_TIMEOUT)

    def boot(self, address: str) -> str:
        """Provision the host at ``address`` (its LogicalID); returns its instance ID."""
        spec = {"LogicalID": address, "Tags": {"role": "manager"}, "Init": self.script(address),
                "Properties": {"StopTimeout": "3s"}}
        answer = sync.Client(self.control.plugins_dir / "instance-host", timeout=60.0).call(
            "Instance.Provision", {"Type": "", "Spec": spec})
        self.hosts[address] = str(answer["ID"])
        return self.hosts[address]

    @staticmethod
    def manager_name(address: str) -> str:
        return "mgr-" + address.rsplit(".", 1)[1]

    def url(self, address: str) -> str:
        return f"https://{address}:{MANAGER_PORT}"

    def home(self, address: str) -> pathlib.Path:
        """The host's own state and logs (on the shared filesystem, for the test to read)."""
        return self.root / "host" / address

    def script(self, address: str) -> str:
        """The host's boot script: etcd, wait for it, then the plugins and the manager."""
        home, plugins = self.home(address), self.sockets / address.rsplit(".", 1)[1]
        home.mkdir(parents=True, exist_ok=True)
        plugins.mkdir(mode=0o700, exist_ok=True)
        python, me = sys.executable, self.manager_name(address)
        cluster = ",".join(f"{self.manager_name(a)}=http://{a}:{PEER_PORT}"
                           for a in self.addresses)
        mine = f"http://{address}:{CLIENT_PORT}"
        endpoints = ",".join([mine, *(f"http://{a}:{CLIENT_PORT}" for a in self.addresses
                                      if a != address)])
        etcd = [testing_etcd.etcd_binary(), "--name", me, "--data-dir", str(home / "etcd"),
                "--listen-client-urls", mine, "--advertise-client-urls", mine,
                "--listen-peer-urls", f"http://{address}:{PEER_PORT}",
                "--initial-advertise-peer-urls", f"http://{address}:{PEER_PORT}",
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", self.switch, "--pre-vote=true"]
        ready = (f"import urllib.request as u; u.urlopen('{mine}/health', timeout=1)")
        plugins_ = [
            ("instance-file", testing_cluster.entry_point(
                "instance-file", "--dir", str(self.instances), "--log", "3")),
            ("flavor-vanilla", testing_cluster.entry_point("flavor-vanilla", "--log", "3")),
            ("group-stateless", [python, "-m", "infrakit.group.serve", "--name",
                                 "group-stateless", "--manager", me, "--poll-interval",
                                 self.poll, "--fence-interval", self.fence, "--log", "4"])]
        manager = [python, "-m", "infrakit.manager.serve", "--name", me,
                   "--proxy-for-group", "group-stateless", "--fence-interval", self.fence,
                   "--log", "4", "--listen", f"{address}:{MANAGER_PORT}",
                   "--tls-dir", str(self.pki / me),
                   "etcd", "--endpoint", endpoints, "--lease-ttl", f"{self.ttl}s"]
        lines = [f"cd {_q(home)}",
                 f"export INFRAKIT_PLUGINS_DIR={_q(plugins)} INFRAKIT_HOME={_q(home)}",
                 f"{_cmd(etcd)} >> {_q(home / 'etcd.log')} 2>&1 &",
                 # a member answers /health only once the cluster has a leader
                 f"until {_cmd([python, '-c', ready])} 2>/dev/null; do sleep 0.2; done"]
        lines += [f"{_cmd(argv)} >> {_q(home / (name + '.log'))} 2>&1 &"
                  for name, argv in plugins_]
        lines.append(f"exec {_cmd(manager)} >> {_q(home / 'manager.log')} 2>&1")
        return "\n".join(lines)

    # -- the user's view ----------------------------------------------------------------

    def inside(self, *argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the switch namespace (never from the root namespace)."""
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.switch}", *argv],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def infrakit(self, *args: str, via: str,
                 timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``infrakit --host <via's manager> --tls-dir <client> ARGS`` from the switch."""
        return self.inside("env", f"INFRAKIT_PLUGINS_DIR={self.sockets / 'cli'}",
                           sys.executable, "-m", "infrakit.cli.main", "--timeout", "20s",
                           "--host", self.url(via), "--tls-dir", str(self.pki / "client"),
                           *args, timeout=timeout)

    def leader_info(self, via: str) -> dict[str, Any] | None:
        """``manager leader -o json`` asked at ``via``; None when it does not answer."""
        done = self.infrakit("manager", "--name", self.manager_name(via), "leader",
                             "-o", "json", via=via, timeout=30.0)
        if done.returncode != 0:
            return None
        found: dict[str, Any] = json.loads(done.stdout)
        return found

    def leader(self, among: Sequence[str] | None = None) -> str | None:
        """The address of the host in ``among`` whose manager says it leads (asked on the
        managers' unix sockets: quick enough to poll; the CLI's view is :meth:`leader_info`)."""
        for address in among or self.addresses:
            if self.is_leader(address):
                return address
        return None

    def watch_leader(self, among: Sequence[str]) -> subprocess.Popen[str]:
        """A poller inside the switch asking the managers in ``among`` ``IsLeader`` every
        50 ms; it prints ``ready`` after its first round, then ``<epoch seconds> <address>``
        when one of them leads, and exits (the same clock as ours: namespaces share it)."""
        code = (
            "import sys, time\n"
            "from infrakit import errors\n"
            "from infrakit.rpc import sync\n"
            f"urls = {[(a, self.url(a)) for a in among]!r}\n"
            "first = True\n"
            "while True:\n"
            "    for address, url in urls:\n"
            "        try:\n"
            "            if sync.Client(url, timeout=0.5).call('Manager.IsLeader', {})['Leader']:\n"
            "                print(time.time(), address, flush=True); sys.exit(0)\n"
            "        except errors.InfrakitError:\n"
            "            pass\n"
            "    if first:\n"
            "        print('ready', flush=True); first = False\n"
            "    time.sleep(0.05)\n")
        return subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.switch}", "env",
             f"INFRAKIT_TLS_DIR={self.pki / 'client'}", sys.executable, "-c", code],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            text=True)

    def etcd(self, address: str, path: str, body: dict[str, Any] | None = None, *,
             timeout: float = 5.0) -> dict[str, Any]:
        """POST ``body`` to the etcd member at ``address`` (its JSON gateway, ``path`` such
        as ``/v3/cluster/member/list``), from inside the switch namespace; ``Unavailable``
        when it does not answer."""
        done = self.inside(sys.executable, "-c", _ETCD_CALL, f"http://{address}:{CLIENT_PORT}"
                           + path, json.dumps(body or {}), str(timeout), timeout=30.0)
        if done.returncode != 0:
            raise errors.Unavailable(f"etcd at {address}: {done.stderr.strip()[-300:]}")
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def etcd_members(self, via: str) -> list[str]:
        """The etcd cluster's member names, as the member at ``via`` lists them."""
        listed = self.etcd(via, "/v3/cluster/member/list")["members"]
        return sorted(str(m.get("name")) for m in listed)

    def raft_leader(self) -> str | None:
        """The address of the etcd member that is the raft leader, as the members say."""
        for address in self.addresses:
            with contextlib.suppress(errors.Unavailable):
                said = self.etcd(address, "/v3/maintenance/status")
                if said["header"]["member_id"] == said.get("leader"):
                    return address
        return None

    def move_raft_leader(self, to: str) -> None:
        """Make the etcd member at ``to`` the raft leader (etcd's MoveLeader, asked of the
        current leader); returns once the members say so."""
        current = self.raft_leader()
        if current == to:
            return
        if current is None:
            raise errors.Unavailable("etcd has no raft leader to hand over")
        target = self.etcd(to, "/v3/maintenance/status")["header"]["member_id"]
        self.etcd(current, "/v3/maintenance/transfer-leadership", {"targetID": target})
        testing.wait_for(lambda: self.raft_leader() == to, what=f"etcd's raft leader at {to}",
                         timeout=30.0)

    def instance_files(self) -> dict[str, dict[str, Any]]:
        """The shared instance-file directory: ID -> record, files being written skipped."""
        found = {}
        for path in self.instances.iterdir():
            if path.name.startswith("."):
                continue
            with contextlib.suppress(OSError, ValueError):
                found[path.name] = json.loads(path.read_text())
        return found

    def kill_host(self, address: str) -> None:
        """``kill -9`` of the host's PID 1: the host goes down with every process on it."""
        record = json.loads((self.root / "hosts" / f"{self.hosts[address]}.json").read_text())
        pid = int(record["Pid"])  # the unshare; its only child is the host's PID 1
        children = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        os.kill(int(children[0]), signal.SIGKILL)

    def cut(self, address: str, *, off: bool = True) -> None:
        """Take the host's link down (``off``) or up again, inside its own namespace: the
        host is partitioned from the others, its processes keep running."""
        from infrakit.plugins.instance.host import network

        # instance-host's name for a host's namespace (plugin.Plugin.namespace)
        namespace = f"{self.switch}-{self.hosts[address].removeprefix('instance-')[:12]}"
        network.ip("-n", namespace, "link", "set", network.LINK, "down" if off else "up")

    def is_leader(self, address: str) -> bool | None:
        """The host's manager's ``IsLeader``, asked on its unix socket (a file: reachable
        whatever the network does); None when it does not answer."""
        where = self.sockets / address.rsplit(".", 1)[1] / self.manager_name(address)
        try:
            return bool(sync.Client(where, timeout=2.0).call("Manager.IsLeader", {})["Leader"])
        except errors.InfrakitError:
            return None

    def log(self, address: str, name: str, size: int = 3000) -> str:
        try:
            return (self.home(address) / f"{name}.log").read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"

    # -- tearing down -------------------------------------------------------------------

    def close(self) -> None:
        """Stop the hosts' plugin, end every host it made, remove the switch."""
        from infrakit.plugins.instance.host import network, plugin

        try:
            self.control.stop_all()
            if network.exists(self.switch) or (self.root / "hosts").exists():
                # Hosts outlive their plugin: adopt them in-process to end them.
                left = plugin.Plugin(self.root / "hosts", network_=self.network,
                                     switch=self.switch)
                try:
                    for found in left.describe_instances({}):
                        with contextlib.suppress(errors.InfrakitError):
                            left.destroy(found.id)
                finally:
                    left.close()
        finally:
            network.remove_switch(self.switch)
            shutil.rmtree(self.sockets, ignore_errors=True)


class GroupedHosts(HostCluster):
    """The same three manager hosts, made as members of the managers' own group.

    A host is a pet of the group ``managers`` (logical IDs: the three addresses, instance
    plugin ``instance-host``), whose flavor is ``flavor-combo`` of ``flavor-vanilla`` (one
    Init line: the manager start script, in the background, waiting for etcd) and
    ``flavor-etcd`` (its member, joined through the member API; its Init ``exec``s etcd).
    :meth:`start` provisions the first three hosts with what that flavor prepares for them
    (tagged ``bootstrap``), so the group committed later adopts them; from then on the
    leader's backend makes every replacement.
    """

    GROUP = "managers"
    _prepared: dict[str, dict[str, Any]]

    def spec(self) -> dict[str, Any]:
        """The managers' group: commit it to the managers once they lead."""
        start = self.root / "manager.sh"
        # instance-host names a host by its LogicalID: the address, read without templates
        # (the CLI renders a spec file as one)
        me = "$(cat /proc/sys/kernel/hostname)"
        line = f'sh {_q(start)} "{me}" >> {_q(self.root)}/boot-"{me}".log 2>&1 &'

        return {"ID": self.GROUP, "Properties": {
            "Allocation": {"LogicalIDs": list(self.addresses)},
            "Instance": {"Plugin": "instance-host", "Properties": {"StopTimeout": "3s"}},
            "Flavor": {"Plugin": "flavor-combo", "Properties": {"Flavors": [
                {"Plugin": "flavor-vanilla",
                 "Properties": {"Init": [line], "Tags": {"role": "manager"}}},
                {"Plugin": "flavor-etcd", "Properties": {
                    "Binary": testing_etcd.etcd_binary(),
                    "DataDir": str(self.root / "etcd-data")}}]}},
            "Health": {"Interval": "1s", "StartupGrace": "90s", "UnhealthyAfter": "3s"}}}

    def start(self) -> None:
        self._write_start_script()
        self._prepared = {}
        super().start()

    def prepare(self, address: str) -> dict[str, Any]:
        """The spec of the host at ``address`` as the managers' group would make it, tagged
        ``bootstrap``: the flavor runs inside the switch namespace, where the members are."""
        props = self.spec()["Properties"]
        request = {"Flavor": props["Flavor"]["Properties"], "Spec": {
            "Properties": props["Instance"]["Properties"], "LogicalID": address,
            "Tags": {"infrakit.group": self.GROUP, "infrakit.config_sha": "bootstrap"}},
            "Allocation": {"LogicalIDs": self.addresses},
            "Index": {"Group": self.GROUP, "Sequence": self.addresses.index(address)}}
        done = self.inside(sys.executable, "-c", _PREPARE, json.dumps(request), timeout=120.0)
        if done.returncode != 0:
            raise errors.Unavailable(f"preparing {address}: {done.stderr.strip()[-600:]}")
        prepared: dict[str, Any] = json.loads(done.stdout)
        return prepared

    def boot(self, address: str) -> str:
        """Provision the host at ``address`` with its prepared spec."""
        if not self._prepared:
            # All prepared before any boots, as a first commit would be: two members up
            # would elect a leader, and the third would be prepared to join, not found.
            self._prepared = {a: self.prepare(a) for a in self.addresses}
        answer = sync.Client(self.control.plugins_dir / "instance-host", timeout=60.0).call(
            "Instance.Provision", {"Type": "", "Spec": self._prepared[address]})
        self.hosts[address] = str(answer["ID"])
        return self.hosts[address]

    def refresh(self) -> dict[str, str]:
        """Address -> instance ID of the hosts instance-host lists now (after the group
        replaced one, the new one's)."""
        listed = sync.Client(self.control.plugins_dir / "instance-host", timeout=30.0).call(
            "Instance.DescribeInstances", {"Type": "", "Tags": {}})
        self.hosts = {str(found["Tags"]["host.address"]): str(found["ID"])
                      for found in listed["Descriptions"] or []
                      if "host.address" in found.get("Tags", {})}
        return dict(self.hosts)

    def etcd_started(self, via: str) -> list[str]:
        """The names of the started members (a name and client URLs), as ``via`` lists
        them."""
        listed = self.etcd(via, "/v3/cluster/member/list")["members"]
        return sorted(str(m["name"]) for m in listed if m.get("name") and m.get("clientURLs"))

    def etcd_healthy(self, address: str) -> bool:
        """True when the etcd member at ``address`` answers ``/health`` true (it does once
        it has joined a cluster that has a leader)."""
        try:
            return self.etcd(address, "/health", timeout=2.0).get("health") == "true"
        except errors.Unavailable:
            return False

    def _write_start_script(self) -> None:
        """``manager.sh ADDRESS``: wait for the host's etcd member, then start the plugins
        (the instance-host socket hard-linked in: a plugin is a socket in the plugins dir)
        and exec the manager. One file for every host, as a host image would carry it."""
        python = sys.executable
        plugins = [
            ("instance-file", _cmd(testing_cluster.entry_point(
                "instance-file", "--dir", str(self.instances), "--log", "3"))),
            ("flavor-vanilla", _cmd(testing_cluster.entry_point("flavor-vanilla", "--log", "3"))),
            ("flavor-etcd", _cmd(testing_cluster.entry_point("flavor-etcd", "--log", "3"))),
            ("flavor-combo", _cmd(testing_cluster.entry_point("flavor-combo", "--log", "3"))),
            ("group-stateless", _cmd([python, "-m", "infrakit.group.serve", "--name",
                                      "group-stateless", "--poll-interval", self.poll,
                                      "--fence-interval", self.fence, "--log", "4"])
             + ' --manager "$me"')]
        ready = ("import sys, urllib.request as u; "
                 "u.urlopen('http://' + sys.argv[1] + ':2379/health', timeout=1)")
        lines = [
            "set -e", 'addr=$1; me="mgr-${addr##*.}"',
            f'home={_q(self.root / "host")}/"$addr"; plugins={_q(self.sockets)}/"${{addr##*.}}"',
            'mkdir -p "$home" "$plugins"; chmod 700 "$plugins"; cd "$home"',
            'export INFRAKIT_PLUGINS_DIR="$plugins" INFRAKIT_HOME="$home"',
            f'ln -f {_q(self.control.plugins_dir / "instance-host")} "$plugins/instance-host"',
            f'endpoints="http://$addr:{CLIENT_PORT}"',
            f"for a in {' '.join(self.addresses)}; do",
            f'  [ "$a" = "$addr" ] || endpoints="$endpoints,http://$a:{CLIENT_PORT}"; done',
            f'until {_cmd([python, "-c", ready])} "$addr" 2>/dev/null; do sleep 0.2; done']
        lines += [f'{argv} >> "$home/{name}.log" 2>&1 &' for name, argv in plugins]
        lines.append(
            f"exec {_cmd([python, '-m', 'infrakit.manager.serve'])} --name \"$me\" "
            f"--proxy-for-group group-stateless --fence-interval {self.fence} --log 4 "
            f'--listen "$addr:{MANAGER_PORT}" --tls-dir {_q(self.pki)}/"$me" '
            f'etcd --endpoint "$endpoints" --lease-ttl {self.ttl}s >> "$home/manager.log" 2>&1')
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "manager.sh").write_text("\n".join(lines) + "\n")


_ETCD_CALL = """
import json, sys, urllib.request
url, body, timeout = sys.argv[1:]
# /health is a GET; the v3 JSON gateway takes POSTs
request = urllib.request.Request(url, data=None if url.endswith("/health") else body.encode(),
                                 headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(request, timeout=float(timeout)).read().decode())
"""
"""One call to an etcd member, run inside the switch: URL, JSON body, timeout in argv."""

_PREPARE = """
import asyncio, json, sys
from infrakit.plugins.flavor import combo, vanilla
from infrakit.plugins.flavor.etcd import plugin as etcd
from infrakit.spi import flavor, instance
req = json.loads(sys.argv[1])
flavors = {"flavor-vanilla": vanilla.Plugin(), "flavor-etcd": etcd.Plugin()}
spec = asyncio.run(combo.Plugin(flavors.__getitem__).prepare(
    req["Flavor"], instance.Spec.model_validate(req["Spec"]),
    flavor.AllocationMethod.model_validate(req["Allocation"]),
    flavor.Index.model_validate(req["Index"])))
print(json.dumps(spec.model_dump(mode="json", by_alias=True, exclude_none=True)))
"""
"""The managers' flavor run in-process: a request in argv[1], the prepared spec out."""


def _q(path: pathlib.Path) -> str:
    return shlex.quote(str(path))


def _cmd(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(part) for part in argv)


def wait_for_leader(hosts: HostCluster, *, among: Sequence[str], timeout: float) -> str:
    """Poll the managers in ``among`` until one of them leads; its address."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = hosts.leader(among)
        if found is not None and found in among:
            return found
        time.sleep(0.1)
    raise errors.CallTimeout(f"no manager among {', '.join(among)} led within {timeout:g}s")
