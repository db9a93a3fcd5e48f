"""``rpc.launch``: the launch config (rules by plugin, errors naming entry and field) and the
entry points plugins start from by name."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from infrakit import errors
from infrakit.rpc import launch


def test_parse_config_gives_rules_by_plugin() -> None:
    rules = launch.parse_config(
        [{"Plugin": "a", "Launch": {"os": {"Cmd": "run-a", "SamePgID": True}}},
         {"Plugin": "b", "Launch": {"os": {"Cmd": "run-b"}, "docker": {"Image": "x"}}}],
        source="c.yml")
    assert list(rules) == ["a", "b"]
    assert rules["a"].launch.os == launch.OsLaunch(cmd="run-a", same_pg_id=True)
    assert rules["b"].launch.os is not None and not rules["b"].launch.os.same_pg_id


@pytest.mark.parametrize(("data", "message"), [
    ({"Plugin": "a"}, "launch config c.yml: expected a list of {Plugin, Launch} entries, got dict"),
    ([{"Launch": {}}], "launch config c.yml: [0].Plugin: required"),
    ([{"Plugin": "a", "Launch": {"os": {}}}], "launch config c.yml: [0].Launch.os.Cmd: required"),
    ([{"Plugin": "a", "Launch": {"os": {"Cmd": "x"}}},
      {"Plugin": "b", "Launch": {"os": {"Cmd": 3}}}],
     "launch config c.yml: [1].Launch.os.Cmd: expected a string"),
    ([{"Plugin": "a", "Launch": {"os": {"Cmd": "x", "SamePgID": "maybe"}}}],
     "launch config c.yml: [0].Launch.os.SamePgID: expected true or false"),
    ([{"Plugin": "a", "Launch": {"os": {"Cmd": ""}}}],
     "launch config c.yml: [0].Launch.os.Cmd: expected a non-empty string"),
    ([{"Plugin": "a", "Launch": {"os": {"Cmd": "x"}}}, {"Plugin": "a", "Launch": {}}],
     "launch config c.yml: [1].Plugin: 'a' appears twice"),
])
def test_a_bad_config_names_the_entry_and_field(data: Any, message: str) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        launch.parse_config(data, source="c.yml")
    assert caught.value.message == message


def test_load_config_renders_jinja_then_parses_yaml(tmp_path: pathlib.Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IK_TEST_BIN", "/opt/bin")
    path = tmp_path / "plugins.yml"
    path.write_text("- Plugin: files\n"
                    "  Launch: {os: {Cmd: \"{{ env('IK_TEST_BIN') }}/infrakit-instance-file\"}}\n")
    rule = launch.load_config(str(path))["files"]
    assert rule.launch.os is not None
    assert rule.launch.os.cmd == "/opt/bin/infrakit-instance-file"


def test_our_plugins_are_entry_points() -> None:
    found = launch.entry_points()
    assert {"instance-file", "flavor-vanilla", "flavor-combo"} <= set(found)
    assert found["instance-file"].value == "infrakit.plugins.instance.file:run"
