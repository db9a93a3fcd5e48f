"""``infrakit.processes`` with real child processes: what /proc says about them (alive, zombie,
parent, session, the socket a pid serves) and stopping them (TERM, then KILL)."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infrakit import processes, testing

SLEEP = ["sleep", "30"]

# Python children print "ready" once their signal disposition is in place, so a test never
# signals one before it can tell TERM from KILL.
TRAPS_TERM = """
import pathlib, signal, sys, time
def noted(*_):
    pathlib.Path(sys.argv[1]).write_text("TERM")
    if sys.argv[2] == "exit":
        sys.exit(3)
signal.signal(signal.SIGTERM, noted)
print("ready", flush=True)
while True:
    time.sleep(1)
"""

LEAVES_A_ZOMBIE = """
import os, sys
child = os.fork()
if child == 0:
    os._exit(0)
print(child, flush=True)
sys.stdin.read()  # until the test closes our stdin: only then reap the child
os.waitpid(child, 0)
"""

LISTENS = """
import socket, sys, time
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
server.listen()
print("ready", flush=True)
time.sleep(60)
"""

Spawn = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start a child (text pipes as asked); every one still running is killed at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(argv: list[str], **options: Any) -> subprocess.Popen[str]:
        child = subprocess.Popen(argv, text=True, **options)
        started.append(child)
        return child

    try:
        yield start
    finally:
        for child in started:
            if child.stdin is not None:
                child.stdin.close()  # lets the zombie's parent reap it and exit
            if child.poll() is None:
                child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()


@pytest.fixture
def scratch() -> Iterator[pathlib.Path]:
    """A short private dir (unix socket paths must stay under 108 bytes)."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="ik-"))
    try:
        yield directory
    finally:
        for path in directory.iterdir():
            path.unlink()
        directory.rmdir()


def python(spawn: Spawn, script: str, *args: str, **options: Any) -> subprocess.Popen[str]:
    """A Python child running ``script``, once it said it is ready."""
    child = spawn([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, **options)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


# Reading /proc ----------------------------------------------------------------------------

def test_stat_gives_state_parent_session_and_start_time(spawn: Spawn) -> None:
    child = spawn(SLEEP, start_new_session=True)
    info = processes.stat(child.pid)
    assert info is not None
    assert (info.parent, info.session, info.running) == (os.getpid(), child.pid, True)
    assert info.start_time > 0
    ours = processes.stat(os.getpid())
    assert ours is not None and ours.session != child.pid


def test_a_process_is_alive_until_it_is_gone(spawn: Spawn) -> None:
    child = spawn(SLEEP)
    assert processes.alive(child.pid)
    child.kill()
    child.wait()
    assert not processes.alive(child.pid)
    assert processes.stat(child.pid) is None


def test_our_own_exited_child_is_not_alive_and_gets_reaped(spawn: Spawn) -> None:
    child = spawn(["true"])
    assert testing.wait_until(
        lambda: (info := processes.stat(child.pid)) is None or not info.running)
    assert not processes.alive(child.pid)
    assert processes.stat(child.pid) is None  # no zombie left behind


def test_a_zombie_that_is_not_our_child_is_not_alive(spawn: Spawn) -> None:
    parent = spawn([sys.executable, "-c", LEAVES_A_ZOMBIE], stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE)
    assert parent.stdout is not None
    zombie = int(parent.stdout.readline())
    assert testing.wait_until(lambda: getattr(processes.stat(zombie), "state", None) == "Z")
    os.kill(zombie, 0)  # the kernel still knows the pid: only /proc tells it is dead
    assert not processes.alive(zombie)
    assert processes.stat(zombie) is not None  # not ours to reap: still there, still a zombie


def test_the_pid_that_listens_on_a_socket_holds_it(spawn: Spawn,
                                                  scratch: pathlib.Path) -> None:
    path = scratch / "plugin"
    listener = python(spawn, LISTENS, str(path))
    bystander = spawn(SLEEP)
    assert processes.listening_inodes(path)
    assert processes.holds_socket(listener.pid, path) is True
    assert processes.holds_socket(bystander.pid, path) is False
    assert processes.holds_socket(listener.pid, scratch / "nothing-bound-here") is None


def test_a_socket_we_listen_on_ourselves_is_held_by_our_pid(scratch: pathlib.Path) -> None:
    path = scratch / "ours"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        server.listen()
        assert processes.holds_socket(os.getpid(), path) is True
    finally:
        server.close()


def test_session_members_are_the_running_processes_of_a_session(spawn: Spawn) -> None:
    leader = spawn(["/bin/sh", "-c", "sleep 30 & exec sleep 30"], start_new_session=True)
    assert testing.wait_until(lambda: len(processes.session_members(leader.pid)) == 2)
    assert leader.pid in processes.session_members(leader.pid)
    assert os.getpid() not in processes.session_members(leader.pid)


# Stopping by pid --------------------------------------------------------------------------

def test_stop_ends_a_process_that_honours_term(spawn: Spawn, scratch: pathlib.Path) -> None:
    marker = scratch / "signal"
    child = python(spawn, TRAPS_TERM, str(marker), "exit")
    assert processes.stop(child.pid, timeout=10) is True
    assert marker.read_text() == "TERM"
    assert processes.stat(child.pid) is None


def test_stop_kills_a_process_that_ignores_term_after_the_timeout(
        spawn: Spawn, scratch: pathlib.Path) -> None:
    marker = scratch / "signal"
    child = python(spawn, TRAPS_TERM, str(marker), "stay")
    assert processes.stop(child.pid, timeout=0.3) is False
    assert marker.read_text() == "TERM"  # it got TERM first, and stayed
    assert processes.stat(child.pid) is None


def test_a_child_that_exits_between_the_two_looks_is_reaped(
        spawn: Spawn, monkeypatch: pytest.MonkeyPatch) -> None:
    """``alive`` reaps our child first, then asks the kernel: a child that exits in between
    is a zombie by the second look, and is reaped then (it was left a zombie)."""
    child = spawn(["true"])
    testing.wait_for(lambda: (found := processes.stat(child.pid)) is not None and
                     not found.running, timeout=10, what="the child a zombie")
    reap, looks = processes._reap, []

    def too_early_the_first_time(pid: int) -> bool:
        looks.append(pid)
        return False if len(looks) == 1 else reap(pid)

    monkeypatch.setattr(processes, "_reap", too_early_the_first_time)
    assert processes.alive(child.pid) is False
    assert processes.stat(child.pid) is None and len(looks) == 2


def test_stop_of_a_pid_that_is_already_gone_is_a_clean_stop(spawn: Spawn) -> None:
    child = spawn(["true"])
    child.wait()
    assert processes.stop(child.pid, timeout=1) is True


# Stopping Popens --------------------------------------------------------------------------

def test_stop_popens_terms_then_kills_what_ignores_term(spawn: Spawn,
                                                        scratch: pathlib.Path) -> None:
    polite = spawn(SLEEP)
    stubborn = python(spawn, TRAPS_TERM, str(scratch / "signal"), "stay")
    processes.stop_popens([polite, stubborn], timeout=0.3)
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL


def test_stop_popens_resumes_a_stopped_process_so_it_can_handle_term(
        spawn: Spawn, scratch: pathlib.Path) -> None:
    paused = python(spawn, TRAPS_TERM, str(scratch / "signal"), "exit")
    paused.send_signal(signal.SIGSTOP)
    assert testing.wait_until(lambda: getattr(processes.stat(paused.pid), "state", None) == "T")
    processes.stop_popens([paused], timeout=10)
    assert paused.returncode == 3  # its TERM handler ran: not killed


# Stopping a session -----------------------------------------------------------------------

def test_stop_session_terms_every_member(spawn: Spawn) -> None:
    leader = spawn(["/bin/sh", "-c", "sleep 30 & exec sleep 30"], start_new_session=True)
    assert testing.wait_until(lambda: len(processes.session_members(leader.pid)) == 2)
    assert processes.stop_session(leader.pid, timeout=10, reap=leader.poll) is True
    assert processes.session_members(leader.pid) == []
    assert leader.returncode == -signal.SIGTERM


def test_stop_session_kills_members_that_ignore_term(spawn: Spawn) -> None:
    # An ignored signal stays ignored across fork and exec: both sleeps ignore TERM.
    leader = spawn(["/bin/sh", "-c", "trap '' TERM; sleep 30 & exec sleep 30"],
                   start_new_session=True)
    assert testing.wait_until(lambda: len(processes.session_members(leader.pid)) == 2
                      and _comm(leader.pid) == "sleep")
    assert processes.stop_session(leader.pid, timeout=0.3, reap=leader.poll) is False
    assert processes.session_members(leader.pid) == []
    assert leader.returncode == -signal.SIGKILL


# Killing what we spawned ------------------------------------------------------------------

@pytest.mark.parametrize("leader", [True, False], ids=["group-leader", "in-our-group"])
def test_kill_spawned_kills_the_shell_and_its_child(spawn: Spawn, leader: bool) -> None:
    """A group leader's whole group goes; a shell in our group goes with the child it names."""
    shell = spawn(["/bin/sh", "-c", "sleep 30 & echo $!; wait"], start_new_session=leader,
                  stdout=subprocess.PIPE)
    assert shell.stdout is not None
    child = int(shell.stdout.readline())
    processes.kill_spawned(shell, child=None if leader else child)
    assert shell.returncode == -signal.SIGKILL
    assert testing.wait_until(lambda: not processes.alive(child))


def test_kill_spawned_never_kills_a_child_pid_that_is_not_its_child(spawn: Spawn) -> None:
    shell = spawn(["/bin/sh", "-c", "exec sleep 30"])
    stranger = spawn(SLEEP)  # our child, not the shell's: a pid file may name it after reuse
    processes.kill_spawned(shell, child=stranger.pid)
    assert shell.returncode == -signal.SIGKILL
    assert stranger.poll() is None


def _comm(pid: int) -> str:
    try:
        return pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
