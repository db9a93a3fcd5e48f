"""Plugin processes on TCP with mutual TLS: every plugin takes ``--listen``, a group spec
may name remote plugins by URL, and ``--listen`` without a certificate does not start.

Real processes throughout (``instance-file``, ``flavor-vanilla``, the group plugin, the
manager), certificates from ``infrakit.pki``, 127.0.0.1 and free ports only.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from infrakit import pki, testing, testing_cluster, testing_stack
from infrakit.rpc import sync, tls
from infrakit.spi import group


@pytest.fixture
def authority(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "pki"
    pki.init(root)
    for name in ("instance-file", "flavor-vanilla"):
        pki.issue(root, name, usage="server")
    pki.issue(root, "group")  # listens, and calls remote plugins
    return root


@pytest.fixture
def local(plugins_dir: pathlib.Path, tmp_path: pathlib.Path
          ) -> Iterator[testing_cluster.Cluster]:
    with testing_cluster.Cluster(plugins_dir, tmp_path / "logs") as processes:
        yield processes


def answers(url: str, authority: pathlib.Path) -> bool:
    settings = tls.Settings(files=tls.Files.in_dir(authority / "group", origin="test"))
    return bool(sync.Client(url, timeout=2.0, settings=settings).implements())


@pytest.mark.parametrize("name", ["instance-file", "flavor-vanilla", "group"])
def test_every_plugin_takes_listen_and_answers_over_mutual_tls(
        local: testing_cluster.Cluster, authority: pathlib.Path, tmp_path: pathlib.Path,
        name: str) -> None:
    port = testing.free_port()
    tcp = ["--listen", f"127.0.0.1:{port}", "--tls-dir", str(authority / name)]
    if name == "group":
        local.start(name, [sys.executable, "-m", "infrakit.group.serve", "--name", name, *tcp])
    else:
        extra = ["--dir", str(tmp_path / "state")] if name == "instance-file" else []
        local.start(name, testing_cluster.entry_point(name, *extra, *tcp))
    assert testing.wait_for(lambda: answers(f"https://127.0.0.1:{port}/{name}", authority),
                            what=f"{name} over TLS", timeout=20)
    assert f"plugin {name} listening at https://127.0.0.1:{port} (mutual TLS" in \
        local.log_tail(name, size=5000)


@pytest.mark.parametrize("argv", [
    testing_cluster.entry_point("flavor-vanilla"),
    [sys.executable, "-m", "infrakit.manager.serve", "--name", "mgr"],
])
def test_listen_without_a_certificate_or_insecure_does_not_start(
        argv: list[str], plugins_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    port = testing.free_port()
    env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(plugins_dir),
           "INFRAKIT_HOME": str(tmp_path)}
    for variable in ("INFRAKIT_TLS_DIR", "INFRAKIT_TLS_CERT", "INFRAKIT_INSECURE"):
        env.pop(variable, None)
    tail = ["os"] if "infrakit.manager.serve" in argv else []
    started = subprocess.run([*argv, "--listen", f"127.0.0.1:{port}", *tail], env=env,
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 2
    assert (f"--listen 127.0.0.1:{port} needs a certificate for mutual TLS: give --tls-dir D"
            in started.stderr)
    assert "plain TCP only with --insecure" in started.stderr
    assert not list(plugins_dir.iterdir()), "nothing was left listening"


def test_a_group_spec_names_a_remote_instance_plugin_by_url(
        local: testing_cluster.Cluster, authority: pathlib.Path, tmp_path: pathlib.Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    port = testing.free_port()
    remote = f"https://127.0.0.1:{port}/instance-file"
    far = testing_cluster.Cluster(tmp_path / "far", tmp_path / "far-logs")
    try:
        far.start("instance-file", [sys.executable, "-c", testing_stack.INSTANCE_FILE_ON_TCP,
                                    "--dir", str(tmp_path / "vms"),
                                    "--listen", f"127.0.0.1:{port}",
                                    "--tls-dir", str(authority / "instance-file")])
        local.env["INFRAKIT_TLS_DIR"] = str(authority / "group")
        local.start("flavor-vanilla", testing_cluster.entry_point("flavor-vanilla"))
        local.start("group", [sys.executable, "-m", "infrakit.group.serve", "--name", "group",
                              "--poll-interval", "200ms"])
        spec = group.Spec.from_wire({"ID": "far", "Properties": {
            "Allocation": {"Size": 2},
            "Instance": {"Plugin": remote, "Properties": {"Note": "far away"}},
            "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Init": ["echo far"]}}}})
        caller = sync.Client(local.plugins_dir / "group", timeout=30)
        answer = caller.call("Group.CommitGroup", {"Spec": spec.to_wire(), "Pretend": False})
        assert answer == {"Details": "Managing 2 instances"}

        def converged() -> bool:
            found = caller.call("Group.DescribeGroup", {"ID": "far"})["Description"]
            return bool(found["Converged"]) and len(found["Instances"]) == 2

        testing.wait_for(converged, what="the group converged on the remote plugin",
                         timeout=60)
        assert len(list((tmp_path / "vms").iterdir())) == 2
        assert not (local.plugins_dir / "instance-file").exists()
    finally:
        far.stop_all()
