"""Strict group specs: typos are refused naming the path and the closest key; v0.5 specs pass.

Seen before: ``Helth:``, ``MaxSurg:`` and ``StopTimout:`` were accepted silently and
``Sise:`` gave "Allocation must not be blank". The last test commits a typo'd spec through
the real CLI to a real ``infrakit-group-default`` process.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from infrakit import errors, template, testing
from infrakit.group import config
from infrakit.manager import config as up_config
from infrakit.plugins.flavor import vanilla
from infrakit.rpc import sockets
from infrakit.spi import flavor, group

BIN = pathlib.Path(sys.executable).parent
EXAMPLES = pathlib.Path(__file__).parents[2] / "examples"

# InfraKit v0.5's examples/cattle.json (ours is the same file), as v0.5 accepted it.
V05_CATTLE: dict[str, Any] = json.loads((EXAMPLES / "cattle.json").read_text())

# The spec v0.5's CLI committed on the wire (wire samples), and as v0.5's InspectGroups
# returned it (with "LogicalIDs": null).
V05_WIRE: dict[str, Any] = {
    "ID": "workers", "Properties": {
        "Allocation": {"Size": 3, "LogicalIDs": None},
        "Instance": {"Plugin": "instance-file", "Properties": {"Note": "v1"}},
        "Flavor": {"Plugin": "flavor-vanilla",
                   "Properties": {"Init": ["echo hello"], "Tags": {"tier": "web"}}}}}


def changed(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of the spec ``base`` with ``value`` set at the dotted ``path``."""
    spec = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return spec


def refusal(spec: dict[str, Any]) -> str:
    with pytest.raises(errors.InvalidError) as caught:
        config.parse_spec(group.Spec.from_wire(spec))
    return caught.value.message


@pytest.mark.parametrize(("path", "value", "message"), [
    ("Propertes", {}, "Propertes: unknown field; did you mean Properties?"),
    ("Helth", {}, "Helth: unknown field; expected one of ID, Properties"),
    ("Properties.Helth", {"Interval": "1s"},
     "Properties.Helth: unknown field; did you mean Health?"),
    ("Properties.Allocation.Sise", 3,
     "Properties.Allocation.Sise: unknown field; did you mean Size?"),
    ("Properties.Allocation.LogicalId", ["a"],
     "Properties.Allocation.LogicalId: unknown field; did you mean LogicalIDs?"),
    ("Properties.Instance.Plugn", "x",
     "Properties.Instance.Plugn: unknown field; did you mean Plugin?"),
    ("Properties.Flavor.properties_", {},
     "Properties.Flavor.properties_: unknown field; did you mean Properties?"),
    ("Properties.Health.StartupGrase", "1s",
     "Properties.Health.StartupGrase: unknown field; did you mean StartupGrace?"),
    ("Properties.Update.MaxSurg", 1,
     "Properties.Update.MaxSurg: unknown field; did you mean MaxSurge?"),
    ("Properties.Scale.Polcy", "Oldest",
     "Properties.Scale.Polcy: unknown field; did you mean Policy?"),
    ("Properties.Provision.FailureTreshold", 3,
     "Properties.Provision.FailureTreshold: unknown field; did you mean FailureThreshold?"),
    ("Properties.Maxsize", 3, "Properties.Maxsize: unknown field; did you mean MaxSize?"),
    ("Properties.allocation", {"Size": 3},  # Go matched keys case-insensitively; we do not
     "Properties.allocation: unknown field; did you mean Allocation?"),
])
def test_a_misspelt_key_at_any_level_is_refused_naming_the_closest_one(
        path: str, value: Any, message: str) -> None:
    assert refusal(changed(V05_CATTLE, path, value)) == message


def test_every_unknown_key_is_named_in_one_message() -> None:
    spec = changed(changed(V05_CATTLE, "Properties.Helth", {}), "Properties.Update",
                   {"MaxSurg": 1})
    spec["Propertes"] = {}
    assert refusal(spec) == (
        "Propertes: unknown field; did you mean Properties?; "
        "Properties.Helth: unknown field; did you mean Health?; "
        "Properties.Update.MaxSurg: unknown field; did you mean MaxSurge?")


def test_a_misspelt_size_is_named_instead_of_a_blank_allocation() -> None:
    spec = changed(V05_CATTLE, "Properties.Allocation", {"Sise": 3})
    assert refusal(spec) == "Properties.Allocation.Sise: unknown field; did you mean Size?"


def test_unknown_keys_and_bad_values_are_reported_together() -> None:
    spec = changed(changed(V05_CATTLE, "Properties.Health", {"Interval": "soon"}),
                   "Properties.Update", {"MaxSurg": 1})
    message = refusal(spec)
    assert message.startswith("Properties.Update.MaxSurg: unknown field; did you mean MaxSurge?; "
                              "Properties.Health.Interval: expected a duration")


def test_a_blank_id_is_still_the_first_and_only_complaint() -> None:
    spec = changed(V05_CATTLE, "ID", "")
    spec["Helth"] = {}
    assert refusal(spec) == "Group ID must not be blank"


@pytest.mark.parametrize("spec", [V05_CATTLE, V05_WIRE], ids=["cattle.json", "wire-sample"])
def test_v05_specs_are_accepted(spec: dict[str, Any]) -> None:
    gid, props = config.parse_spec(group.Spec.from_wire(copy.deepcopy(spec)))
    assert gid == spec["ID"] and props.size == spec["Properties"]["Allocation"]["Size"]


async def test_v05_flavor_properties_pass_the_vanilla_flavor() -> None:
    props = V05_CATTLE["Properties"]
    await vanilla.Plugin().validate(props["Flavor"]["Properties"],
                                    flavor.AllocationMethod.from_wire(props["Allocation"]))


def test_the_plugins_own_properties_are_left_to_them() -> None:
    spec = changed(V05_CATTLE, "Properties.Instance.Properties", {"Sise": 1, "Nested": {"a": 1}})
    spec = changed(spec, "Properties.Flavor.Properties", {"Inits": ["judged by the flavor"]})
    _, props = config.parse_spec(group.Spec.from_wire(spec))
    assert props.instance.properties == {"Sise": 1, "Nested": {"a": 1}}


def test_the_examples_group_specs_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORTS", "VERSION", "INFRAKIT_HOME"):
        monkeypatch.delenv(name, raising=False)
    web = yaml.safe_load(template.render((EXAMPLES / "web.yml").read_text(),
                                         source=str(EXAMPLES / "web.yml")))
    up = up_config.parse(template.load(str(EXAMPLES / "up.yml")), source="up.yml")
    for spec in [group.Spec.from_wire(web), *up.groups]:
        gid, props = config.parse_spec(spec)
        assert gid == "web" and props.logical_ids == ["18081", "18082", "18083"]
        assert props.health.interval == 1.0


@pytest.mark.parametrize(("text", "message"), [
    ("Groups: [{Plugin: group, Properties: {ID: web, Propertes: {}}}]\n",
     "up.yml: Groups[0].Properties.Propertes: unknown field; did you mean Properties?"),
    ("Plugins: [{Plugin: x, Lauch: {os: {Cmd: x}}}]\n",
     "up.yml: Plugins[0].Lauch: unknown field; did you mean Launch?"),
    ("Manager: {PolInterval: 1s}\n",
     "up.yml: Manager.PolInterval: unknown field; did you mean PollInterval?"),
])
def test_the_up_config_refuses_misspelt_keys_down_to_each_group_spec(text: str,
                                                                     message: str) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        up_config.parse(yaml.safe_load(text), source="up.yml")
    assert caught.value.message == message


@pytest.mark.parametrize(("ids", "message"), [
    (["a", "", "c"], "Properties.Allocation.LogicalIDs[1]: '' is empty"),
    (["a", "b", "a b"], "Properties.Allocation.LogicalIDs[2]: 'a b' contains whitespace"),
    (["db\t1"], "Properties.Allocation.LogicalIDs[0]: 'db\\t1' contains whitespace"),
    (["x/y"], "Properties.Allocation.LogicalIDs[0]: 'x/y' contains '/'"),
    ([".hidden"], "Properties.Allocation.LogicalIDs[0]: '.hidden' starts with '.'"),
    (["h" * 254], f"Properties.Allocation.LogicalIDs[0]: '{'h' * 254}' is 254 characters "
                  "long; at most 253 are allowed"),
    (["a", "b", "a"],
     "Properties.Allocation.LogicalIDs: each logical ID may appear once, got ['a'] twice"),
    (["a b", "c", "c"], "Properties.Allocation.LogicalIDs[0]: 'a b' contains whitespace; "
     "Properties.Allocation.LogicalIDs: each logical ID may appear once, got ['c'] twice"),
])
def test_bad_logical_ids_are_refused_saying_which_and_why(ids: list[str], message: str) -> None:
    spec = changed(V05_CATTLE, "Properties.Allocation", {"LogicalIDs": ids})
    assert refusal(spec) == message


@pytest.mark.parametrize("ids", [["192.168.2.200", "192.168.2.201"], ["db-1", "h" * 253],
                                 ["a.b", "web_1", "8080"]])
def test_usual_logical_ids_are_accepted(ids: list[str]) -> None:
    spec = changed(V05_CATTLE, "Properties.Allocation", {"LogicalIDs": ids})
    assert config.parse_spec(group.Spec.from_wire(spec))[1].logical_ids == ids


@pytest.mark.parametrize(("allocation", "message"), [
    ({"Size": 11}, "Properties.Allocation.Size: 11 members is more than this group's MaxSize "
                   "of 10; raise Properties.MaxSize to allow it"),
    ({"LogicalIDs": [str(n) for n in range(11)]},
     "Properties.Allocation.LogicalIDs: 11 members is more than this group's MaxSize of 10; "
     "raise Properties.MaxSize to allow it"),
])
def test_a_group_larger_than_its_max_size_is_refused(allocation: dict[str, Any],
                                                      message: str) -> None:
    spec = changed(changed(V05_CATTLE, "Properties.Allocation", allocation),
                   "Properties.MaxSize", 10)
    assert refusal(spec) == message


def test_max_size_is_optional_and_inclusive() -> None:
    assert config.parse(changed(V05_CATTLE, "Properties.Allocation.Size", 500)["Properties"])
    at_limit = changed(changed(V05_CATTLE, "Properties.Allocation.Size", 10),
                       "Properties.MaxSize", 10)
    assert config.parse(at_limit["Properties"]).max_size == 10
    with pytest.raises(errors.InvalidError, match=r"^Properties\.MaxSize: expected 0 or more"):
        config.parse(changed(V05_CATTLE, "Properties.MaxSize", -1)["Properties"])


@pytest.mark.parametrize("as_spec", [True, False], ids=["group.Spec", "Properties"])
def test_check_size_refuses_a_new_size_past_max_size(as_spec: bool) -> None:
    spec = group.Spec.from_wire(changed(V05_CATTLE, "Properties.MaxSize", 8))
    subject = spec if as_spec else config.parse(spec.properties)
    config.check_size(subject, 8)
    with pytest.raises(errors.InvalidError, match=r"^Properties\.Allocation\.Size: 9 members is "
                                                  r"more than this group's MaxSize of 8;"):
        config.check_size(subject, 9)


# -- end to end: the real group plugin and the real CLI -----------------------------------


@pytest.fixture
def group_plugin(plugins_dir: pathlib.Path, tmp_path: pathlib.Path) -> Iterator[dict[str, str]]:
    """``infrakit-group-default``, ``infrakit-flavor-vanilla`` and ``infrakit-instance-file``
    as processes on ``plugins_dir``; the environment the CLI needs to reach them."""
    env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(plugins_dir),
           "INFRAKIT_HOME": str(tmp_path)}
    commands = {"group": ["infrakit-group-default", "--poll-interval", "100ms"],
                "flavor-vanilla": ["infrakit-flavor-vanilla"],
                "instance-file": ["infrakit-instance-file", "--dir", str(tmp_path / "files")]}
    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, (script, *flags) in commands.items():
            started[name] = subprocess.Popen([str(BIN / script), *flags, "--log", "1"], env=env,
                                             stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        for name, process in started.items():
            while not ((plugins_dir / name).exists() and sockets.is_live(plugins_dir / name)):
                assert process.poll() is None, f"{name} exited with {process.returncode}"
                assert time.monotonic() < deadline, f"{name} did not start"
                time.sleep(0.02)
        yield env
    finally:
        testing.stop_processes(started.values(), timeout=10)


def commit(env: dict[str, str], spec: dict[str, Any], path: pathlib.Path
           ) -> subprocess.CompletedProcess[str]:
    path.write_text(json.dumps(spec))
    return subprocess.run([str(BIN / "infrakit"), "group", "commit", str(path)], env=env,
                          text=True, capture_output=True, timeout=60, check=False)


def test_the_group_plugin_refuses_a_misspelt_spec_committed_from_the_cli(
        group_plugin: dict[str, str], tmp_path: pathlib.Path) -> None:
    typo = changed(V05_CATTLE, "Properties.Helth", {"Interval": "1s"})
    refused = commit(group_plugin, typo, tmp_path / "typo.json")
    assert refused.returncode == errors.InvalidError.exit_code
    assert "Properties.Helth: unknown field; did you mean Health?" in refused.stderr

    # A typo inside the flavor's Properties is the flavor's to refuse (Flavor.Validate).
    typo = changed(V05_CATTLE, "Properties.Flavor.Properties.Inits", ["x"])
    refused = commit(group_plugin, typo, tmp_path / "flavor-typo.json")
    assert refused.returncode == errors.InvalidError.exit_code
    assert "Properties.Inits: unknown field; did you mean Init?" in refused.stderr

    # The v0.5 spec itself goes through (pretend: nothing is created).
    (tmp_path / "ok.json").write_text(json.dumps(V05_CATTLE))
    pretend = subprocess.run(
        [str(BIN / "infrakit"), "group", "commit", "--pretend", str(tmp_path / "ok.json")],
        env=group_plugin, text=True, capture_output=True, timeout=60, check=False)
    assert (pretend.returncode, pretend.stdout) == (
        0, "Committing cattle would involve: Managing 5 instances\n"), pretend.stderr
