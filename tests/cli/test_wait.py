"""``infrakit group commit --wait``: against a real group plugin, instance-file and
flavor-vanilla as processes; and through a plugin restart (in-process servers, real sockets)."""

from __future__ import annotations

import asyncio
import json
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from infrakit import errors, testing
from infrakit.cli import follow
from infrakit.spi import group

from .conftest import Loop
from .procs import BIN, Stack, cattle, stack


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack, plus ``broken``: an instance plugin (in this process) whose every
    provision fails."""
    with stack(tmp_path_factory.mktemp("wait")) as running:
        loop = Loop(running.plugins)
        try:
            broken = testing.FakeInstancePlugin()
            broken.fail_provisions = -1
            loop.serve("broken", instance=broken)
            yield running
        finally:
            loop.close()


def test_wait_returns_once_converged_and_shows_progress(live: Stack) -> None:
    done = live.infrakit("group", "commit", live.spec_file(cattle("waited", 4)), "--wait",
                         "--interval", "100ms")
    assert (done.returncode, done.stdout.splitlines()) == (
        0, ["Committed waited: Managing 4 instances", "Converged waited: 4/4 members"])
    assert "waited: members on the new config: 4/4 (Converged)" in done.stderr.splitlines()
    assert live.describe("waited")["Converged"]


def test_one_member_is_singular(live: Stack) -> None:
    done = live.infrakit("group", "commit", live.spec_file(cattle("single", 1)), "--wait",
                         "--interval", "100ms")
    assert done.stdout.splitlines()[-1] == "Converged single: 1/1 member"


@pytest.mark.parametrize(("gid", "provision", "flags", "error", "code", "said"), [
    ("failing", {"BackoffBase": "10ms", "BackoffCap": "50ms", "FailureThreshold": 2}, (),
     errors.NotConverged, 8, "infrakit: failing is not converging: ProvisionFailing: "),
    ("slow", {"BackoffBase": "10s", "FailureThreshold": 100}, ("--timeout", "500ms"),
     errors.WaitTimeout, 9,
     "infrakit: timed out waiting for convergence; slow: 0/2 members on the new config"),
], ids=["cannot-provision", "timeout"])
def test_a_wait_that_cannot_end_converged_exits_with_its_code_and_says_why(
        live: Stack, gid: str, provision: dict[str, Any], flags: tuple[str, ...],
        error: type[errors.InfrakitError], code: int, said: str) -> None:
    """A group that cannot provision ends the wait with its phase; a wait past its
    ``--timeout`` gives up."""
    spec = cattle(gid, 2, instance_plugin="broken", Provision=provision)
    done = live.infrakit("group", "commit", live.spec_file(spec), "--wait", *flags,
                         "--interval", "100ms")
    assert done.returncode == error.exit_code == code
    assert done.stderr.splitlines()[-1].startswith(said)


def test_ctrl_c_says_the_change_goes_on_and_exits_130(live: Stack) -> None:
    spec = cattle("interrupted", 2, instance_plugin="broken",
                  Provision={"BackoffBase": "10s", "FailureThreshold": 100})
    waiting = live.popen("group", "commit", live.spec_file(spec), "--wait", "--interval", "100ms")
    try:
        assert waiting.stdout is not None
        assert waiting.stdout.readline() == "Committed interrupted: Managing 2 instances\n"
        waiting.send_signal(signal.SIGINT)
        _, stderr = waiting.communicate(timeout=30)
    finally:
        testing.stop_processes([waiting])
    assert waiting.returncode == errors.Interrupted.exit_code == 130
    assert stderr.splitlines()[-1] == (
        "infrakit: interrupted: the commit stands and interrupted goes on converging "
        "server-side (follow it: infrakit group describe interrupted --watch)")
    assert "interrupted" in live.groups()


class Restarting:
    """A group plugin whose only group converges on the second DescribeGroup."""

    def __init__(self) -> None:
        self.described = 0

    def commit_group(self, spec: group.Spec, pretend: bool) -> str:
        return "Managing 1 instances"

    def describe_group(self, gid: group.ID) -> group.Description:
        self.described += 1
        done = self.described > 1
        return group.Description(converged=done, status={
            "ID": gid, "Phase": "Converged" if done else "Converging",
            "Counts": {"Expected": 1, "Current": int(done)}})

    def inspect_groups(self) -> list[group.Spec]:
        return []

    def free_group(self, gid: group.ID) -> None: ...

    def destroy_group(self, gid: group.ID) -> None: ...


def test_a_plugin_restarting_mid_wait_is_one_warning_then_the_wait_goes_on(
        tmp_path: pathlib.Path) -> None:
    plugins = pathlib.Path(tempfile.mkdtemp(prefix="ikw-"))
    loop = Loop(plugins)
    plugin = Restarting()
    spec = tmp_path / "g.json"
    spec.write_text(json.dumps({"ID": "web", "Properties": {"Allocation": {"Size": 1}}}))
    served = loop.serve("group", group=plugin)
    waiting: subprocess.Popen[str] | None = None
    try:
        plugin.described = -1000  # not converged until the plugin is back
        waiting = subprocess.Popen(
            [str(BIN / "infrakit"), "group", "commit", str(spec), "--wait",
             "--interval", "100ms"], env={"INFRAKIT_PLUGINS_DIR": str(plugins),
                                          "PATH": "/usr/bin:/bin"},
            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert waiting.stdout is not None
        assert waiting.stdout.readline() == "Committed web: Managing 1 instances\n"
        asyncio.run_coroutine_threadsafe(served.stop(), loop.loop).result(10)
        time.sleep(0.5)  # several polls find the plugin gone
        plugin.described = 0
        loop.serve("group", group=plugin)
        stdout, stderr = waiting.communicate(timeout=30)
    finally:
        if waiting is not None:
            testing.stop_processes([waiting])
        loop.close()
        shutil.rmtree(plugins, ignore_errors=True)
    assert (waiting.returncode, stdout) == (0, "Converged web: 1/1 member\n")
    warnings = [line for line in stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 2, stderr
    assert warnings[0].startswith("infrakit: WARNING: ") and warnings[0].endswith("; retrying")
    assert warnings[1] == "infrakit: WARNING: the plugin answers again"
    assert "Traceback" not in stderr


def test_wait_stops_on_a_stuck_phase_and_reports_a_timeout_with_the_last_state() -> None:
    snaps = iter([follow.Snapshot("g", converged=False, phase="Converging", done=1, total=3),
                  follow.Snapshot("g", converged=False, phase="Holding", reason="budget")])
    seen: list[follow.Snapshot] = []
    with pytest.raises(errors.NotConverged, match="g is not converging: Holding: budget"):
        follow.wait(lambda: next(snaps), timeout=None, interval=0, show=seen.append,
                    sleep=lambda _: None)
    assert [s.phase for s in seen] == ["Converging", "Holding"]
    clock = iter([0.0, 0.5, 2.0, 2.0])
    with pytest.raises(errors.WaitTimeout, match="g: 1/3 members on the new config"):
        follow.wait(lambda: follow.Snapshot("g", converged=False, done=1, total=3),
                    timeout=1.0, interval=0, show=seen.append, clock=lambda: next(clock),
                    sleep=lambda _: None)


@pytest.mark.parametrize(("status", "converged", "done", "total"), [
    ({"Phase": "Converged", "Counts": {"Expected": 3, "Current": 3}}, True, 3, 3),
    ({"Phase": "Converging", "Counts": {"Expected": 3, "Current": 1}}, False, 1, 3),
    (None, True, 2, 2),  # a v0.5 plugin: no Status, the flag and the members
])
def test_snapshot_reads_the_status_or_falls_back_to_the_v05_flag(
        status: Any, converged: bool, done: int, total: int) -> None:
    from infrakit.spi import instance

    members = [instance.Description(id=instance.ID(f"i{n}")) for n in range(2)]
    found = follow.snapshot("g", group.Description(instances=members, converged=True,
                                                   status=status))
    assert (found.converged, found.done, found.total) == (converged, done, total)

