"""``infrakit instance --name P``: provision, validate, destroy, describe and their outputs."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
import yaml

from infrakit import errors, testing
from infrakit.spi import instance

HEADER = "ID                            \tLOGICAL                       \tTAGS\n"


@pytest.fixture
def served(serve: Any, fake_instance: testing.FakeInstancePlugin) -> testing.FakeInstancePlugin:
    east = testing.FakeInstancePlugin(prefix="east-")
    serve("fake", instance={"": fake_instance, "east": east})
    return fake_instance


def test_provision_prints_the_new_id(cli: Any, served: testing.FakeInstancePlugin,
                                     tmp_path: pathlib.Path) -> None:
    path = tmp_path / "spec.yml"
    path.write_text("Tags: {tier: web}\nInit: echo hi\nLogicalID: db1\n")
    result = cli("instance", "--name", "fake", "provision", str(path))
    assert (result.exit_code, result.stdout) == (0, "instance-000001\n")
    assert served.specs[instance.ID("instance-000001")] == instance.Spec(
        tags={"tier": "web"}, init="echo hi", logical_id=instance.LogicalID("db1"))


def test_validate_prints_ok_and_a_refusal_is_one_line(cli: Any,
                                                      served: testing.FakeInstancePlugin) -> None:
    assert cli("instance", "--name", "fake", "validate", "-", input='{"a": 1}').stdout == \
        "validate:ok\n"
    served.invalid = "Properties.a: expected a string"
    result = cli("instance", "--name", "fake", "validate", "-", input='{"a": 1}')
    assert result.exit_code == errors.InvalidError.exit_code
    assert result.stderr == "infrakit: Properties.a: expected a string\n"


def test_destroy_prints_the_original_line(cli: Any, served: testing.FakeInstancePlugin) -> None:
    made = served.add(tags={})
    assert cli("instance", "--name", "fake", "destroy", made).stdout == f"destroyed {made}\n"
    again = cli("instance", "--name", "fake", "destroy", made)
    assert (again.exit_code, again.stderr) == (errors.NotFoundError.exit_code,
                                               f"infrakit: no instance '{made}'\n")


def test_describe_prints_columns_and_q_drops_the_header(
        cli: Any, served: testing.FakeInstancePlugin) -> None:
    served.add(tags={"tier": "web", "az": "b"})
    served.add(tags={"tier": "db"}, logical_id="db1")
    rows = ("instance-000001               \t  -                           \taz=b,tier=web\n"
            "instance-000002               \tdb1                           \ttier=db\n")
    assert cli("instance", "--name", "fake", "describe").stdout == HEADER + rows
    assert cli("instance", "--name", "fake", "describe", "-q").stdout == rows


@pytest.mark.parametrize(("flags", "expected"), [
    (("--tags", "tier=web"), ["instance-000001"]),
    (("--tags", "tier=web", "--tags", "az=a"), []),
    (("--tags", "tier=web,az=b"), ["instance-000001"]),
    (("--tags", "empty="), ["instance-000003"]),
    ((), ["instance-000001", "instance-000002", "instance-000003"]),
])
def test_describe_tags_must_all_match(cli: Any, served: testing.FakeInstancePlugin,
                                      flags: tuple[str, ...], expected: list[str]) -> None:
    served.add(tags={"tier": "web", "az": "b"})
    served.add(tags={"tier": "db"})
    served.add(tags={"empty": ""})
    result = cli("instance", "--name", "fake", "describe", "-q", *flags)
    assert [row.split("\t")[0].strip() for row in result.stdout.splitlines()] == expected


@pytest.mark.parametrize("bad", ["tier", "=web", "tier=web,oops"])
def test_bad_tags_syntax_is_a_usage_error(cli: Any, served: testing.FakeInstancePlugin,
                                          bad: str) -> None:
    result = cli("instance", "--name", "fake", "describe", "--tags", bad)
    assert result.exit_code == 2
    got = bad.split(",")[-1]
    assert result.stderr == (f"infrakit: Invalid value for '--tags': expected KEY=VALUE, "
                             f"got {got!r}\n")


def test_describe_properties_adds_a_column(cli: Any, serve: Any) -> None:
    class WithProperties(testing.FakeInstancePlugin):
        async def describe_instances(self, tags: dict[str, str],
                                     properties: bool = False) -> list[instance.Description]:
            found = self.matching(tags)
            return [d.model_copy(update={"properties": {"ip": "10.0.0.1"}}) if properties
                    else d for d in found]

    plugin = WithProperties()
    plugin.add(tags={"a": "b"})
    serve("props", instance=plugin)
    result = cli("instance", "--name", "props", "describe", "-p")
    assert result.stdout.splitlines()[0].split() == ["ID", "LOGICAL", "TAGS", "PROPERTIES"]
    assert result.stdout.splitlines()[1].split("\t")[-1] == '{"ip": "10.0.0.1"}'
    wire = json.loads(cli("instance", "--name", "props", "describe", "-p", "-o", "json").stdout)
    assert wire == [{"ID": "instance-000001", "LogicalID": None, "Tags": {"a": "b"},
                     "Properties": {"ip": "10.0.0.1"}}]


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_describe_output_is_the_wire_list(cli: Any, served: testing.FakeInstancePlugin,
                                          output: str) -> None:
    served.add(tags={"tier": "web"}, logical_id="x")
    result = cli("instance", "--name", "fake", "describe", "--output", output)
    assert yaml.safe_load(result.stdout) == [
        {"ID": "instance-000001", "LogicalID": "x", "Tags": {"tier": "web"}}]


def test_a_subtype_addresses_the_typed_object(cli: Any, served: testing.FakeInstancePlugin) -> None:
    result = cli("instance", "--name", "fake/east", "provision", "-", input="{}")
    assert result.stdout == "east-000001\n"
    assert served.instances == {}


def test_instance_verbs_refuse_a_flavor_plugin(cli: Any, serve: Any,
                                               fake_flavor: testing.FakeFlavorPlugin) -> None:
    serve("vanilla", flavor=fake_flavor)
    result = cli("instance", "--name", "vanilla", "describe")
    assert result.exit_code == errors.HandshakeError.exit_code
    assert result.stderr == ("infrakit: plugin 'vanilla' does not implement Instance/0.5.0; "
                             "it offers Flavor/0.1.0\n")


def test_name_is_required(cli: Any) -> None:
    result = cli("instance", "describe")
    assert result.exit_code == 2
    assert result.stderr == "infrakit: Missing option '--name'.\n"
