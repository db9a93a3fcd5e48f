"""The reference plugins served on real unix sockets, called through our RPC clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from infrakit import errors, processes
from infrakit.plugins.flavor import combo, vanilla
from infrakit.plugins.instance import file, process
from infrakit.rpc import discovery, server, sockets
from infrakit.spi import flavor, instance

# Flavor.Prepare as recorded from InfraKit v0.5 (wire-samples-v0.5.txt): params, then result.
PREPARE_PARAMS = json.loads(
    '{"Type":"","Properties":{"Init":["echo hello"],"Tags":{"tier":"web"}},"Spec":{"Properties":'
    '{"Note":"v1"},"Tags":{"infrakit.config_sha":"rsfonnrfmaykaiytaj26ud5ixjk7m4rd",'
    '"infrakit.group":"workers"},"Init":"","LogicalID":null,"Attachments":null},"Allocation":'
    '{"Size":3,"LogicalIDs":null},"Index":{"Group":"workers","Sequence":3}}'
)
PREPARE_RESULT = json.loads(
    '{"Type":"","Spec":{"Properties":{"Note":"v1"},"Tags":{"infrakit.config_sha":'
    '"rsfonnrfmaykaiytaj26ud5ixjk7m4rd","infrakit.group":"workers","tier":"web"},'
    '"Init":"echo hello","LogicalID":null,"Attachments":null}}'
)


async def test_instance_file_round_trip(
    plugins_dir: pathlib.Path, plugins: discovery.Plugins, tmp_path: pathlib.Path
) -> None:
    local = file.Plugin(tmp_path / "files")
    async with server.Server("instance-file", instance=local, plugins_dir=plugins_dir):
        remote = plugins.instance("instance-file")
        await remote.validate({"Note": "v1"})
        spec = instance.Spec(properties={"Note": "v1"}, tags={"infrakit.group": "workers"},
                             init="echo hello")
        first, second = await remote.provision(spec), await remote.provision(spec)
        await remote.label(first, {"tier": "web"})

        [found] = await remote.describe_instances({"tier": "web"}, properties=True)
        assert (found.id, found.properties["Properties"]) == (first, {"Note": "v1"})
        (local.directory / first).unlink()  # a machine dies behind the plugin's back
        assert [d.id for d in await remote.describe_instances({})] == [second]
        await remote.destroy(second)
        with pytest.raises(errors.NotFoundError):
            await remote.destroy(second)
        assert await remote.describe_instances({}) == []
    local.close()


async def test_flavor_vanilla_answers_the_v0_5_prepare_sample_exactly(
    plugins_dir: pathlib.Path, plugins: discovery.Plugins
) -> None:
    async with server.Server("flavor-vanilla", flavor=vanilla.Plugin(), plugins_dir=plugins_dir):
        result = await plugins.client("flavor-vanilla").call("Flavor.Prepare", PREPARE_PARAMS)

    assert result == PREPARE_RESULT


async def test_flavor_combo_chains_flavors_reached_over_rpc(
    plugins_dir: pathlib.Path, plugins: discovery.Plugins
) -> None:
    resolver = discovery.Plugins(plugins_dir)
    properties = {"Flavors": [
        {"Plugin": "flavor-vanilla", "Properties": {"Init": ["echo a"], "Tags": {"x": "1"}}},
        {"Plugin": "flavor-vanilla", "Properties": {"Init": ["echo b"], "Tags": {"x": "2"}}},
    ]}
    try:
        async with (
            server.Server("flavor-vanilla", flavor=vanilla.Plugin(), plugins_dir=plugins_dir),
            server.Server("flavor-combo", flavor=combo.Plugin(resolver.flavor),
                          plugins_dir=plugins_dir),
        ):
            remote = plugins.flavor("flavor-combo")
            await remote.validate(properties, flavor.AllocationMethod(size=1))
            prepared = await remote.prepare(properties, instance.Spec(init="boot"),
                                            flavor.AllocationMethod(size=1), flavor.Index())
            bad = {"Flavors": [{"Plugin": "flavor-vanilla", "Properties": {"Init": 1}}]}
            with pytest.raises(errors.InvalidError, match=r"Properties\.Flavors\[0\]"):
                await remote.validate(bad, flavor.AllocationMethod(size=1))
    finally:
        await resolver.close()

    assert (prepared.init, prepared.tags) == ("boot\necho a\necho b", {"x": "2"})


async def test_instance_process_round_trip(
    plugins_dir: pathlib.Path, plugins: discovery.Plugins, tmp_path: pathlib.Path, cleanup: None
) -> None:
    local = process.Plugin(tmp_path / "procs")
    try:
        async with server.Server("instance-process", instance=local, plugins_dir=plugins_dir):
            remote = plugins.instance("instance-process")
            iid = await remote.provision(instance.Spec(init="exec sleep 1000", tags={"a": "b"}))
            [found] = await remote.describe_instances({"a": "b"}, properties=True)
            pid = found.properties["Pid"]
            assert processes.stat(pid) is not None
            await remote.destroy(iid)
            assert await remote.describe_instances({}) == []
            info = processes.stat(pid)
            assert info is None or not info.running
    finally:
        local.close()


@pytest.fixture
def started(plugins_dir: pathlib.Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Plugin processes a test starts; each is stopped (TERM, then KILL) at the end."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        yield processes
    finally:
        for child in processes:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def start(started: list[subprocess.Popen[bytes]], plugins_dir: pathlib.Path, module: str,
          *args: str) -> subprocess.Popen[bytes]:
    code = f"import sys; from {module} import run; run(sys.argv[1:])"
    env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(plugins_dir)}
    child = subprocess.Popen([sys.executable, "-c", code, *args], env=env,
                             stderr=subprocess.DEVNULL)
    started.append(child)
    return child


def wait_live(socket: pathlib.Path, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while not (socket.exists() and sockets.is_live(socket)):
        assert child.poll() is None, "the plugin exited"
        assert time.monotonic() < deadline, "the plugin did not start"
        time.sleep(0.05)


async def test_plugin_processes_serve_under_their_names_and_stop_cleanly(
    plugins_dir: pathlib.Path, plugins: discovery.Plugins, tmp_path: pathlib.Path,
    started: list[subprocess.Popen[bytes]],
) -> None:
    files = start(started, plugins_dir, "infrakit.plugins.instance.file",
                  "--name", "files", "--dir", str(tmp_path / "files"), "--log", "2")
    flavors = start(started, plugins_dir, "infrakit.plugins.flavor.vanilla", "--name", "web")
    wait_live(plugins_dir / "files", files)
    wait_live(plugins_dir / "web", flavors)

    iid = await plugins.instance("files").provision(instance.Spec(tags={"a": "b"}))
    assert (tmp_path / "files" / iid).exists()
    assert await plugins.client("web").call("Flavor.Prepare", PREPARE_PARAMS) == PREPARE_RESULT
    await plugins.close()

    for child, name in ((files, "files"), (flavors, "web")):
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 0
        assert not (plugins_dir / name).exists()


class WakeRecorder:
    """A group plugin that only records Group.Wake."""

    def __init__(self) -> None:
        self.woken = asyncio.Event()

    async def inspect_groups(self) -> list[Any]:
        return []

    async def wake(self, gid: str | None) -> None:
        self.woken.set()


async def test_instance_process_wakes_the_group_plugin_when_an_instance_dies(
    plugins_dir: pathlib.Path, plugins: discovery.Plugins, tmp_path: pathlib.Path,
    started: list[subprocess.Popen[bytes]],
) -> None:
    recorder = WakeRecorder()
    async with server.Server("g", group=recorder, plugins_dir=plugins_dir):
        child = start(started, plugins_dir, "infrakit.plugins.instance.process",
                      "--name", "procs", "--dir", str(tmp_path / "procs"), "--notify", "g")
        wait_live(plugins_dir / "procs", child)
        remote = plugins.instance("procs")
        iid = await remote.provision(instance.Spec(init="exec sleep 1000"))
        assert iid is not None
        pid = json.loads((tmp_path / "procs" / f"{iid}.json").read_text())["Pid"]
        try:
            assert not recorder.woken.is_set()
            os.kill(pid, signal.SIGKILL)
            await asyncio.wait_for(recorder.woken.wait(), timeout=20)
        finally:
            with contextlib.suppress(errors.NotFoundError):
                await remote.destroy(iid)
