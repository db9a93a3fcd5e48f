"""A standalone group plugin (``infrakit-group-default`` without ``--manager``) keeps groups
only in memory: restarted, it does not know them, and its error says how groups are kept
across restarts (real processes: the plugin, instance-file, flavor-vanilla)."""

from __future__ import annotations

import pathlib
import shutil
import sys
import tempfile
from collections.abc import Iterator

import pytest

from infrakit import errors
from infrakit import testing_cluster as cluster
from infrakit.rpc import sync
from infrakit.spi import group

GID = group.ID("web")
HINT = ("Group 'web' is not being watched by this group plugin (it keeps groups only in "
        "memory; they are kept across restarts by a manager or `infrakit up`): commit it "
        "again, or run a manager")


@pytest.fixture
def local(tmp_path: pathlib.Path) -> Iterator[cluster.Cluster]:
    plugins_dir = pathlib.Path(tempfile.mkdtemp(prefix="ik-"))  # short: socket paths
    try:
        with cluster.Cluster(plugins_dir, tmp_path / "logs") as running:
            running.start("instance-file", cluster.entry_point(
                "instance-file", "--dir", str(tmp_path / "files")))
            running.start("flavor-vanilla", cluster.entry_point("flavor-vanilla"))
            running.start("group", [sys.executable, "-m", "infrakit.group.serve",
                                    "--name", "group", "--poll-interval", "100ms"])
            yield running
    finally:
        shutil.rmtree(plugins_dir, ignore_errors=True)


def call(local: cluster.Cluster, method: str, params: dict[str, object]) -> object:
    return sync.Client(local.plugins_dir / "group", timeout=10.0).call(method, params)


def test_after_a_restart_a_standalone_plugin_says_how_groups_are_kept(
        local: cluster.Cluster) -> None:
    spec = {"ID": GID, "Properties": {
        "Allocation": {"Size": 1},
        "Instance": {"Plugin": "instance-file", "Properties": {}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {}}}}
    call(local, "Group.CommitGroup", {"Spec": spec, "Pretend": False})
    call(local, "Group.DescribeGroup", {"ID": GID})  # known before the restart

    local.stop("group")
    local.restart("group")

    for method, params in [("Group.DescribeGroup", {"ID": GID}),
                           ("Group.SetSize", {"ID": GID, "Size": 2}),
                           ("Group.DestroyGroup", {"ID": GID})]:
        with pytest.raises(errors.NotFoundError) as refused:
            call(local, method, params)
        assert refused.value.message == HINT, method
    call(local, "Group.CommitGroup", {"Spec": spec, "Pretend": False})  # as it says
    call(local, "Group.DescribeGroup", {"ID": GID})
