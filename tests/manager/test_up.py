"""``infrakit up CONFIG`` end to end: it starts the plugins, commits, heals, restarts a
plugin that dies, takes commits through the manager CLI, and stops everything it started on
SIGINT (the instances stay)."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import AsyncIterator, Iterator

import pytest
from click.testing import CliRunner
from local_cluster import until

from infrakit import processes, testing
from infrakit.cli import main
from infrakit.rpc import sockets

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "up.yml"

CONFIG = """\
Manager: {Name: group, PollInterval: 200ms, StatePoll: 200ms}
Plugins:
  - Plugin: instance-file
    Launch:
      os: {Cmd: "infrakit-instance-file --dir {{ env('INFRAKIT_HOME') }}/files --log 3"}
  - Plugin: flavor-vanilla
Groups:
  - Plugin: group
    Properties:
      ID: workers
      Properties:
        Allocation: {Size: 3}
        Instance: {Plugin: instance-file, Properties: {Note: up}}
        Flavor: {Plugin: flavor-vanilla, Properties: {Init: [echo hi]}}
"""


class Up:
    """One ``infrakit up`` process, its output lines, and the pids of what it started."""

    def __init__(self, proc: asyncio.subprocess.Process, home: pathlib.Path) -> None:
        self.proc = proc
        self.home = home
        self.lines: list[str] = []
        self.pids: list[int] = []

    async def line(self, starting: str, *, timeout: float = 20) -> str:
        """Read output until a line starting with ``starting``; returns it."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"infrakit up ended; output: {self.lines}; log: "
                                         f"{self.log()}")
                text = raw.decode().rstrip("\n")
                self.lines.append(text)
                if " started (pid " in text:
                    self.pids.append(int(text.split("(pid ")[1].split(",")[0]))
                if text.startswith(starting):
                    return text

    def log(self) -> str:
        return (self.home / "up.err").read_text()[-3000:]

    def files(self) -> list[str]:
        return sorted(p.name for p in (self.home / "files").glob("instance-*"))


@pytest.fixture
def home() -> Iterator[pathlib.Path]:
    """A short INFRAKIT_HOME: the plugins' sockets live in it."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="ik-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def env_for(home: pathlib.Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "INFRAKIT_PLUGINS_DIR"}
    return {**env, "INFRAKIT_HOME": str(home), **extra}


async def start_up(home: pathlib.Path, config: pathlib.Path, *flags: str, **env: str) -> Up:
    """``infrakit up [flags] CONFIG`` with ``INFRAKIT_HOME=home``; stderr goes to up.err
    (appended: a test that restarts ``up`` keeps every run's log)."""
    with open(home / "up.err", "ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "infrakit.cli.main", "up", *flags, str(config),
            stdout=asyncio.subprocess.PIPE, stderr=err, env=env_for(home, **env))
    return Up(proc, home)


def kill_session(pid: int) -> None:
    """Kill what a test left running: the process's session if it leads one."""
    try:
        if os.getsid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
async def running(home: pathlib.Path) -> AsyncIterator[list[Up]]:
    """Every ``infrakit up`` a test starts; killed (with its children) if still running."""
    started: list[Up] = []
    try:
        yield started
    finally:
        for up in started:
            if up.proc.returncode is None:
                up.proc.kill()
                await up.proc.wait()
            for pid in up.pids:
                kill_session(pid)


def alive(pid: int) -> bool:
    info = processes.stat(pid)
    return info is not None and info.state != "Z"


async def test_up_starts_commits_heals_restarts_and_stops_everything_on_sigint(
        home: pathlib.Path, running: list[Up]) -> None:
    config = home / "up.yml"
    config.write_text(CONFIG)
    up = await start_up(home, config)
    running.append(up)
    await up.line("Up: manager 'group' leads")
    assert "Committed workers: Managing 3 instances" in up.lines
    assert len(up.pids) == 2
    await until(lambda: len(up.files()) == 3, timeout=10, what="3 members")

    gone = up.files()[0]
    (home / "files" / gone).unlink()  # a dead machine: the group replaces it
    await until(lambda: len(up.files()) == 3 and gone not in up.files(), timeout=10,
                what="the group healed")

    commit = home / "commit.yml"
    commit.write_text(CONFIG.split("Groups:\n")[1].replace("Size: 3", "Size: 4"))
    done = subprocess.run([sys.executable, "-m", "infrakit.cli.main", "manager", "commit",
                           str(commit)], capture_output=True, text=True, env=env_for(home),
                          timeout=30)
    assert (done.returncode, done.stdout, done.stderr) == (
        0, "Committed workers: Adding 1 instances to increase the group size to 4\n", "")
    await until(lambda: len(up.files()) == 4, timeout=10, what="4 members")

    vanilla = home / "plugins" / "flavor-vanilla"
    old = sockets.read_pid(vanilla)
    assert old is not None
    os.kill(old, signal.SIGKILL)  # a plugin dies: `up` starts it again
    assert await up.line("flavor-vanilla exited with status -9; restarting in 1s")
    await up.line("restarted flavor-vanilla started (pid ")
    assert sockets.read_pid(vanilla) not in (None, old) and sockets.is_live(vanilla)

    up.proc.send_signal(signal.SIGINT)
    await up.line("Stopped", timeout=15)
    assert await asyncio.wait_for(up.proc.wait(), 10) == 0
    assert not any(alive(pid) for pid in up.pids)
    assert [p.name for p in (home / "plugins").iterdir() if p.is_socket()] == []
    assert len(up.files()) == 4  # the instances stay
    stored = json.loads((home / "configs" / "global.config").read_text())
    assert stored["Groups"]["workers"]["Properties"]["Properties"]["Allocation"] == {"Size": 4}


def fetch(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as answer:
            return str(answer.read().decode().strip())
    except OSError:
        return ""


async def test_the_example_runs_three_web_servers_that_outlive_up(
        home: pathlib.Path, running: list[Up]) -> None:
    ports = testing.free_ports(3)
    up = await start_up(home, EXAMPLE, PORTS=",".join(map(str, ports)))
    running.append(up)
    servers: list[int] = []
    try:
        await up.line("Up: manager 'group' leads")
        await until(lambda: all(fetch(p).startswith("v1 served by") for p in ports),
                    timeout=20, what="three web servers answering")
        records = list((home / "instance-process").glob("*.json"))
        servers = [json.loads(r.read_text())["Pid"] for r in records]
        assert len(servers) == 3
        up.proc.send_signal(signal.SIGINT)
        await up.line("Stopped", timeout=15)
        assert await asyncio.wait_for(up.proc.wait(), 10) == 0
        assert all(fetch(p).startswith("v1 served by") for p in ports)
    finally:
        for pid in servers:
            kill_session(pid)


@pytest.mark.parametrize(("text", "problem"), [
    ("Group: []\n", "Group: unknown field; did you mean Groups?"),
    ("Groups: [{Plugin: group, Properties: {Properties: {}}}]\n",
     "Groups[0].Properties.ID: required"),
    ("Plugins: [{Plugin: x, Launch: {os: {Cmd: ''}}}]\n",
     "Plugins[0].Launch.os.Cmd: expected a non-empty string"),
    ("Plugins: [{Plugin: x}, {Plugin: x}]\n", "Plugins[1].Plugin: 'x' appears twice"),
    ("Manager: {PollInterval: soon}\n", "Manager.PollInterval"),
])
def test_a_bad_config_is_one_clear_line(home: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                        text: str, problem: str) -> None:
    monkeypatch.setenv("INFRAKIT_HOME", str(home))
    config = home / "bad.yml"
    config.write_text(text)
    result = CliRunner().invoke(main.cli, ["up", str(config)], prog_name="infrakit")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"infrakit: {config}") and problem in result.stderr
    assert result.stderr.count("\n") == 1
