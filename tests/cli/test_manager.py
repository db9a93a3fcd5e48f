"""``infrakit manager commit|inspect|leader|history|rollback``: the lines, against a real
manager (flock leadership, file store, a group controller over in-memory plugins) served
on a socket."""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from click.testing import Result

from infrakit import testing
from infrakit.group import controller, tags
from infrakit.group import serve as group_serve
from infrakit.manager import leader_file, proxy, serve, store_file

from .conftest import FakeGroup, Loop


def group_entry(size: int, *, plugin: str = "group", gid: str = "web") -> dict[str, Any]:
    return {"Plugin": plugin, "Properties": {"ID": gid, "Properties": {
        "Allocation": {"Size": size},
        "Instance": {"Plugin": "instance-fake", "Properties": {}},
        "Flavor": {"Plugin": "flavor-fake", "Properties": {}}}}}


class Served:
    """The manager ``group`` on a background loop, and its plugins."""

    def __init__(self, loop: Loop, instances: testing.FakeInstancePlugin,
                 manager: proxy.Manager) -> None:
        self.loop = loop
        self.instances = instances
        self.manager = manager

    def members(self) -> int:
        return len(self.instances.matching({tags.GROUP: "web"}))

    def wait_members(self, count: int) -> None:
        async def wait() -> None:
            while self.members() != count:
                await asyncio.sleep(0.01)
        asyncio.run_coroutine_threadsafe(wait(), self.loop.loop).result(5)


@pytest.fixture
def served(plugins_dir: pathlib.Path, tmp_path: pathlib.Path) -> Iterator[Served]:
    loop = Loop(plugins_dir)
    instances = testing.FakeInstancePlugin()

    async def build() -> tuple[proxy.Manager, Any]:
        lead = leader_file.FlockLeadership(tmp_path / "leader.lock", "group", poll=0.05)
        groups = controller.Controller(
            testing.resolver({"instance-fake": instances}),
            testing.resolver({"flavor-fake": testing.FakeFlavorPlugin()}), poll_interval=0.05)
        manager = proxy.Manager("group", leadership=lead, backend=group_serve.Served(groups),
                                store=store_file.FileStore(tmp_path / "store", token=lead.token),
                                backend_name="group-stateless")
        running = serve.served(manager, where=f"lock file {tmp_path / 'leader.lock'}",
                               plugins_dir=plugins_dir)
        await running.__aenter__()
        await manager.wait_ready(5)
        return manager, running

    manager, running = asyncio.run_coroutine_threadsafe(build(), loop.loop).result(10)
    try:
        yield Served(loop, instances, manager)
    finally:
        asyncio.run_coroutine_threadsafe(running.__aexit__(None, None, None),
                                         loop.loop).result(10)
        loop.close()


@pytest.fixture
def write(tmp_path: pathlib.Path) -> Callable[[Any], str]:
    def put(data: Any, name: str = "groups.json") -> str:
        path = tmp_path / name
        path.write_text(json.dumps(data))
        return str(path)
    return put


def ok(result: Result) -> str:
    assert (result.exit_code, result.stderr) == (0, ""), result.stderr
    return result.stdout


def test_commit_prints_one_line_per_group(cli: Any, served: Served,
                                          write: Callable[[Any], str]) -> None:
    path = write([group_entry(2), group_entry(1, gid="db")])
    assert ok(cli("manager", "commit", path)) == (
        "Committed web: Managing 2 instances\nCommitted db: Managing 1 instances\n")
    assert ok(cli("manager", "commit", path, "--pretend")).startswith(
        "Committing web would involve: ")


def test_commit_sends_each_group_to_the_plugin_its_entry_names(
        cli: Any, served: Served, serve: Any, fake_group: FakeGroup,
        write: Callable[[Any], str]) -> None:
    serve("other", group=fake_group)
    path = write([group_entry(5, plugin="other"), group_entry(1, plugin="")])
    assert ok(cli("manager", "commit", path)) == (
        "Committed web: Managing 5 instances\nCommitted web: Managing 1 instances\n")
    assert fake_group.sizes == {"web": 5}


@pytest.mark.parametrize(("data", "problem"), [
    ({"Plugin": "group"}, "expected a list of {Plugin, Properties}: expected a list"),
    ([{"Properties": {}}], "expected a list of {Plugin, Properties}: [0].Plugin: required"),
    ([{"Plugin": "group", "Properties": {"Properties": {}}}],
     "[0].Properties: not a valid group Spec: ID: required"),
])
def test_commit_names_what_is_wrong_with_the_file(cli: Any, served: Served,
                                                  write: Callable[[Any], str], data: Any,
                                                  problem: str) -> None:
    path = write(data)
    result = cli("manager", "commit", path)
    assert result.exit_code == 2
    assert result.stderr == f"infrakit: {path}: {problem}\n"


def test_inspect_prints_what_commit_reads(cli: Any, served: Served,
                                          write: Callable[[Any], str]) -> None:
    ok(cli("manager", "commit", write([group_entry(2)])))
    assert json.loads(ok(cli("manager", "inspect"))) == [group_entry(2)]
    assert yaml.safe_load(ok(cli("manager", "inspect", "-o", "yaml"))) == [group_entry(2)]


def test_leader_says_who_leads_since_when_and_the_lease(cli: Any, served: Served) -> None:
    lines = ok(cli("manager", "leader")).splitlines()
    assert lines[:2] == ["Leader:  group", "URL:     -"]  # it listens on no TCP
    assert re.fullmatch(r"Since:   \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[2])
    assert lines[3:] == ["Lease:   -", "Backend: flock", "Asked:   group (leader)"]
    answer = json.loads(ok(cli("manager", "leader", "-o", "json")))
    assert answer["Leader"]["Name"] == "group" and answer["IsLeader"] is True


def test_history_and_rollback(cli: Any, served: Served, write: Callable[[Any], str]) -> None:
    ok(cli("manager", "commit", write([group_entry(1)])))
    ok(cli("manager", "commit", write([group_entry(3)])))
    served.wait_members(3)
    rows = ok(cli("manager", "history", "web")).splitlines()
    assert rows[0].split() == ["VERSION", "TIME", "PLUGIN", "ALLOCATION"]
    assert [row.split()[0::2] for row in rows[1:]] == [["1", "group-stateless"],
                                                         ["2", "group-stateless"]]
    assert [row.split()[-1] for row in rows[1:]] == ['{"Size":1}', '{"Size":3}']
    assert ok(cli("manager", "rollback", "web")) == (
        "Rolled back web to version 1: Terminating 2 instances to reduce the group size "
        "to 1\n")
    entries = json.loads(ok(cli("manager", "history", "web", "-o", "json")))
    assert [e["Version"] for e in entries] == [1, 2, 3]
    result = cli("manager", "rollback", "web", "--to", "9")
    assert (result.exit_code, result.stderr) == (
        3, "infrakit: group 'web' has no version 9 (versions kept: 1, 2, 3)\n")


def test_a_missing_manager_is_one_line(cli: Any, plugins_dir: pathlib.Path) -> None:
    result = cli("manager", "--name", "nobody", "leader")
    assert result.exit_code == 3
    assert result.stderr.startswith("infrakit: plugin 'nobody' not found")
