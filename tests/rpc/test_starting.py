"""``rpc.starting``: starting plugin processes, waiting until they answer, holding them in the
foreground and releasing them."""

from __future__ import annotations

import os
import pathlib
import signal
import threading
from collections.abc import Iterator

import pytest
from launch_helpers import memory_rule, reaping

from infrakit import errors, processes
from infrakit.rpc import launch, sockets, starting, stopping


@pytest.fixture
def reaper(plugins_dir: pathlib.Path) -> Iterator[list[int]]:
    with reaping(plugins_dir) as pids:
        yield pids


@pytest.mark.parametrize("same_pgid", [False, True])
def test_start_waits_until_the_plugin_answers_then_stop_ends_it(
        plugins_dir: pathlib.Path, reaper: list[int], same_pgid: bool) -> None:
    rules = {"mem": memory_rule("mem", plugins_dir, same_pgid=same_pgid)}
    [started] = starting.start(["mem"], rules, plugins_dir=plugins_dir)
    assert started.ok, started.message
    assert started.pid == sockets.read_pid(plugins_dir / "mem")
    assert started.message == f"mem started (pid {started.pid}, log {plugins_dir}/mem.log)"
    assert sockets.is_live(plugins_dir / "mem")
    assert started.pid is not None
    in_our_group = os.getpgid(started.pid) == os.getpgid(0)
    assert in_our_group is same_pgid
    [stopped] = stopping.stop(["mem"], plugins_dir=plugins_dir)
    assert (stopped.ok, stopped.message) == (True, f"mem stopped (pid {started.pid})")
    assert not processes.alive(started.pid)
    assert not (plugins_dir / "mem").exists() and not (plugins_dir / "mem.pid").exists()
    assert started.process is not None and started.process.wait(5) == 0


def test_start_exports_the_plugins_dir_and_logs_to_a_file(plugins_dir: pathlib.Path,
                                                          reaper: list[int]) -> None:
    rule = launch.Rule.from_wire({"Plugin": "env", "Launch": {"os": {
        "Cmd": 'echo "dir=$INFRAKIT_PLUGINS_DIR"; exit 7'}}})
    [failed] = starting.start(["env"], {"env": rule}, plugins_dir=plugins_dir)
    assert isinstance(failed.error, errors.UsageError)
    assert failed.message == (f"env exited with status 7 before answering; last lines of "
                              f"{plugins_dir}/env.log:\n  dir={plugins_dir}")


def mute_rule(marker: pathlib.Path) -> launch.Rule:
    """A plugin that never answers; its shell's pid goes to ``marker``."""
    return launch.Rule.from_wire({"Plugin": "mute", "Launch": {"os": {
        "Cmd": f"echo $$ > {marker}; echo waiting; exec sleep 30"}}})


def test_a_plugin_that_never_answers_is_killed_after_the_timeout(plugins_dir: pathlib.Path,
                                                                 reaper: list[int]) -> None:
    marker = plugins_dir / "shell.pid"
    [failed] = starting.start(["mute"], {"mute": mute_rule(marker)}, plugins_dir=plugins_dir,
                              timeout=0.5)
    assert failed.message == (f"mute did not answer on {plugins_dir}/mute within 500ms; last "
                              f"lines of {plugins_dir}/mute.log:\n  waiting")
    assert not processes.alive(int(marker.read_text()))


def test_an_interrupted_start_kills_what_has_not_answered(plugins_dir: pathlib.Path,
                                                          reaper: list[int]) -> None:
    marker = plugins_dir / "shell.pid"
    interrupted = threading.Event()
    threading.Timer(0.5, interrupted.set).start()
    [failed] = starting.start(["mute"], {"mute": mute_rule(marker)}, plugins_dir=plugins_dir,
                              timeout=30, interrupted=interrupted)
    assert failed.message == (f"mute was interrupted before it answered; last lines of "
                              f"{plugins_dir}/mute.log:\n  waiting")
    assert not processes.alive(int(marker.read_text()))


def test_a_name_without_rule_or_entry_point_is_not_found(plugins_dir: pathlib.Path) -> None:
    [failed] = starting.start(["nosuch"], {}, plugins_dir=plugins_dir, config_source="c.yml")
    assert isinstance(failed.error, errors.PluginNotFound)
    assert failed.message == ("nosuch: not in the launch config c.yml and no 'infrakit.plugins' "
                              "entry point has that name")


def test_a_running_plugin_is_not_started_twice(plugins_dir: pathlib.Path,
                                               reaper: list[int]) -> None:
    rules = {"mem": memory_rule("mem", plugins_dir)}
    [first] = starting.start(["mem"], rules, plugins_dir=plugins_dir)
    [second] = starting.start(["mem"], rules, plugins_dir=plugins_dir)
    assert (second.ok, second.process) == (True, None)
    assert second.message == f"mem is already running (pid {first.pid})"


@pytest.mark.parametrize(("name", "message"), [
    ("a/b", "plugin name 'a/b' is not valid"),
    ("x" * 120, "unix sockets allow at most 107"),
])
def test_bad_names_fail_before_anything_starts(plugins_dir: pathlib.Path, name: str,
                                               message: str) -> None:
    [failed] = starting.start([name], {}, plugins_dir=plugins_dir)
    assert isinstance(failed.error, errors.UsageError)
    assert message in failed.message
    assert list(plugins_dir.iterdir()) == []


# Holding --------------------------------------------------------------------------------

def test_hold_stops_what_it_started_on_sigint(plugins_dir: pathlib.Path,
                                              reaper: list[int]) -> None:
    started = starting.start(["mem"], {"mem": memory_rule("mem", plugins_dir)},
                             plugins_dir=plugins_dir)
    pid = started[0].pid
    assert pid is not None
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        [stopped] = starting.hold(started, plugins_dir=plugins_dir)
    finally:
        timer.cancel()
    assert stopped.message == f"mem stopped (pid {pid})"
    assert not processes.alive(pid)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_hold_returns_when_its_plugins_are_gone(plugins_dir: pathlib.Path,
                                                reaper: list[int]) -> None:
    started = starting.start(["mem"], {"mem": memory_rule("mem", plugins_dir)},
                             plugins_dir=plugins_dir)
    assert started[0].pid is not None
    threading.Timer(0.2, os.kill, (started[0].pid, signal.SIGTERM)).start()
    assert starting.hold(started, plugins_dir=plugins_dir) == []
