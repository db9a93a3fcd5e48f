"""Real plugin processes for the CLI tests that follow a live group (wait, watch, limits).

:func:`stack` starts ``instance-file``, ``flavor-vanilla`` and the group plugin (poll 100 ms)
as their own processes on a private plugins dir, and stops them by pid, also when a test
fails; :meth:`Stack.infrakit` runs the CLI as a subprocess against them.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from infrakit import testing_cluster
from infrakit.rpc import sync

BIN = pathlib.Path(sys.executable).parent


class Stack:
    """Plugin processes sharing one plugins dir and one work dir (``INFRAKIT_HOME``), started
    and stopped by :class:`infrakit.testing_cluster.Cluster` (logs in ``work``)."""

    def __init__(self, plugins: pathlib.Path, work: pathlib.Path) -> None:
        self.plugins = plugins
        self.work = work
        self.env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(plugins),
                    "INFRAKIT_HOME": str(work)}
        self.processes = testing_cluster.Cluster(plugins, work,
                                                 env={"INFRAKIT_HOME": str(work)})

    def start(self, name: str, *argv: str) -> None:
        """Start console script ``argv[0]`` of this venv with its flags, serving ``name``."""
        self.processes.start(name, [str(BIN / argv[0]), *argv[1:]], wait=False)

    def wait_ready(self) -> None:
        """Once every process started answers (they start at once, then are waited for)."""
        for name in self.processes.procs:
            self.processes.wait_ready(name)

    def infrakit(self, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "infrakit"), *args], env={**self.env, **(env or {})},
                              text=True, capture_output=True, timeout=timeout, check=False)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([str(BIN / "infrakit"), *args], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def spec_file(self, spec: dict[str, Any]) -> str:
        path = self.work / f"{spec['ID']}-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(spec))
        return str(path)

    def describe(self, gid: str) -> dict[str, Any]:
        client = sync.Client(self.plugins / "group", timeout=10.0)
        found: dict[str, Any] = client.call("Group.DescribeGroup", {"ID": gid})["Description"]
        return found

    def groups(self) -> list[str]:
        client = sync.Client(self.plugins / "group", timeout=10.0)
        return [spec["ID"] for spec in client.call("Group.InspectGroups", {})["Groups"] or []]

    def describe_instances(self, gid: str) -> list[dict[str, Any]]:
        """instance-file's instances of group ``gid`` (by its tag)."""
        client = sync.Client(self.plugins / "instance-file", timeout=10.0)
        found: list[dict[str, Any]] = client.call(
            "Instance.DescribeInstances", {"Tags": {"infrakit.group": gid}})["Descriptions"]
        return found or []

    def files(self) -> list[str]:
        directory = self.work / "files"
        return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def cattle(gid: str, size: int, *, instance_plugin: str = "instance-file",
           **policies: Any) -> dict[str, Any]:
    return {"ID": gid, "Properties": {
        "Instance": {"Plugin": instance_plugin, "Properties": {"Note": "v1"}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Tags": {"tier": "web"}}},
        "Allocation": {"Size": size}, **policies}}


@contextlib.contextmanager
def stack(work: pathlib.Path) -> Iterator[Stack]:
    """instance-file (files in ``work/files``), flavor-vanilla and the group plugin."""
    plugins = pathlib.Path(tempfile.mkdtemp(prefix="ikc-"))  # socket paths < 108 bytes
    running = Stack(plugins, work)
    try:
        running.start("instance-file", "infrakit-instance-file", "--dir", str(work / "files"),
                      "--log", "2")
        running.start("flavor-vanilla", "infrakit-flavor-vanilla", "--log", "2")
        running.start("group", "infrakit-group-default", "--poll-interval", "100ms",
                      "--log", "3")
        running.wait_ready()
        yield running
    finally:
        running.processes.stop_all()
        shutil.rmtree(plugins, ignore_errors=True)
