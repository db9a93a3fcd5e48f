"""``infrakit group describe --watch`` and ``--exit-status``, and describe's outputs, against a
real group plugin, instance-file and flavor-vanilla as processes."""

from __future__ import annotations

import itertools
import json
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Iterator

import pytest

from infrakit import errors, testing
from infrakit.cli import render, watch
from infrakit.spi import group, instance

from .procs import Stack, cattle, stack

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("watch")) as running:
        yield running


def converged(live: Stack, gid: str, size: int) -> None:
    done = live.infrakit("group", "commit", live.spec_file(cattle(gid, size)), "--wait",
                         "--interval", "100ms")
    assert done.returncode == 0, done.stderr


def lines_of(process: subprocess.Popen[str]) -> queue.Queue[str]:
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            found.put(line.rstrip("\n"))
    threading.Thread(target=read, daemon=True).start()
    return found


def until(lines: queue.Queue[str], pattern: str, *, timeout: float = 20) -> list[str]:
    """The lines read until one matches ``pattern`` (that one included)."""
    seen = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line matching {pattern!r} in {seen}") from None
        seen.append(line)
        if re.search(pattern, line):
            return seen


def until_all(lines: queue.Queue[str], patterns: list[str], *, timeout: float = 20
              ) -> list[str]:
    """The lines read until each of ``patterns`` matched one."""
    seen: list[str] = []
    while not all(any(re.search(p, line) for line in seen) for p in patterns):
        seen += until(lines, "|".join(patterns), timeout=timeout)
    return seen


def test_watch_prints_only_what_changed_and_ends_on_ctrl_c_with_0(live: Stack) -> None:
    converged(live, "watched", 2)
    watching = live.popen("group", "describe", "watched", "--watch", "--interval", "100ms")
    try:
        lines = lines_of(watching)
        first = until(lines, r"^watched  Converged")
        assert first[0].startswith("watched  Converged - 2 members match the spec (2/2 members")
        assert live.infrakit("group", "set-size", "watched", "3").returncode == 0
        grown = until_all(lines, [r"^watched  Converged .*\(3/3 members", r"^watched  \+ \S+$",
                                  rf"^watched  {ISO}  created \S+ because "])
        assert not any(line.startswith("watched  - ") for line in grown)
        watching.send_signal(signal.SIGINT)
        watching.wait(timeout=20)
    finally:
        testing.stop_processes([watching])
    assert watching.returncode == 0
    printed = first + grown + [lines.get() for _ in range(lines.qsize())]
    statuses = [line for line in printed if re.match(r"watched  [A-Z]", line)]
    assert all(a != b for a, b in itertools.pairwise(statuses)), printed


def test_exit_status_is_0_for_a_converged_group(live: Stack) -> None:
    converged(live, "gated", 1)
    done = live.infrakit("group", "describe", "gated", "--exit-status", "-q")
    assert (done.returncode, done.stderr) == (0, "")


def test_describe_without_id_describes_every_group_with_iso_times(live: Stack) -> None:
    converged(live, "alpha", 1)
    converged(live, "beta", 1)
    found = json.loads(live.infrakit("group", "describe", "-o", "json").stdout)
    by_id = {each["ID"]: each for each in found}
    assert {"alpha", "beta"} <= set(by_id)
    status = by_id["alpha"]["Status"]
    assert all(re.fullmatch(ISO, action["Time"]) for action in status["Actions"])
    assert all(re.fullmatch(ISO, member["Created"]) for member in status["Instances"])
    table = live.infrakit("group", "describe").stdout
    assert "GROUP alpha" in table and "GROUP beta" in table
    assert "(1/1 member)" in table


def test_exit_status_is_8_when_a_group_is_not_converged(cli: object, serve: object) -> None:
    class Stuck:
        def describe_group(self, gid: group.ID) -> group.Description:
            return group.Description(converged=False, status={
                "ID": gid, "Phase": "Holding", "Reason": "3/5 unhealthy exceeds budget"})

        def inspect_groups(self) -> list[group.Spec]:
            return [group.Spec(id=group.ID("web"))]

        def commit_group(self, spec: group.Spec, pretend: bool) -> str:
            return ""

        def free_group(self, gid: group.ID) -> None: ...

        def destroy_group(self, gid: group.ID) -> None: ...

    serve("group", group=Stuck())  # type: ignore[operator]
    result = cli("group", "describe", "web", "--exit-status", "-q")  # type: ignore[operator]
    assert result.exit_code == errors.NotConverged.exit_code == 8
    assert result.stderr == ("infrakit: not converged: web Holding - 3/5 unhealthy exceeds "
                             "budget\n")
    assert cli("group", "describe", "web").exit_code == 0  # type: ignore[operator]


def seen(members: list[str], actions: list[tuple[float, str]], phase: str = "Converged",
         ) -> watch.Seen:
    status = {"Phase": phase, "Counts": {"Expected": len(members), "Current": len(members)},
              "Actions": [{"Time": t, "Message": m} for t, m in actions]}
    description = group.Description(
        instances=[instance.Description(id=instance.ID(m)) for m in members], converged=True,
        status=status)
    return watch.seen("g", description)


def test_changes_are_the_status_line_members_and_new_actions_only() -> None:
    first = seen(["a"], [(0, "created a")])
    assert watch.changes(None, first) == [
        first.line(), f"g  {render.iso(0)}  created a"]
    assert watch.changes(first, first) == []
    second = seen(["b"], [(0, "created a"), (5, "replaced a")])
    assert watch.changes(first, second) == [
        "g  + b", "g  - a", f"g  {render.iso(5)}  replaced a"]
