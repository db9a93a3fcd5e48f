"""``rpc.launch``: the launch config, starting plugin processes, holding them, stopping them
safely (never a pid that is not the plugin's)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from infrakit import errors, testing
from infrakit.rpc import launch, server, sockets

HERE = pathlib.Path(__file__).parent
MEMORY = HERE / "memory_plugin.py"


def memory_rule(name: str, directory: pathlib.Path, *, same_pgid: bool = False) -> launch.Rule:
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(MEMORY))} {name} {directory}"
    return launch.Rule.from_wire({"Plugin": name,
                                  "Launch": {"os": {"Cmd": command, "SamePgID": same_pgid}}})


@pytest.fixture
def reaper(plugins_dir: pathlib.Path) -> Iterator[list[int]]:
    """Pids to SIGKILL at the end (and every plugin whose pid file is left in the dir)."""
    pids: list[int] = []
    try:
        yield pids
    finally:
        for pid_file in plugins_dir.glob("*.pid"):
            pids.append(int(pid_file.read_text()))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    return launch._alive(pid)


# The launch config ----------------------------------------------------------------------

def test_parse_config_gives_rules_by_plugin() -> None:
    rules = launch.parse_config(
        [{"Plugin": "a", "Launch": {"os": {"Cmd": "run-a", "SamePgID": True}}},
         {"Plugin": "b", "Launch": {"os": {"Cmd": "run-b"}, "docker": {"Image": "x"}}}],
        source="c.yml")
    assert list(rules) == ["a", "b"]
    assert rules["a"].launch.os == launch.OsLaunch(cmd="run-a", same_pg_id=True)
    assert rules["b"].launch.os is not None and not rules["b"].launch.os.same_pg_id


@pytest.mark.parametrize(("data", "message"), [
    ({"Plugin": "a"}, "launch config c.yml: expected a list of {Plugin, Launch} entries: "
                      "Input should be a valid list"),
    ([{"Launch": {}}], "launch config c.yml: [0].Plugin: Field required"),
    ([{"Plugin": "a", "Launch": {"os": {}}}], "launch config c.yml: [0].Launch.os.Cmd: Field "
                                              "required"),
    ([{"Plugin": "a", "Launch": {"os": {"Cmd": "x"}}},
      {"Plugin": "b", "Launch": {"os": {"Cmd": 3}}}],
     "launch config c.yml: [1].Launch.os.Cmd: Input should be a valid string"),
    ([{"Plugin": "a", "Launch": {"os": {"Cmd": "x", "SamePgID": "maybe"}}}],
     "launch config c.yml: [0].Launch.os.SamePgID: Input should be a valid boolean, unable to "
     "interpret input"),
    ([{"Plugin": "a", "Launch": {"os": {"Cmd": ""}}}],
     "launch config c.yml: [0].Launch.os.Cmd: String should have at least 1 character"),
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


# Starting -------------------------------------------------------------------------------

@pytest.mark.parametrize("same_pgid", [False, True])
def test_start_waits_until_the_plugin_answers_then_stop_ends_it(
        plugins_dir: pathlib.Path, reaper: list[int], same_pgid: bool) -> None:
    rules = {"mem": memory_rule("mem", plugins_dir, same_pgid=same_pgid)}
    [started] = launch.start(["mem"], rules, plugins_dir=plugins_dir)
    assert started.ok, started.message
    assert started.pid == sockets.read_pid(plugins_dir / "mem")
    assert started.message == f"mem started (pid {started.pid}, log {plugins_dir}/mem.log)"
    assert sockets.is_live(plugins_dir / "mem")
    assert started.pid is not None
    in_our_group = os.getpgid(started.pid) == os.getpgid(0)
    assert in_our_group is same_pgid
    [stopped] = launch.stop(["mem"], plugins_dir=plugins_dir)
    assert (stopped.ok, stopped.message) == (True, f"mem stopped (pid {started.pid})")
    assert not alive(started.pid)
    assert not (plugins_dir / "mem").exists() and not (plugins_dir / "mem.pid").exists()
    assert started.process is not None and started.process.wait(5) == 0


def test_start_exports_the_plugins_dir_and_logs_to_a_file(plugins_dir: pathlib.Path,
                                                          reaper: list[int]) -> None:
    rule = launch.Rule.from_wire({"Plugin": "env", "Launch": {"os": {
        "Cmd": 'echo "dir=$INFRAKIT_PLUGINS_DIR"; exit 7'}}})
    [failed] = launch.start(["env"], {"env": rule}, plugins_dir=plugins_dir)
    assert isinstance(failed.error, errors.UsageError)
    assert failed.message == (f"env exited with status 7 before answering; last lines of "
                              f"{plugins_dir}/env.log:\n  dir={plugins_dir}")


def test_a_plugin_that_never_answers_is_killed_after_the_timeout(plugins_dir: pathlib.Path,
                                                                 reaper: list[int]) -> None:
    marker = plugins_dir / "shell.pid"
    rule = launch.Rule.from_wire({"Plugin": "mute", "Launch": {"os": {
        "Cmd": f"echo $$ > {marker}; echo waiting; exec sleep 30"}}})
    began = time.monotonic()
    [failed] = launch.start(["mute"], {"mute": rule}, plugins_dir=plugins_dir, timeout=0.5)
    assert time.monotonic() - began < 5
    assert failed.message == (f"mute did not answer on {plugins_dir}/mute within 500ms; last "
                              f"lines of {plugins_dir}/mute.log:\n  waiting")
    assert not alive(int(marker.read_text()))


def test_a_name_without_rule_or_entry_point_is_not_found(plugins_dir: pathlib.Path) -> None:
    [failed] = launch.start(["nosuch"], {}, plugins_dir=plugins_dir, config_source="c.yml")
    assert isinstance(failed.error, errors.PluginNotFound)
    assert failed.message == ("nosuch: not in the launch config c.yml and no 'infrakit.plugins' "
                              "entry point has that name")


def test_a_running_plugin_is_not_started_twice(plugins_dir: pathlib.Path,
                                               reaper: list[int]) -> None:
    rules = {"mem": memory_rule("mem", plugins_dir)}
    [first] = launch.start(["mem"], rules, plugins_dir=plugins_dir)
    [second] = launch.start(["mem"], rules, plugins_dir=plugins_dir)
    assert (second.ok, second.process) == (True, None)
    assert second.message == f"mem is already running (pid {first.pid})"


@pytest.mark.parametrize(("name", "message"), [
    ("a/b", "plugin name 'a/b' is not valid"),
    ("x" * 120, "unix sockets allow at most 107"),
])
def test_bad_names_fail_before_anything_starts(plugins_dir: pathlib.Path, name: str,
                                               message: str) -> None:
    [failed] = launch.start([name], {}, plugins_dir=plugins_dir)
    assert isinstance(failed.error, errors.UsageError)
    assert message in failed.message
    assert list(plugins_dir.iterdir()) == []


# Holding --------------------------------------------------------------------------------

def test_hold_stops_what_it_started_on_sigint(plugins_dir: pathlib.Path,
                                              reaper: list[int]) -> None:
    started = launch.start(["mem"], {"mem": memory_rule("mem", plugins_dir)},
                           plugins_dir=plugins_dir)
    pid = started[0].pid
    assert pid is not None
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        [stopped] = launch.hold(started, plugins_dir=plugins_dir)
    finally:
        timer.cancel()
    assert stopped.message == f"mem stopped (pid {pid})"
    assert not alive(pid)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_hold_returns_when_its_plugins_are_gone(plugins_dir: pathlib.Path,
                                                reaper: list[int]) -> None:
    started = launch.start(["mem"], {"mem": memory_rule("mem", plugins_dir)},
                           plugins_dir=plugins_dir)
    assert started[0].pid is not None
    threading.Timer(0.2, os.kill, (started[0].pid, signal.SIGTERM)).start()
    assert launch.hold(started, plugins_dir=plugins_dir) == []


# Stopping safely ------------------------------------------------------------------------

def test_stop_of_a_plugin_that_is_not_there(plugins_dir: pathlib.Path) -> None:
    [missing] = launch.stop(["ghost"], plugins_dir=plugins_dir)
    assert isinstance(missing.error, errors.NotFoundError)
    assert missing.message == f"ghost is not running (no socket {plugins_dir}/ghost)"


def test_a_stale_pid_file_is_reported_and_removed(plugins_dir: pathlib.Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    (plugins_dir / "old.pid").write_text(f"{gone.pid}\n")
    [stale] = launch.stop(["old"], plugins_dir=plugins_dir)
    assert isinstance(stale.error, errors.NotFoundError)
    assert stale.message == (f"old is not running (stale pid file: pid {gone.pid} does not "
                             "exist; removed it)")
    assert not (plugins_dir / "old.pid").exists()


def test_a_pid_file_naming_another_process_is_never_signalled(
        plugins_dir: pathlib.Path, reaper: list[int]) -> None:
    [started] = launch.start(["mem"], {"mem": memory_rule("mem", plugins_dir)},
                             plugins_dir=plugins_dir)
    assert started.pid is not None
    reaper.append(started.pid)  # its pid file is about to lie about it
    bystander = subprocess.Popen(["sleep", "30"])
    reaper.append(bystander.pid)
    (plugins_dir / "mem.pid").write_text(f"{bystander.pid}\n")
    [refused] = launch.stop(["mem"], plugins_dir=plugins_dir)
    assert isinstance(refused.error, errors.ConflictError)
    assert refused.message == (f"mem: pid {bystander.pid} (from {plugins_dir}/mem.pid) does not "
                               f"serve {plugins_dir}/mem; not signalling it")
    assert bystander.poll() is None
    assert alive(started.pid)
    bystander.kill()
    bystander.wait()


def test_a_live_pid_without_socket_is_not_signalled(plugins_dir: pathlib.Path,
                                                    reaper: list[int]) -> None:
    bystander = subprocess.Popen(["sleep", "30"])
    reaper.append(bystander.pid)
    (plugins_dir / "mem.pid").write_text(f"{bystander.pid}\n")
    [refused] = launch.stop(["mem"], plugins_dir=plugins_dir)
    assert isinstance(refused.error, errors.ConflictError)
    assert bystander.poll() is None
    bystander.kill()
    bystander.wait()


STUBBORN = """
import asyncio, signal, sys
from infrakit import testing
from infrakit.rpc import server

async def main():
    async with server.Server(sys.argv[1], instance=testing.FakeInstancePlugin(),
                             plugins_dir=sys.argv[2]):
        await asyncio.Event().wait()

signal.signal(signal.SIGTERM, signal.SIG_IGN)
asyncio.run(main())
"""


def test_a_plugin_that_ignores_sigterm_is_killed_and_its_files_removed(
        plugins_dir: pathlib.Path, tmp_path: pathlib.Path, reaper: list[int]) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    rule = launch.Rule.from_wire({"Plugin": "stubborn", "Launch": {"os": {
        "Cmd": f"{sys.executable} {script} stubborn {plugins_dir}"}}})
    [started] = launch.start(["stubborn"], {"stubborn": rule}, plugins_dir=plugins_dir)
    assert started.ok, started.message
    [killed] = launch.stop(["stubborn"], plugins_dir=plugins_dir, timeout=0.3)
    assert killed.ok
    assert killed.message == (f"stubborn killed (pid {started.pid}): it did not exit within "
                              "300ms of SIGTERM")
    assert not (plugins_dir / "stubborn").exists()
    assert not (plugins_dir / "stubborn.pid").exists()


# Listing --------------------------------------------------------------------------------

async def test_listing_shows_each_interface_and_subtype(plugins_dir: pathlib.Path) -> None:
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(plugins_dir / "dead"))
    plugin = testing.FakeInstancePlugin()
    try:
        async with server.Server("mem", instance={"": plugin, "east": plugin},
                                 flavor=testing.FakeFlavorPlugin(), plugins_dir=plugins_dir):
            rows = await asyncio.to_thread(launch.listing, plugins_dir)
    finally:
        dead.close()
    assert [(row.interface, row.name, row.error is None) for row in rows] == [
        (None, "dead", False),
        ("Flavor/0.1.0", "mem", True),
        ("Instance/0.5.0", "mem", True),
        ("Instance/0.5.0", "mem/east", True),
    ]
    assert rows[0].error is not None and "Connection refused" in rows[0].error
