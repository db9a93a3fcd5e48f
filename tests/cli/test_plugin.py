"""``infrakit plugin ls|start|stop`` end to end: the real commands starting real plugins."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infrakit import errors, processes, testing
from infrakit.rpc import listening, sockets

from .conftest import Loop

BIN = pathlib.Path(sys.executable).parent
INFRAKIT = str(BIN / "infrakit")

CONFIG = """\
{% set bin = env("IK_TEST_BIN") %}
- Plugin: instance-file
  Launch:
    os:
      Cmd: {{ bin }}/infrakit-instance-file --dir {{ env("IK_TEST_FILES") }} --name instance-file
- Plugin: flavor-vanilla
  Launch:
    os: {Cmd: "{{ bin }}/infrakit-flavor-vanilla --name flavor-vanilla --log 5"}
- Plugin: broken
  Launch:
    os: {Cmd: "echo cannot start: no such disk; exit 3"}
- Plugin: mute
  Launch:
    os: {Cmd: "echo $$ > {{ env('IK_TEST_FILES') }}-mute.pid; exec sleep 60"}
"""


@pytest.fixture
def env(plugins_dir: pathlib.Path, tmp_path: pathlib.Path) -> Iterator[dict[str, str]]:
    """The environment of the commands; every plugin left running is stopped afterwards."""
    values = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(plugins_dir),
              "INFRAKIT_HOME": str(tmp_path / "home"), "IK_TEST_BIN": str(BIN),
              "IK_TEST_FILES": str(tmp_path / "files")}
    try:
        yield values
    finally:
        subprocess.run([INFRAKIT, "plugin", "stop", "--all"], env=values, capture_output=True,
                       timeout=60)
        for pid_file in plugins_dir.glob("*.pid"):  # only plugins these tests started
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


@pytest.fixture
def config(tmp_path: pathlib.Path) -> str:
    path = tmp_path / "plugins.yml"
    path.write_text(CONFIG)
    return str(path)


@pytest.fixture
def run(env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def infrakit(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([INFRAKIT, *args], env=env, input=input, capture_output=True,
                              text=True, timeout=60)
    return infrakit


def ls_row(interface: str, directory: pathlib.Path, name: str) -> str:
    return f"{interface:<20}{directory / name!s:<50}{name}"


def test_start_ls_use_and_stop_real_plugins(run: Any, config: str, plugins_dir: pathlib.Path,
                                            tmp_path: pathlib.Path) -> None:
    started = run("plugin", "start", "--config-url", config, "instance-file", "flavor-vanilla")
    assert (started.returncode, started.stderr) == (0, "")
    pids = {name: sockets.read_pid(plugins_dir / name)
            for name in ("instance-file", "flavor-vanilla")}
    assert started.stdout == "".join(
        f"{name} started (pid {pid}, log {plugins_dir / name}.log)\n"
        for name, pid in pids.items())

    rows = [ls_row("Flavor/0.1.0", plugins_dir, "flavor-vanilla"),
            ls_row("Instance/0.5.0", plugins_dir, "instance-file")]
    listed = run("plugin", "ls")
    assert listed.stdout.splitlines() == [f"{'INTERFACE':<20}{'LISTEN':<50}NAME", *rows]
    assert run("plugin", "ls", "-q").stdout.splitlines() == rows
    assert json.loads(run("plugin", "ls", "-o", "json").stdout)[1] == {
        "Interface": "Instance/0.5.0", "Listen": str(plugins_dir / "instance-file"),
        "Name": "instance-file"}

    made = run("instance-file", "provision", "-", input='{"Tags": {"tier": "web"}}')
    iid = made.stdout.strip()
    assert iid.startswith("instance-") and (tmp_path / "files" / iid).exists()
    assert run("instance", "--name", "instance-file", "describe", "-q").stdout == \
        f"{iid:<30}\t{'  -   ':<30}\ttier=web\n"

    stopped = run("plugin", "stop", "instance-file", "flavor-vanilla")
    assert (stopped.returncode, stopped.stdout) == (0, "".join(
        f"{name} stopped (pid {pid})\n" for name, pid in pids.items()))
    assert list(plugins_dir.glob("*.pid")) == []
    assert not any(processes.alive(pid) for pid in pids.values() if pid)
    assert run("plugin", "ls", "-q").stdout == ""


def test_wait_stops_the_plugins_on_sigint(env: dict[str, str], config: str,
                                          plugins_dir: pathlib.Path) -> None:
    waiting = subprocess.Popen(
        [INFRAKIT, "plugin", "start", "--wait", "--config-url", config, "instance-file"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert waiting.stderr is not None
        assert waiting.stderr.readline() == "Plugins running; Ctrl-C (or SIGTERM) stops them.\n"
        pid = sockets.read_pid(plugins_dir / "instance-file")
        waiting.send_signal(signal.SIGINT)
        out, err = waiting.communicate(timeout=30)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 0, err
    assert out.splitlines()[-1] == f"instance-file stopped (pid {pid})"
    assert err == ""
    assert pid is not None and not processes.alive(pid)
    assert not (plugins_dir / "instance-file").exists()


def test_ctrl_c_before_every_plugin_answers_stops_them_all_and_exits_130(
        env: dict[str, str], config: str, plugins_dir: pathlib.Path) -> None:
    """``--wait`` plugins live only as long as the command, also when Ctrl-C comes while
    one of them has not answered yet."""
    waiting = subprocess.Popen(
        [INFRAKIT, "plugin", "start", "--wait", "--timeout", "60s", "--config-url", config,
         "instance-file", "mute"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mute_shell = pathlib.Path(f"{env['IK_TEST_FILES']}-mute")  # its pid in mute_shell.pid
    try:
        deadline = time.monotonic() + 20
        while not (mute := sockets.read_pid(mute_shell)) or \
                not sockets.is_live(plugins_dir / "instance-file"):
            assert time.monotonic() < deadline and waiting.poll() is None
            time.sleep(0.05)
        waiting.send_signal(signal.SIGINT)
        out, err = waiting.communicate(timeout=30)
    finally:
        testing.stop_processes([waiting])
    assert waiting.returncode == errors.Interrupted.exit_code == 130, err
    assert err.startswith(
        f"infrakit: mute was interrupted before it answered; {plugins_dir}/mute.log is empty")
    assert "Plugins running" not in err
    assert out.splitlines()[-1].startswith("instance-file stopped (pid ")
    assert not processes.alive(mute)
    assert list(plugins_dir.glob("instance-file*")) == [plugins_dir / "instance-file.log"]


def test_a_name_missing_from_the_config_starts_from_its_entry_point(
        run: Any, plugins_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    started = run("plugin", "start", "flavor-combo")
    assert started.returncode == 0, started.stderr
    pid = sockets.read_pid(plugins_dir / "flavor-combo")
    command = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert command[1:5] == [b"-m", b"infrakit.cli.entry", b"flavor-combo", b"--name"]
    assert run("plugin", "ls", "-q").stdout.splitlines() == [
        ls_row("Flavor/0.1.0", plugins_dir, "flavor-combo")]


@pytest.mark.parametrize(("names", "code", "message"), [
    (("nosuch",), errors.PluginNotFound.exit_code,
     "infrakit: nosuch: not in the launch config {config} and no 'infrakit.plugins' entry point "
     "has that name\n"),
    (("broken",), errors.UsageError.exit_code,
     "infrakit: broken exited with status 3 before answering; last lines of {dir}/broken.log:\n"
     "  cannot start: no such disk\n"),
])
def test_start_failures_are_reported(run: Any, config: str, plugins_dir: pathlib.Path,
                                     names: tuple[str, ...], code: int, message: str) -> None:
    failed = run("plugin", "start", "--config-url", config, *names)
    assert failed.returncode == code
    assert failed.stderr == message.format(config=config, dir=plugins_dir)


def test_a_bad_launch_config_names_entry_and_field(run: Any, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"Plugin": "a", "Launch": {"os": {"Cmd": "x"}}}, {"Plugin": "b", '
                    '"Launch": {"os": {"SamePgID": true}}}]')
    failed = run("plugin", "start", "--config-url", str(path), "a")
    assert failed.returncode == errors.InvalidError.exit_code
    assert failed.stderr == f"infrakit: launch config {path}: [1].Launch.os.Cmd: required\n"


def test_a_template_error_in_the_launch_config_names_the_line(run: Any,
                                                             tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("- Plugin: a\n  Launch: {os: {Cmd: '{{ env() }}'}}\n")
    failed = run("plugin", "start", "--config-url", str(path), "a")
    assert failed.returncode == errors.UsageError.exit_code
    assert failed.stderr.startswith(f"infrakit: {path}:2: ")


def test_stop_of_a_plugin_that_is_not_running(run: Any, plugins_dir: pathlib.Path) -> None:
    failed = run("plugin", "stop", "ghost")
    assert failed.returncode == errors.NotFoundError.exit_code
    assert failed.stderr == f"infrakit: ghost is not running (no socket {plugins_dir}/ghost)\n"
    assert run("plugin", "stop").stderr == "infrakit: name the plugins to stop, or use --all\n"


def test_ls_shows_a_plugin_that_does_not_answer(cli: Any, plugins_dir: pathlib.Path) -> None:
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(plugins_dir / "dead"))
    try:
        result = cli("plugin", "ls", "-q")
    finally:
        dead.close()
    assert result.exit_code == 0
    assert result.stdout == ls_row("(no answer)", plugins_dir, "dead") + "\n"
    assert result.stderr == (f"infrakit: plugin dead does not answer: dead: cannot reach plugin "
                             f"at {plugins_dir}/dead: Connection refused\n")


def test_a_socket_path_too_long_is_refused(cli: Any, plugins_dir: pathlib.Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    deep = plugins_dir / ("d" * 100)
    monkeypatch.setenv("INFRAKIT_PLUGINS_DIR", str(deep))
    result = cli("plugin", "start", "instance-file")
    path = deep / "instance-file"
    assert result.exit_code == errors.UsageError.exit_code
    assert result.stderr == (f"infrakit: socket path {path} is {len(str(path))} bytes; unix "
                             "sockets allow at most 107: use a shorter INFRAKIT_PLUGINS_DIR or "
                             "plugin name\n")


def test_with_wait_a_failure_stops_the_plugins_it_started(run: Any, config: str,
                                                          plugins_dir: pathlib.Path) -> None:
    failed = run("plugin", "start", "--wait", "--config-url", config, "instance-file", "broken")
    assert failed.returncode == errors.UsageError.exit_code
    lines = failed.stdout.splitlines()
    assert lines[0].startswith("instance-file started (pid ")
    assert lines[1].startswith("instance-file stopped (pid ")
    assert failed.stderr.startswith("infrakit: broken exited with status 3")
    assert not (plugins_dir / "instance-file").exists()


def test_ls_widens_the_listen_column_for_a_long_path(cli: Any, plugins_dir: pathlib.Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    deep = plugins_dir / ("d" * 50)
    monkeypatch.setenv("INFRAKIT_PLUGINS_DIR", str(deep))
    loop = Loop(deep)
    try:
        loop.serve("mem", instance=testing.FakeInstancePlugin())
        result = cli("plugin", "ls")
    finally:
        loop.close()
    listen = str(deep / "mem")
    assert len(listen) > 50
    assert result.stdout.splitlines() == [
        f"{'INTERFACE':<20}{'LISTEN':<{len(listen) + 2}}NAME",
        f"{'Instance/0.5.0':<20}{listen}  mem"]


def test_ls_shows_the_tcp_listener_of_a_plugin_that_has_one(
        cli: Any, serve: Callable[..., Any], plugins_dir: pathlib.Path) -> None:
    serve("local", instance=testing.FakeInstancePlugin())
    remote = serve("remote", instance=testing.FakeInstancePlugin(),
                   listen=listening.Listen("127.0.0.1", 0, None))
    url = remote.url
    assert url is not None and url.startswith("http://127.0.0.1:")

    listed = cli("plugin", "ls")
    assert listed.stdout.splitlines() == [
        f"{'INTERFACE':<20}{'LISTEN':<50}{'NAME':<20}TCP",
        f"{'Instance/0.5.0':<20}{plugins_dir / 'local'!s:<50}{'local':<20}-",
        f"{'Instance/0.5.0':<20}{plugins_dir / 'remote'!s:<50}{'remote':<20}{url}"]
    wire = json.loads(cli("plugin", "ls", "-o", "json").stdout)
    assert [row.get("TCP") for row in wire] == [None, url]
