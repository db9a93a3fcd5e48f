"""Managers on two "hosts" over mutual TLS: the CLI asks the standby, the leader answers.

Real processes on one real etcd: on host A (its own plugins dir) ``instance-file``,
``flavor-vanilla``, the backend ``group-1`` and the manager ``mgr-1``; on host B (another
plugins dir) ``group-2`` and ``mgr-2``. Each manager listens on its own 127.0.0.1 port with
its own certificate from ``infrakit.pki``; the leader publishes its URL in etcd. The CLI,
with a third, empty plugins dir and a client certificate, talks only to mgr-2's URL: its
commit and its reads go through mgr-2 to mgr-1 over TCP.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from infrakit import pki, testing, testing_cluster, testing_etcd
from infrakit.rpc import sync

TTL = "2s"
SPEC = {"ID": "web", "Properties": {
    "Allocation": {"Size": 2},
    "Instance": {"Plugin": "instance-file", "Properties": {"Note": "tcp"}},
    "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Init": ["echo tcp"]}}}}


class Hosts:
    """Two hosts' processes, the pki, and the CLI's empty plugins dir."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.pki = root / "pki"
        self.a = testing_cluster.Cluster(root / "a", root / "logs-a")
        self.b = testing_cluster.Cluster(root / "b", root / "logs-b")
        self.ports = dict(zip(("mgr-1", "mgr-2"), testing.free_ports(2), strict=True))
        self.laptop = root / "laptop"
        self.laptop.mkdir(mode=0o700)

    def url(self, manager: str) -> str:
        return f"https://127.0.0.1:{self.ports[manager]}"

    def manager(self, host: testing_cluster.Cluster, name: str, etcd_flags: list[str]) -> None:
        host.backend(name.replace("mgr", "group"), manager=name, poll="200ms", fence="250ms")
        host.manager(name, backend=name.replace("mgr", "group"), fence="250ms",
                     election=etcd_flags,
                     extra=["--listen", f"127.0.0.1:{self.ports[name]}",
                            "--tls-dir", str(self.pki / name)])

    def infrakit(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(self.laptop),
               "INFRAKIT_HOST": self.url("mgr-2"),
               "INFRAKIT_TLS_DIR": str(self.pki / "client")}
        return subprocess.run([sys.executable, "-m", "infrakit.cli.main", *args], env=env,
                              capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory,
          etcd_member: testing_etcd.EtcdProcess) -> Iterator[Hosts]:
    """Both hosts, started once for this module (the tests only read, or commit once)."""
    tmp_path = tmp_path_factory.mktemp("hosts")
    prefix = f"test/{uuid.uuid4().hex[:12]}/"
    both = Hosts(tmp_path)
    pki.init(both.pki)
    for name in ("mgr-1", "mgr-2"):
        pki.issue(both.pki, name, ips=["127.0.0.1"])
    pki.issue(both.pki, "client", usage="client")
    etcd_flags = ["etcd", "--endpoint", etcd_member.url, "--lease-ttl", TTL,
                  "--leader-key", prefix + "leader", "--store-prefix", prefix + "configs/"]
    try:
        both.a.start("instance-file", testing_cluster.entry_point(
            "instance-file", "--dir", str(tmp_path / "instances")))
        both.a.start("flavor-vanilla", testing_cluster.entry_point("flavor-vanilla"))
        both.manager(both.a, "mgr-1", etcd_flags)
        testing.wait_for(lambda: sync.Client(both.a.plugins_dir / "mgr-1", timeout=2.0).call(
            "Manager.IsLeader", {})["Leader"] or None, what="mgr-1 leading", timeout=30)
        both.manager(both.b, "mgr-2", etcd_flags)
        yield both
    finally:
        both.b.stop_all()
        both.a.stop_all()


def test_the_cli_at_the_standby_commits_and_reads_through_the_leader_over_tls(
        hosts: Hosts) -> None:
    spec = hosts.root / "web.json"
    spec.write_text(json.dumps(SPEC))
    leader = hosts.infrakit("manager", "leader", "-o", "json")
    assert leader.returncode == 0, leader.stderr
    info = json.loads(leader.stdout)
    assert info["Leader"]["Name"] == "mgr-1"
    assert info["Leader"]["URL"] == hosts.url("mgr-1"), "the leader publishes its URL"
    assert info["Manager"] == "mgr-2" and info["IsLeader"] is False

    committed = hosts.infrakit("group", "commit", str(spec))
    assert committed.returncode == 0, committed.stderr
    assert committed.stdout == "Committed web: Managing 2 instances\n"

    def two_members() -> list[str] | None:
        found = hosts.infrakit("group", "describe", "web", "-q")
        ids = found.stdout.split("\n") if found.returncode == 0 else []
        members = [line for line in ids if line.startswith("instance-")]
        return members if len(members) == 2 else None

    members = testing.wait_for(two_members, what="two members read through mgr-2", timeout=60)
    on_disk = sorted(p.name for p in (hosts.root / "instances").iterdir())
    assert sorted(m.split()[0] for m in members) == on_disk
    assert not (hosts.b.plugins_dir / "mgr-1").exists(), "host B reaches mgr-1 only by URL"


def test_a_manager_refuses_a_caller_whose_certificate_is_from_another_ca(
        hosts: Hosts, tmp_path: pathlib.Path) -> None:
    pki.init(tmp_path / "other")
    pki.issue(tmp_path / "other", "client", usage="client")
    env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(hosts.laptop),
           "INFRAKIT_TLS_DIR": str(tmp_path / "other" / "client")}
    refused = subprocess.run([sys.executable, "-m", "infrakit.cli.main", "--host",
                              hosts.url("mgr-1"), "group", "ls"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 6
    assert refused.stderr.startswith(
        f"infrakit: group: cannot reach plugin at {hosts.url('mgr-1')}/group: TLS: "
        "certificate verify failed")
    testing.wait_for(lambda: "TLS handshake with 127.0.0.1:" in
                     (hosts.root / "logs-a" / "mgr-1.log").read_text(),
                     what="mgr-1's log line", timeout=10)
