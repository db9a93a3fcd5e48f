"""Every failure ends as one line on stderr, ``infrakit: <message>``, with its exit code."""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import socket
import subprocess
import sys
from typing import Any

import pytest

from infrakit import errors, testing
from infrakit.cli import render
from infrakit.spi import instance


@pytest.fixture
def served(serve: Any, fake_instance: testing.FakeInstancePlugin) -> testing.FakeInstancePlugin:
    serve("fake", instance=fake_instance)
    return fake_instance


def write(tmp_path: pathlib.Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("spec.json", '{\n  "Tags": {"a": 1,}\n}', "{path}:2: invalid JSON: Expecting property name "
                                                "enclosed in double quotes"),
    ("spec.yml", "Tags:\n  a: [1\nInit: x\n", "{path}:3: invalid YAML: while parsing a flow "
                                              "sequence expected ',' or ']', but got ':'"),
    ("spec.json", '{"Init": "{{ nope }}"}', "{path}:1: undefined value: 'nope' is undefined"),
    ("spec.json", '{"Init": "{{ 1 + 2 3 }}"}',
     "{path}:1: template syntax error: expected token 'end of print statement', got 'integer'"),
    ("spec.json", '{"Tags": "web"}', "{path}: not a valid instance Spec: Tags: expected an "
                                     "object"),
])
def test_a_bad_input_file_names_file_line_and_problem(
        cli: Any, served: testing.FakeInstancePlugin, tmp_path: pathlib.Path, name: str,
        text: str, message: str) -> None:
    path = write(tmp_path, name, text)
    result = cli("instance", "--name", "fake", "provision", path)
    assert result.stderr == f"infrakit: {message.replace('{path}', path)}\n"
    assert result.exit_code == 2
    assert served.calls["provision"] == 0


def test_a_missing_file_is_named(cli: Any, served: testing.FakeInstancePlugin) -> None:
    result = cli("instance", "--name", "fake", "provision", "/nonexistent/spec.json")
    assert (result.exit_code, result.stderr) == (
        2, "infrakit: /nonexistent/spec.json: cannot read: No such file or directory\n")


def test_stdin_errors_are_named_stdin(cli: Any, served: testing.FakeInstancePlugin) -> None:
    result = cli("instance", "--name", "fake", "provision", "-", input="{\n\n oops")
    assert result.stderr.startswith("infrakit: <stdin>:3: invalid ")


@pytest.mark.parametrize("args", [
    ("nosuch", "describe"),
    ("instance", "--name", "nosuch", "describe"),
    ("flavor", "--name", "nosuch/sub", "validate", "-"),
])
def test_a_missing_plugin_is_not_found(cli: Any, plugins_dir: pathlib.Path,
                                       args: tuple[str, ...]) -> None:
    result = cli(*args, input="{}")
    assert result.exit_code == errors.PluginNotFound.exit_code
    assert len(result.stderr.splitlines()) == 1
    assert f"no socket {plugins_dir / 'nosuch'}" in result.stderr


def test_a_plugin_that_raises_gives_its_message(cli: Any, serve: Any) -> None:
    class Broken(testing.FakeInstancePlugin):
        async def provision(self, spec: instance.Spec) -> instance.ID | None:
            raise KeyError("disk")

    serve("broken", instance=Broken())
    result = cli("instance", "--name", "broken", "provision", "-", input="{}")
    assert (result.exit_code, result.stderr) == (
        errors.RemoteError.exit_code, "infrakit: Instance.Provision: 'disk'\n")


def test_a_socket_nobody_answers_is_unavailable(cli: Any, plugins_dir: pathlib.Path) -> None:
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(plugins_dir / "dead"))  # bound, never listening: connections are refused
    try:
        result = cli("instance", "--name", "dead", "describe")
    finally:
        dead.close()
    assert result.exit_code == errors.Unavailable.exit_code
    assert result.stderr == (f"infrakit: dead: cannot reach plugin at {plugins_dir / 'dead'}: "
                             "Connection refused\n")


def test_a_slow_plugin_times_out_after_the_timeout_flag(cli: Any, serve: Any) -> None:
    class Slow(testing.FakeInstancePlugin):
        async def describe_instances(self, tags: dict[str, str],
                                     properties: bool = False) -> list[instance.Description]:
            await asyncio.sleep(1.0)
            return []

    serve("slow", instance=Slow())
    result = cli("--timeout", "200ms", "instance", "--name", "slow", "describe")
    assert result.exit_code == errors.CallTimeout.exit_code
    assert result.stderr.startswith("infrakit: slow: ")
    assert "within 0.2s" in result.stderr


@pytest.mark.parametrize(("args", "option"), [
    (("--timeout", "10x", "plugin", "ls"), "--timeout"),
    (("--timeout", "-1s", "plugin", "ls"), "--timeout"),
    (("plugin", "stop", "--timeout", "soon", "x"), "--timeout"),
])
def test_a_bad_duration_is_a_usage_error(cli: Any, args: tuple[str, ...], option: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"infrakit: Invalid value for '{option}': expected a "
                                    "duration")
    assert len(result.stderr.splitlines()) == 1


def test_an_internal_error_is_one_line_and_debug_shows_the_traceback(
        cli: Any, served: testing.FakeInstancePlugin, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("bad luck")

    monkeypatch.setattr(render, "instances", explode)
    quiet = cli("instance", "--name", "fake", "describe")
    assert (quiet.exit_code, quiet.stderr) == (
        1, "infrakit: internal error: ZeroDivisionError: bad luck (--debug shows where)\n")
    loud = cli("--debug", "instance", "--name", "fake", "describe")
    assert "Traceback (most recent call last)" in loud.stderr
    assert loud.stderr.endswith("infrakit: internal error: ZeroDivisionError: bad luck "
                                "(--debug shows where)\n")


SETPRIV = shutil.which("setpriv")
DROP = "-dac_override,-dac_read_search"


@pytest.mark.skipif(SETPRIV is None, reason="setpriv (util-linux) is needed to drop root's "
                                            "permission override")
@pytest.mark.parametrize(("args", "message"), [
    (("plugin", "ls"), "cannot read plugins dir {dir}: permission denied"),
    (("instance", "--name", "x", "describe"),
     "cannot look up plugin 'x' in {dir}: Permission denied"),
    (("plugin", "start", "instance-file"), "plugins dir {dir} is not writable: permission denied"),
])
def test_permission_denied_on_the_plugins_dir_is_clear(plugins_dir: pathlib.Path,
                                                       args: tuple[str, ...], message: str) -> None:
    locked = plugins_dir / "locked"
    locked.mkdir(mode=0o700)
    os.chown(locked, 65534, 65534)  # owned by nobody; root loses its override below
    if os.geteuid() != 0:
        locked.chmod(0)
    env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(locked)}
    done = subprocess.run(
        [str(SETPRIV), "--bounding-set", DROP, "--inh-caps", DROP, "--",
         sys.executable, "-m", "infrakit.cli.main", *args],
        capture_output=True, text=True, timeout=60, env=env)
    assert done.stderr == f"infrakit: {message.format(dir=locked)}\n"
    assert done.returncode == errors.UsageError.exit_code
