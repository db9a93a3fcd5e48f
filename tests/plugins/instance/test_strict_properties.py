"""Our instance plugins' Properties: instance-process refuses a typo, instance-file takes anything.

Seen: ``StopTimout: 2s`` was accepted by instance-process and silently meant the default 5s.
instance-file keeps whatever it is given, as v0.5's did (v0.5 commits ``{"Note": "..."}``).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from infrakit import errors
from infrakit.plugins.instance import file, process


@pytest.fixture
def processes(tmp_path: pathlib.Path) -> Iterator[process.Plugin]:
    plugin = process.Plugin(tmp_path / "processes")
    try:
        yield plugin
    finally:
        plugin.close()


@pytest.mark.parametrize(("properties", "message"), [
    ({"StopTimout": "2s"}, "Properties.StopTimout: unknown field; did you mean StopTimeout?"),
    ({"Envs": {"A": "1"}}, "Properties.Envs: unknown field; did you mean Env?"),
    ({"cwd": "/"}, "Properties.cwd: unknown field; did you mean Cwd?"),
    ({"Note": "v1"}, "Properties.Note: unknown field; expected one of Cwd, Env, StopTimeout"),
    ({"StopTimout": "2s", "Env": {"A": 1}},
     "Properties.StopTimout: unknown field; did you mean StopTimeout?; "
     "Properties.Env.A: expected a string"),
])
def test_instance_process_refuses_a_misspelt_key_naming_the_closest_one(
        processes: process.Plugin, properties: Any, message: str) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        processes.validate(properties)
    assert caught.value.message == message


def test_instance_process_accepts_its_keys(processes: process.Plugin,
                                           tmp_path: pathlib.Path) -> None:
    processes.validate({"StopTimeout": "2s", "Env": {"A": "1"}, "Cwd": str(tmp_path)})
    processes.validate(None)


@pytest.mark.parametrize("properties", [
    {"Note": "Instance properties version 1.0"}, {"Anything": {"nested": [1, 2]}}, None, [1], "x",
])
def test_instance_file_keeps_free_form_properties(tmp_path: pathlib.Path,
                                                  properties: Any) -> None:
    plugin = file.Plugin(tmp_path / "files", watch=False)
    try:
        plugin.validate(properties)
    finally:
        plugin.close()
