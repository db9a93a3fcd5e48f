"""Stacks of plugin processes for the tests: each plugin a process of its own on a private
plugins dir, driven through the real ``infrakit`` CLI as a user would.

Used by ``tests/e2e/stack.py`` (which re-exports :class:`Stack`), the instance plugins'
group tests (docker, aws, vagrant) and the flavor tests (etcd, MariaDB, ZooKeeper)::

    stack = testing_stack.Stack(sockets_dir, work)
    stack.start("group", "infrakit-group-default", "--poll-interval", "100ms")
    stack.wait_ready()
    stack.commit(spec)                    # ``infrakit group commit``
    stack.members("web")                  # Group.DescribeGroup over RPC: polling the CLI is slow
    stack.stop()                          # by pid, also when a test failed

Also here: what ``infrakit-instance-process`` leaves behind (:func:`kill_recorded`), ports
free on several loopback addresses (:func:`port_free_on`), and the instance-file plugin on
TCP (:data:`INSTANCE_FILE_ON_TCP`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from infrakit import testing
from infrakit.rpc import sockets, sync

BIN = pathlib.Path(sys.executable).parent
"""The venv's console scripts."""


class Stack:
    """Plugin processes sharing one plugins dir (their sockets) and one work dir (state,
    logs ``<name>.log``, committed spec files)."""

    def __init__(self, sockets_dir: pathlib.Path, work: pathlib.Path | None = None, *,
                 environ: Mapping[str, str] | None = None, raw: bool = True,
                 cli_timeout: float = 60.0, rpc_timeout: float = 10.0,
                 stop_timeout: float = 10.0, tail: int = 3000) -> None:
        """``raw``: wrap committed specs in ``{% raw %}`` (the CLI renders its input as a
        template; a flavor's own templates must pass through)."""
        self.sockets = sockets_dir
        self.work = work or sockets_dir
        self.env = {**(os.environ if environ is None else environ),
                    "INFRAKIT_PLUGINS_DIR": str(sockets_dir), "INFRAKIT_HOME": str(self.work)}
        self.raw = raw
        self.cli_timeout = cli_timeout
        self.rpc_timeout = rpc_timeout
        self.stop_timeout = stop_timeout
        self.tail = tail
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.argv: dict[str, tuple[str, ...]] = {}

    # Processes -------------------------------------------------------------------------

    def start(self, name: str, program: str, *flags: str) -> None:
        """Start ``program`` (a console script of the venv, or a path) serving ``name``."""
        self.argv[name] = (program, *flags)
        path = program if os.sep in program else str(BIN / program)
        with (self.work / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [path, *flags], env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every process listens on its socket; fail with its log if one exits."""
        for name in self.processes:
            testing.wait_for(lambda n=name: self._listening(n),  # type: ignore[misc]
                             what=f"{name} listening", timeout=timeout)

    def _listening(self, name: str) -> bool:
        process = self.processes[name]
        if process.poll() is not None:
            raise AssertionError(f"{name} exited {process.returncode}: {self.log(name)}")
        path = self.sockets / name
        return path.exists() and sockets.is_live(path)

    def restart(self, name: str) -> None:
        """Stop the process serving ``name`` (by its pid) and start it again, as it was."""
        argv = self.argv[name]
        self.stop(name)
        self.start(name, *argv)
        self.wait_ready()

    def stop(self, *names: str) -> None:
        """TERM the processes serving ``names`` (all we started when none is named) and
        forget them; KILL the ones still there after ``stop_timeout``."""
        chosen = names or tuple(self.processes)
        testing.stop_processes([self.processes.pop(name) for name in chosen],
                               timeout=self.stop_timeout)

    def close(self, *, show: Sequence[str] = ()) -> None:
        """Print the logs of ``show`` (pytest shows them when a test failed), stop every
        process, then remove the plugins dir (for stacks that made it)."""
        for name in show:
            print(f"--- {name} log\n{self.log(name)}")
        self.stop()
        shutil.rmtree(self.sockets, ignore_errors=True)

    def log(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace")[-self.tail:] if path.exists() else ""

    # The user's view -----------------------------------------------------------------

    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """``infrakit ARGS``; with ``ok``, fail the test unless it exits 0."""
        done = subprocess.run([str(BIN / "infrakit"), *args], env=self.env, text=True,
                              capture_output=True, timeout=self.cli_timeout, check=False)
        if ok and done.returncode != 0:
            raise AssertionError(f"infrakit {' '.join(args)} exited {done.returncode}: "
                                 f"{done.stderr}")
        return done

    def commit(self, spec: Mapping[str, Any], *extra: str) -> str:
        """``infrakit group commit`` of ``spec`` (written to a file); its one line of output."""
        path = self.work / f"{spec['ID']}-{time.monotonic_ns()}.json"
        text = json.dumps(spec)
        path.write_text("{% raw %}" + text + "{% endraw %}" if self.raw else text)
        return self.cli("group", "commit", *extra, str(path)).stdout.strip()

    def call(self, method: str, params: Mapping[str, Any], *,
             timeout: float | None = None) -> Any:
        """One call to the group plugin over RPC."""
        client = sync.Client(self.sockets / "group", timeout=timeout or self.rpc_timeout)
        return client.call(method, dict(params))

    def describe(self, gid: str) -> dict[str, Any]:
        """Group.DescribeGroup: ``{Instances, Converged, Status}``."""
        answer: dict[str, Any] = self.call("Group.DescribeGroup", {"ID": gid})["Description"]
        return answer

    def members(self, gid: str) -> list[dict[str, Any]]:
        return list(self.describe(gid)["Instances"] or [])

    def converged(self, gid: str) -> tuple[bool, list[dict[str, Any]]]:
        """Whether the group says Converged, and its instances, from one answer."""
        found = self.describe(gid)
        return bool(found["Converged"]), list(found["Instances"] or [])

    def by_logical_id(self, gid: str) -> dict[str, dict[str, Any]]:
        """The group's instances by logical ID."""
        return {m["LogicalID"]: m for m in self.describe(gid)["Instances"] or []}


# What instance-process leaves behind -----------------------------------------------------


def recorded(state: pathlib.Path) -> dict[str, dict[str, Any]]:
    """instance-process's records in ``state`` (ID, LogicalID, Pid, StartTime …) by logical
    ID (by ID for an instance without one)."""
    found = {}
    for path in state.glob("*.json") if state.exists() else []:
        with contextlib.suppress(OSError, ValueError, KeyError):
            record = json.loads(path.read_text())
            found[record.get("LogicalID") or record["ID"]] = record
    return found


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks after boot, /proc), or None when it is gone."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def same_process(record: Mapping[str, Any]) -> bool:
    """Whether the record's pid is still the process it started (not a recycled pid)."""
    try:
        pid, started = int(record["Pid"]), int(record["StartTime"])
    except (KeyError, TypeError, ValueError):
        return False
    return start_time(pid) == started


def kill_recorded(state: pathlib.Path, *, timeout: float = 10.0) -> None:
    """Kill the session of every instance recorded in ``state`` that still runs, and wait
    until they are gone (their ports are then free for the next test module)."""
    killed = []
    for record in recorded(state).values():
        if same_process(record):
            with contextlib.suppress(OSError):
                os.killpg(int(record["Pid"]), signal.SIGKILL)
                killed.append(record)
    deadline = time.monotonic() + timeout
    while any(same_process(r) for r in killed) and time.monotonic() < deadline:
        time.sleep(0.05)


def pid_of(state: pathlib.Path, iid: str) -> int:
    """The pid instance-process recorded for instance ``iid``."""
    return int(json.loads((state / f"{iid}.json").read_text())["Pid"])


# Ports -------------------------------------------------------------------------------------


def port_free_on(addresses: Sequence[str], *, count: int = 1) -> list[int]:
    """``count`` ports nothing listens on now at any of ``addresses`` (members bound to
    127.0.0.x all use the same ports)."""
    for _ in range(100):
        ports = testing.free_ports(count)
        if all(_free(address, port) for address in addresses for port in ports):
            return ports
    raise AssertionError(f"no {count} port(s) free on every one of {', '.join(addresses)}")


def _free(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


INSTANCE_FILE_ON_TCP = """
import argparse, pathlib
from infrakit.rpc import listening, server
from infrakit.plugins.instance import file
parser = argparse.ArgumentParser(prog="infrakit-instance-file")
parser.add_argument("--dir", type=pathlib.Path)
listening.add_flags(parser)
args = parser.parse_args()
server.run("instance-file", instance=file.Plugin(args.dir),
           listen=listening.configure(parser, args))
"""
"""The instance-file plugin served with the TCP flags of ``rpc.listening`` (what every
plugin's flag parser offers): ``python -c`` it for a plugin on "another host"."""
