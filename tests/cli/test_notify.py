"""``infrakit plugin start`` wires our instance plugins to our group plugin (``--notify``), so
a member that dies is replaced at once, not at the next poll."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from infrakit.rpc import launch

BIN = pathlib.Path(sys.executable).parent
INFRAKIT = str(BIN / "infrakit")


def rules(text: str) -> dict[str, launch.Rule]:
    import yaml

    return launch.parse_config(yaml.safe_load(text), source="test")


@pytest.mark.parametrize(("names", "config", "expected"), [
    (["instance-process", "group"], "[]", {"instance-process": "group"}),
    (["instance-file", "instance-process"], "[{Plugin: g2, Launch: {os: {Cmd: "
     "/x/infrakit-group-default --name g2}}}]",
     {"instance-file": "g2", "instance-process": "g2"}),
    (["instance-file"], "[]", {}),  # no group plugin anywhere
    (["instance-file", "group"], "[{Plugin: instance-file, Launch: {os: {Cmd: "
     "infrakit-instance-file --notify other}}}]", {}),  # the config says it already
    (["instance-file", "group"], "[{Plugin: instance-file, Launch: {os: {Cmd: "
     "'cd /tmp && infrakit-instance-file'}}}]", {}),  # not one simple command
    (["flavor-vanilla", "group"], "[]", {}),  # not an instance plugin of ours
])
def test_which_plugins_get_notify(names: list[str], config: str,
                                  expected: dict[str, str]) -> None:
    assert launch.notify_targets(names, rules(config)) == expected


CONFIG = """\
- Plugin: group
  Launch:
    os: {Cmd: "{{ env('IK_TEST_BIN') }}/infrakit-group-default --poll-interval 1m --log 3"}
"""


@pytest.fixture
def env(tmp_path: pathlib.Path) -> Iterator[dict[str, str]]:
    plugins = pathlib.Path(tempfile.mkdtemp(prefix="ikn-"))
    values = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(plugins),
              "INFRAKIT_HOME": str(tmp_path / "home"), "IK_TEST_BIN": str(BIN)}
    try:
        yield values
    finally:
        pids = _member_pids(values)
        subprocess.run([INFRAKIT, "group", "destroy", "procs", "--yes"], env=values,
                       capture_output=True, timeout=60)
        subprocess.run([INFRAKIT, "plugin", "stop", "--all"], env=values, capture_output=True,
                       timeout=60)
        for pid in pids:  # members a failed test left behind: each leads its own session
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        for pid_file in plugins.glob("*.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(plugins)], check=False)


def _member_pids(env: dict[str, str]) -> list[int]:
    done = subprocess.run([INFRAKIT, "instance", "--name", "instance-process", "describe", "-p",
                           "-o", "json"], env=env, capture_output=True, text=True, timeout=60)
    try:
        return [int(each["Properties"]["Pid"]) for each in json.loads(done.stdout)]
    except (ValueError, KeyError, TypeError):
        return []


def members(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([INFRAKIT, "group", "describe", "procs", "-o", "json"], env=env,
                          capture_output=True, text=True, timeout=60)
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def test_a_killed_member_is_replaced_long_before_the_next_poll(
        env: dict[str, str], tmp_path: pathlib.Path) -> None:
    config = tmp_path / "plugins.yml"
    config.write_text(CONFIG)
    started = subprocess.run([INFRAKIT, "plugin", "start", "--config-url", str(config),
                              "instance-process", "flavor-vanilla", "group"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    spec = tmp_path / "procs.json"
    spec.write_text(json.dumps({"ID": "procs", "Properties": {
        "Instance": {"Plugin": "instance-process", "Properties": {"StopTimeout": "1s"}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Init": ["exec sleep 300"]}},
        "Allocation": {"Size": 2}}}))
    committed = subprocess.run([INFRAKIT, "group", "commit", str(spec), "--wait",
                                "--timeout", "30s", "--interval", "100ms"], env=env,
                               capture_output=True, text=True, timeout=60)
    assert committed.returncode == 0, committed.stderr
    before = {each["ID"] for each in members(env)["Instances"]}
    victim = _member_pids(env)[0]
    os.killpg(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20  # the poll is a minute away: only Wake can heal it
    while True:
        now = members(env)
        ids = {each["ID"] for each in now["Instances"]}
        if now["Converged"] and len(ids) == 2 and ids != before:
            break
        assert time.monotonic() < deadline, f"not healed: {now}"
        time.sleep(0.2)
    assert victim not in _member_pids(env)
