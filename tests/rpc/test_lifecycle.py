"""A plugin process's files: socket 0600 in a 0700 dir, pid file, clean exit, stale sockets."""

from __future__ import annotations

import fcntl
import os
import pathlib
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from typing import Any

import pytest
from rpc_helpers import Racer

from infrakit import errors
from infrakit.rpc import discovery, server, sockets, sync

SETPRIV = shutil.which("setpriv")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_plugin_and_removes_its_files(
    processes: Any, plugins_dir: pathlib.Path, signum: int
) -> None:
    plugin = processes("mem")
    plugin.wait_ready()
    pid_file = plugins_dir / "mem.pid"
    assert int(pid_file.read_text()) == plugin.popen.pid
    assert plugin.stop(signum) == 0
    assert not (plugins_dir / "mem").exists()
    assert not pid_file.exists()


def test_socket_is_private_and_dir_is_created_private(processes: Any,
                                                     plugins_dir: pathlib.Path) -> None:
    shutil.rmtree(plugins_dir)
    plugin = processes("mem")
    plugin.wait_ready()
    assert stat.S_IMODE(os.stat(plugins_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(plugins_dir / "mem").st_mode) == 0o600


def test_plugin_process_answers_the_sync_client(processes: Any,
                                                plugins_dir: pathlib.Path) -> None:
    plugin = processes("mem")
    plugin.wait_ready()
    client = sync.Client(discovery.find("mem", plugins_dir))
    made = client.call("Instance.Provision", {"Spec": {"Tags": {"a": "b"}}})
    assert made == {"Type": "", "ID": "instance-1"}
    with pytest.raises(errors.NotFoundError):
        client.call("Instance.Destroy", {"Instance": "instance-9"})


def test_stale_socket_is_replaced(processes: Any, plugins_dir: pathlib.Path) -> None:
    first = processes("mem")
    first.wait_ready()
    first.stop(signal.SIGKILL)  # dies without cleaning up: socket and pid file stay behind
    assert (plugins_dir / "mem").exists() and not sockets.is_live(plugins_dir / "mem")
    second = processes("mem")
    second.wait_ready()
    assert int((plugins_dir / "mem.pid").read_text()) == second.popen.pid


def test_live_socket_makes_the_newcomer_refuse_naming_the_pid(
    processes: Any, plugins_dir: pathlib.Path
) -> None:
    first = processes("mem")
    first.wait_ready()
    second = processes("mem")
    assert second.popen.wait(timeout=10) == errors.ConflictError.exit_code
    message = second.popen.stderr.read()
    assert f"already listening at {plugins_dir / 'mem'} (pid {first.popen.pid})" in message
    assert "Traceback" not in message
    assert sockets.is_live(plugins_dir / "mem")


RACE_ROUNDS = 8
"""Rounds of the start race; before the fix, most rounds left two "winners"."""


def test_two_plugins_racing_for_one_name_leave_one_winner_with_its_pid_file(
    plugins_dir: pathlib.Path,
) -> None:
    path, pid_file = plugins_dir / "mem", plugins_dir / "mem.pid"
    for _ in range(RACE_ROUNDS):
        racers = [Racer("mem", plugins_dir) for _ in range(2)]
        try:
            assert [racer.line() for racer in racers] == ["ready", "ready"]
            for racer in racers:
                racer.go()
            outcomes = [racer.line() for racer in racers]
            assert sorted(o.partition(":")[0] for o in outcomes) == ["listening", "refused"]
            winner, loser = racers if outcomes[0] == "listening" else racers[::-1]
            assert loser.popen.wait(timeout=10) == errors.ConflictError.exit_code
            assert f"(pid {winner.popen.pid})" in " ".join(outcomes)
            assert sockets.read_pid(path) == winner.popen.pid
            assert sync.Client(path).call("Test.Pid", {}) == winner.popen.pid
            assert winner.stop() == 0
            assert not path.exists() and not pid_file.exists()
        finally:
            for racer in racers:
                racer.close()


async def test_a_plugins_dir_lock_held_elsewhere_delays_the_start_but_never_blocks_it(
    plugins_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(server, "LOCK_WAIT", 0.1)
    holder = os.open(plugins_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)  # e.g. a child forked at the wrong moment
        async with server.Server("mem", plugins_dir=plugins_dir):
            assert sockets.is_live(plugins_dir / "mem")
    finally:
        os.close(holder)
    assert "stays locked; starting without the lock" in caplog.text


async def test_stop_leaves_a_pid_file_that_names_another_process(
    plugins_dir: pathlib.Path,
) -> None:
    running = server.Server("mem", plugins_dir=plugins_dir)
    await running.start()
    try:
        assert sockets.read_pid(plugins_dir / "mem") == os.getpid()
        (plugins_dir / "mem.pid").write_text("999999\n")  # a successor took over the name
    finally:
        await running.stop()
    assert (plugins_dir / "mem.pid").read_text() == "999999\n"


async def test_a_file_that_is_not_a_socket_is_never_replaced(plugins_dir: pathlib.Path) -> None:
    (plugins_dir / "mem").write_text("precious")
    with pytest.raises(errors.ConflictError, match="exists and is not a socket"):
        await server.Server("mem", plugins_dir=plugins_dir).start()
    assert (plugins_dir / "mem").read_text() == "precious"


async def test_socket_path_too_long_is_a_clear_error() -> None:
    deep = pathlib.Path(tempfile.mkdtemp(prefix="ik-")) / ("d" * 100)
    try:
        with pytest.raises(errors.UsageError, match=r"unix sockets allow at most 107"):
            await server.Server("plugin", plugins_dir=deep).start()
    finally:
        shutil.rmtree(deep.parent)


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "nul\0byte"])
def test_bad_plugin_names_are_refused(name: str) -> None:
    with pytest.raises(errors.UsageError, match="is not valid"):
        server.Server(name)


def test_permission_denied_on_the_plugins_dir_is_a_clear_error(
    plugins_dir: pathlib.Path,
) -> None:
    assert SETPRIV, "setpriv (util-linux) drops root's permission override for this test"
    locked = plugins_dir / "locked"
    locked.mkdir(mode=0o700)
    os.chown(locked, 65534, 65534)  # owned by nobody; we drop the capability to ignore that
    code = ("from infrakit.rpc import server; "
            f"server.run('mem', plugins_dir={str(locked / 'plugins')!r})")
    drop = "-dac_override,-dac_read_search"
    done = subprocess.run(
        [str(SETPRIV), "--bounding-set", drop, "--inh-caps", drop, "--",
         sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == errors.UsageError.exit_code
    assert f"cannot create plugins dir {locked / 'plugins'}: permission denied" in done.stderr


def test_discovery_lists_only_sockets(plugins_dir: pathlib.Path) -> None:
    (plugins_dir / "mem.pid").write_text("1")
    (plugins_dir / "notes.txt").write_text("x")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(plugins_dir / "mem"))
    try:
        assert list(discovery.list_sockets(plugins_dir)) == ["mem"]
    finally:
        listener.close()


@pytest.mark.parametrize(("environment", "expected"), [
    ({"INFRAKIT_PLUGINS_DIR": "/x/p", "INFRAKIT_HOME": "/x/h"}, "/x/p"),
    ({"INFRAKIT_HOME": "/x/h"}, "/x/h/plugins"),
    ({"HOME": "/x/home"}, "/x/home/.infrakit/plugins"),
])
def test_plugins_dir_resolution_order(monkeypatch: pytest.MonkeyPatch,
                                      environment: dict[str, str], expected: str) -> None:
    for variable in ("INFRAKIT_PLUGINS_DIR", "INFRAKIT_HOME"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    assert str(discovery.plugins_dir()) == expected
