"""``group describe``'s status block: the phase line ("1 member", not "1 members"), the
counts, the member table and the recent actions, times in ISO 8601."""

from __future__ import annotations

import pytest

from infrakit.cli import render

STATUS = {
    "ID": "db", "Phase": "CrashLooping", "Size": 1, "Members": 1,
    "Reason": "logical ID db-b died young 3 times within 600s (last: exited); next attempt "
              "in 40s",
    "Update": {"Target": "abc", "Idle": True, "Crashes": {"Config": "abc", "Slots": {}}},
    "Counts": {"Expected": 1, "Existing": 1, "Creating": 0, "Removing": 0, "Current": 1,
               "Healthy": 0, "Unhealthy": 1, "Unknown": 0, "Probed": True},
    "Instances": [
        {"ID": "instance-1", "LogicalID": "db-b", "State": "running", "Health": "Unhealthy",
         "Created": 0, "Config": "abcdefg", "Version": "v3", "Transition": "became Unhealthy",
         "Since": 0},
        {"ID": "", "LogicalID": "db-c", "State": "creating", "Transition": "creating"}],
    "Actions": [{"Time": 0, "Kind": "crash-loop", "Message": "backing off 40s"}],
}


def test_the_status_block_shows_phase_counts_members_and_actions(
        capsys: pytest.CaptureFixture[str]) -> None:
    render.status(STATUS)
    lines = capsys.readouterr().out.splitlines()
    epoch = render.iso(0)
    assert epoch.startswith("1970-01-01T") or epoch.startswith("1969-12-31T")
    assert lines[1] == f"STATUS  CrashLooping - {STATUS['Reason']} (1/1 member)"
    assert lines[2] == ("COUNTS  1 expected: 1 exist (1 on the committed config), 0 being "
                        "created, 0 being removed; 0 Healthy, 1 Unhealthy, 0 Unknown")
    assert not any(line.startswith("UPDATE") for line in lines)  # Idle: no update in flight
    assert lines[4].split() == ["INSTANCE", "LOGICAL", "STATE", "HEALTH", "CREATED", "CONFIG",
                                "LAST", "TRANSITION"]
    assert lines[5].split() == ["instance-1", "db-b", "running", "Unhealthy", epoch,
                                "abcdefg", "(v3)", "became", "Unhealthy", epoch]
    assert lines[6].split() == ["(creating)", "db-c", "creating", "-", "-", "-", "creating"]
    assert lines[7:] == ["RECENT ACTIONS", f"  {epoch}  backing off 40s"]


def test_an_older_peers_status_prints_what_it_has() -> None:
    assert render.plural(1, "member") == "1 member" and render.plural(2, "member") == \
        "2 members"
    assert render.iso("not a time") == "-"
