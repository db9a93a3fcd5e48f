"""``infrakit group``: the exact lines scripts compare, outputs, and the group extensions."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
import yaml

from infrakit import errors
from infrakit.cli import render
from infrakit.spi import group, instance

from .conftest import FakeGroup, OldGroup

SPEC = {"ID": "workers", "Properties": {"Allocation": {"Size": 3},
                                        "Instance": {"Plugin": "instance-file"}}}


@pytest.fixture
def served(serve: Any, fake_group: FakeGroup) -> FakeGroup:
    serve("group", group=fake_group)
    return fake_group


@pytest.fixture
def spec_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "workers.json"
    path.write_text(json.dumps(SPEC))
    return path


def committed(served: FakeGroup) -> None:
    served.commit_group(group.Spec.from_wire(SPEC), False)


@pytest.mark.parametrize(("flags", "line"), [
    ((), "Committed workers: Managing 3 instances\n"),
    (("--pretend",), "Committing workers would involve: Managing 3 instances\n"),
])
def test_commit_prints_the_original_line(cli: Any, served: FakeGroup, spec_file: pathlib.Path,
                                         flags: tuple[str, ...], line: str) -> None:
    result = cli("group", "commit", str(spec_file), *flags)
    assert (result.exit_code, result.stdout, result.stderr) == (0, line, "")
    assert ("workers" in served.specs) is not bool(flags)


def test_commit_reads_yaml_from_stdin_rendered_with_jinja(cli: Any, served: FakeGroup,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUP_SIZE", "5")
    text = "ID: web\nProperties:\n  Allocation:\n    Size: {{ env('GROUP_SIZE') | int }}\n"
    result = cli("group", "commit", "-", input=text)
    assert result.stdout == "Committed web: Managing 5 instances\n"
    assert served.specs["web"].properties == {"Allocation": {"Size": 5}}


def test_commit_with_y_reads_yaml_whatever_the_name(cli: Any, served: FakeGroup,
                                                   tmp_path: pathlib.Path) -> None:
    path = tmp_path / "group.json"
    path.write_text("ID: web\nProperties: {Allocation: {Size: 2}}\n")
    wrong = cli("group", "commit", str(path))
    assert wrong.exit_code == errors.UsageError.exit_code
    assert wrong.stderr == f"infrakit: {path}:1: invalid JSON: Expecting value\n"
    result = cli("group", "commit", "-y", str(path))
    assert result.stdout == "Committed web: Managing 2 instances\n"


@pytest.mark.parametrize(("verb", "line"), [
    ("free", "Freed workers\n"),
    ("destroy", "Destroy workers initiated\n"),
    ("pause", "Paused workers\n"),
    ("resume", "Resumed workers\n"),
    ("abort", "Aborted workers\n"),
])
def test_verbs_on_a_group_print_their_line(cli: Any, served: FakeGroup, verb: str,
                                           line: str) -> None:
    committed(served)
    result = cli("group", verb, "workers")
    assert (result.exit_code, result.stdout) == (0, line)


def test_describe_prints_id_logical_and_sorted_tags(cli: Any, served: FakeGroup) -> None:
    committed(served)
    served.members["workers"] = [
        instance.Description(id=instance.ID("instance-1"), tags={"z": "1", "a": "2"}),
        instance.Description(id=instance.ID("instance-2"),
                             logical_id=instance.LogicalID("10.0.0.2"), tags={}),
    ]
    result = cli("group", "describe", "workers")
    assert result.stdout == (
        "ID                            \tLOGICAL                       \tTAGS\n"
        "instance-1                    \t  -                           \ta=2,z=1\n"
        "instance-2                    \t10.0.0.2                      \t\n")
    quiet = cli("group", "describe", "workers", "-q")
    assert quiet.stdout.splitlines() == result.stdout.splitlines()[1:]


def test_describe_json_is_the_wire_description_with_status(cli: Any, served: FakeGroup) -> None:
    committed(served)
    served.status = {"Phase": "Rolling", "Reasons": ["replaced instance-1: unhealthy"]}
    result = cli("group", "describe", "workers", "--output", "json")
    assert json.loads(result.stdout) == {"Instances": [], "Converged": True,
                                         "Status": served.status}
    as_yaml = cli("group", "describe", "workers", "-o", "yaml")
    assert yaml.safe_load(as_yaml.stdout) == json.loads(result.stdout)


def test_describe_table_shows_status_and_the_reasons_for_recent_actions(
    cli: Any, served: FakeGroup
) -> None:
    committed(served)
    served.status = {
        "ID": "workers", "Phase": "Holding", "Size": 5, "Members": 5,
        "Reason": "holding because 3/5 unhealthy exceeds budget 40%",
        "Update": {"Target": "abc", "Done": ["instance-9"], "Paused": True},
        "Actions": [
            {"Time": 0, "Kind": "created", "Message": "created instance-1 because count 4 < 5"},
            {"Time": 0, "Kind": "holding", "Repeated": 3,
             "Message": "holding because 3/5 unhealthy exceeds budget 40%"},
        ],
    }
    lines = cli("group", "describe", "workers").stdout.splitlines()
    epoch = render.iso(0)  # ISO 8601, UTC
    assert lines[2:] == [
        "STATUS  Holding - holding because 3/5 unhealthy exceeds budget 40% (5/5 members)",
        "UPDATE  to abc: paused, 1 replaced",
        "RECENT ACTIONS",
        f"  {epoch}  created instance-1 because count 4 < 5",
        f"  {epoch}  holding because 3/5 unhealthy exceeds budget 40% (x3)",
    ]
    assert cli("group", "describe", "workers", "-q").stdout == ""


def test_ls_lists_group_ids(cli: Any, served: FakeGroup) -> None:
    committed(served)
    served.commit_group(group.Spec.from_wire({"ID": "db", "Properties": {}}), False)
    assert cli("group", "ls").stdout == "ID\nworkers\ndb\n"
    assert cli("group", "ls", "-q").stdout == "workers\ndb\n"
    specs = json.loads(cli("group", "ls", "-o", "json").stdout)
    assert [each["ID"] for each in specs] == ["workers", "db"]


def test_inspect_prints_the_committed_spec(cli: Any, served: FakeGroup) -> None:
    committed(served)
    result = cli("group", "inspect", "workers")
    assert json.loads(result.stdout) == SPEC
    assert yaml.safe_load(cli("group", "inspect", "workers", "-o", "yaml").stdout) == SPEC


def test_inspect_of_an_unknown_group_says_it_is_not_watched(cli: Any, served: FakeGroup) -> None:
    result = cli("group", "inspect", "nope")
    assert result.exit_code == errors.NotFoundError.exit_code
    assert result.stderr == "infrakit: Group 'nope' is not being watched\n"


def test_remote_error_is_one_line_with_its_exit_code(cli: Any, served: FakeGroup) -> None:
    result = cli("group", "free", "nope")
    assert (result.exit_code, result.stdout) == (errors.NotFoundError.exit_code, "")
    assert result.stderr == "infrakit: Group 'nope' is not being watched\n"


def test_size_set_size_and_destroy_instances(cli: Any, served: FakeGroup) -> None:
    committed(served)
    assert cli("group", "size", "workers").stdout == "3\n"
    assert json.loads(cli("group", "size", "workers", "-o", "json").stdout) == {
        "ID": "workers", "Size": 3}
    assert cli("group", "set-size", "workers", "7").stdout == "Size of workers set to 7\n"
    assert served.sizes["workers"] == 7
    result = cli("group", "destroy-instances", "workers", "instance-1", "instance-2")
    assert result.stdout == "Destroy instance-1 instance-2 of workers initiated\n"
    assert served.calls[-1] == ("destroy_instances", ["instance-1", "instance-2"])


def test_size_needs_group_0_1_1(cli: Any, serve: Any) -> None:
    serve("old", group=OldGroup())
    result = cli("group", "--name", "old", "size", "workers")
    assert result.exit_code == errors.HandshakeError.exit_code
    assert result.stderr == ("infrakit: plugin 'old' does not implement Group/0.1.1; "
                             "it offers Group/0.1.0\n")


def test_set_size_rejects_a_negative_size(cli: Any, served: FakeGroup) -> None:
    result = cli("group", "set-size", "workers", "-1")
    assert result.exit_code == 2
    assert result.stderr.startswith("infrakit: ")
    assert "-1" in result.stderr and len(result.stderr.splitlines()) == 1


def test_group_name_defaults_to_group_and_can_be_changed(cli: Any, serve: Any,
                                                        fake_group: FakeGroup) -> None:
    serve("group-stateless", group=fake_group)
    committed(fake_group)
    assert cli("group", "--name", "group-stateless", "ls", "-q").stdout == "workers\n"
    missing = cli("group", "ls")
    assert missing.exit_code == errors.PluginNotFound.exit_code
    assert missing.stderr.startswith("infrakit: plugin 'group' not found: no socket ")


def test_a_spec_without_id_is_rejected_naming_the_field(cli: Any, served: FakeGroup,
                                                       tmp_path: pathlib.Path) -> None:
    path = tmp_path / "g.json"
    path.write_text('{"Properties": {}}')
    result = cli("group", "commit", str(path))
    assert result.exit_code == errors.InvalidError.exit_code
    assert result.stderr == f"infrakit: {path}: not a valid group Spec: ID: required\n"
