"""``infrakit flavor --name P``: validate, prepare (both input shapes) and healthy."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
import yaml

from infrakit import errors, testing
from infrakit.spi import flavor


class Recording(testing.FakeFlavorPlugin):
    """Remembers the allocation and index it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []

    async def validate(self, properties: Any, allocation: flavor.AllocationMethod) -> None:
        self.seen.append((properties, allocation))
        await super().validate(properties, allocation)

    async def prepare(self, properties: Any, spec: Any, allocation: flavor.AllocationMethod,
                      index: flavor.Index) -> Any:
        self.seen.append((allocation, index))
        return await super().prepare(properties, spec, allocation, index)


@pytest.fixture
def served(serve: Any) -> Recording:
    plugin = Recording()
    serve("vanilla", flavor=plugin)
    return plugin


def test_validate_sends_properties_and_allocation_flags(cli: Any, served: Recording,
                                                        tmp_path: pathlib.Path) -> None:
    path = tmp_path / "props.json"
    path.write_text('{"Init": ["echo hi"]}')
    result = cli("flavor", "--name", "vanilla", "validate", str(path), "--logical-ids", "a,b")
    assert (result.exit_code, result.stdout) == (0, "validate:ok\n")
    assert served.seen == [({"Init": ["echo hi"]},
                            flavor.AllocationMethod(size=0, logical_ids=["a", "b"]))]


def test_prepare_takes_one_document(cli: Any, served: Recording, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "prepare.yml"
    path.write_text("Properties: {Init: [echo two], Tags: {role: web}}\n"
                    "Spec: {Tags: {a: b}, Init: one}\n"
                    "Allocation: {Size: 2}\n"
                    "Index: {Group: workers, Sequence: 4}\n")
    result = cli("flavor", "--name", "vanilla", "prepare", str(path))
    assert json.loads(result.stdout) == {"Properties": None, "Tags": {"a": "b", "role": "web"},
                                         "Init": "echo two", "LogicalID": None,
                                         "Attachments": None}
    assert served.seen == [(flavor.AllocationMethod(size=2),
                            flavor.Index(group="workers", sequence=4))]


def test_prepare_takes_the_originals_two_files(cli: Any, served: Recording,
                                               tmp_path: pathlib.Path) -> None:
    (tmp_path / "props.json").write_text('{"Tags": {"role": "db"}}')
    (tmp_path / "spec.json").write_text('{"Tags": {"a": "b"}}')
    result = cli("flavor", "--name", "vanilla", "prepare", str(tmp_path / "props.json"),
                 str(tmp_path / "spec.json"), "--size", "3", "-o", "yaml")
    assert yaml.safe_load(result.stdout)["Tags"] == {"a": "b", "role": "db"}
    assert served.seen == [(flavor.AllocationMethod(size=3), flavor.Index())]


@pytest.mark.parametrize(("document", "message"), [
    ("[1, 2]", "expected an object {Properties, Spec, Allocation, Index}"),
    ('{"Properties": {}}', "not a valid prepare input: Spec: required"),
    ('{"Spec": {"Tags": []}}', "not a valid prepare input: Spec.Tags: expected an "
                               "object"),
])
def test_prepare_rejects_a_bad_document(cli: Any, served: Recording, tmp_path: pathlib.Path,
                                        document: str, message: str) -> None:
    path = tmp_path / "prepare.json"
    path.write_text(document)
    result = cli("flavor", "--name", "vanilla", "prepare", str(path))
    assert result.exit_code == errors.InvalidError.exit_code
    assert result.stderr == f"infrakit: {path}: {message}\n"


@pytest.mark.parametrize(("health", "printed"), [
    (flavor.Health.HEALTHY, "1\n"),
    (flavor.Health.UNHEALTHY, "2\n"),
    (flavor.Health.UNKNOWN, "0\n"),
])
def test_healthy_prints_the_verdict_number(cli: Any, served: Recording, health: flavor.Health,
                                           printed: str) -> None:
    served.health["instance-7"] = health
    result = cli("flavor", "--name", "vanilla", "healthy", "-", "--id", "instance-7",
                 input="{}")
    assert result.stdout == printed
    as_json = cli("flavor", "--name", "vanilla", "healthy", "-", "--id", "instance-7",
                  "-o", "json", input="{}")
    assert json.loads(as_json.stdout) == {"Type": "", "Health": int(health)}
