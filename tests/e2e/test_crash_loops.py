"""Crash loops end to end, with real processes: a member that exits at once, or whose HTTP
probe always fails, makes the group CrashLooping (with the reason) and backs off instead of
re-creating it forever; the counts survive a restart of the group plugin."""

from __future__ import annotations

import sys
import time
from typing import Any

from rpc_client import commit_with_resume
from stack import Stack, free_ports, wait_for


def pets(gid: str, ids: list[str], *, init: list[str], flavor: dict[str, Any] | None = None,
         health: dict[str, Any]) -> dict[str, Any]:
    return {"ID": gid, "Properties": {
        "Instance": {"Plugin": "instance-process", "Properties": {"StopTimeout": "2s"}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Init": init, **(flavor or {})}},
        "Allocation": {"LogicalIDs": ids}, "Health": health}}


def status(stack: Stack, gid: str) -> dict[str, Any]:
    found: dict[str, Any] = stack.describe(gid)["Status"]
    return found


def created(found: dict[str, Any]) -> list[str]:
    return [a["Message"] for a in found["Actions"] if a["Kind"] == "created"]


def test_a_pet_that_exits_at_once_crash_loops_and_keeps_backing_off_across_a_restart(
        processes: Stack) -> None:
    spec = pets("exits", ["bad"], init=["exit 3"], health={
        "Interval": "0s", "CrashLoop": {"Threshold": 2, "BackoffBase": "1m"}})
    processes.commit(spec)
    looping = wait_for(lambda: (found := status(processes, "exits"))["Phase"] == "CrashLooping"
                       and found, what="CrashLooping", timeout=60)
    assert looping["CrashLooping"] == ["bad"]
    assert looping["Reason"].startswith(
        "logical ID bad died young 2 times within 600s (last: created, then not listed "
        "within 10s: it exited or vanished at once); next attempt in ")
    assert any(a["Message"] == "logical ID bad died young 2 times within 600s: backing off "
               "60s before re-creating" for a in looping["Actions"])
    assert len(created(looping)) == 2 and not looping["Converged"]
    saved = looping["Update"]  # what a manager saves and passes back on CommitGroup
    assert saved["Idle"] and len(saved["Crashes"]["Slots"]["bad"]["Deaths"]) == 2

    processes.restart("group")
    commit_with_resume(processes, spec, saved)
    again = status(processes, "exits")
    assert again["Phase"] == "CrashLooping" and again["Update"]["Crashes"] == saved["Crashes"]
    time.sleep(1.0)  # ten polls of the restarted plugin: none may re-create the pet
    assert created(status(processes, "exits")) == []
    processes.cli("group", "destroy", "exits")


def test_an_always_failing_probe_is_unhealthy_then_crash_looping_not_replaced_forever(
        processes: Stack) -> None:
    base = free_ports(16)
    serve = f"{processes.work}/www/{{{{ spec.Tags.port }}}}"
    spec = pets("probed", ["good", "bad"], init=[
        f"mkdir -p {serve}",
        f'if [ "$INFRAKIT_LOGICAL_ID" = good ]; then touch {serve}/ok; fi',
        f"exec {sys.executable} -m http.server {{{{ spec.Tags.port }}}} --bind 127.0.0.1 "
        f"--directory {serve}"], flavor={
        "Tags": {"port": f"{{{{ {base} + index.Sequence }}}}"},
        "Health": {"HTTP": "http://127.0.0.1:{{ instance.Tags['port'] }}/ok", "Timeout": "1s"}},
        health={"Interval": "200ms", "StartupGrace": "3s", "UnhealthyAfter": "1s",
                "MaxUnhealthy": 1, "CrashLoop": {"Threshold": 2, "BackoffBase": "1m"}})
    processes.commit(spec)
    phases: list[str] = []

    def looping() -> dict[str, Any] | None:
        found = status(processes, "probed")
        phases.append(found["Phase"])
        return found if found["Phase"] == "CrashLooping" else None

    found = wait_for(looping, what="CrashLooping", timeout=60)
    assert "Unhealthy" in phases
    assert found["CrashLooping"] == ["bad"]
    assert "(last: replaced as Unhealthy " in found["Reason"]
    assert "Flavor.Healthy of flavor-vanilla answered Unhealthy" in found["Reason"]
    tried = len(created(found))
    time.sleep(2.0)  # longer than two replacement cycles of the bad pet
    assert len(created(status(processes, "probed"))) == tried
    rows = {m["LogicalID"]: m for m in status(processes, "probed")["Instances"]}
    assert rows["good"]["Health"] == "Healthy" and "bad" not in rows
    processes.cli("group", "destroy", "probed")
