"""Scaled groups end to end: infrakit-group-default, infrakit-instance-file and
infrakit-flavor-vanilla as processes, driven by the ``infrakit`` command line."""

from __future__ import annotations

import json
import os
import time

from stack import Stack, cattle, files_of, settled, wait_for

V05_SHA = "rsfonnrfmaykaiytaj26ud5ixjk7m4rd"
"""InfraKit v0.5's config hash of ``cattle()`` with its defaults (see test_hashing)."""


def test_committed_cattle_are_created_with_the_v05_hash_tag(files: Stack) -> None:
    assert files.commit(cattle("web")) == "Committed web: Managing 3 instances"
    found = settled(files, "web", 3)
    for iid, record in found.items():
        assert iid.startswith("instance-")
        assert record["Tags"] == {"infrakit.group": "web", "infrakit.config_sha": V05_SHA,
                                  "tier": "web"}
        assert record["Spec"]["Init"] == "echo hello"
        assert record["Spec"]["Properties"] == {"Note": "v1"}


def test_deleted_instance_files_are_healed(files: Stack) -> None:
    files.commit(cattle("heal", 4))
    before = settled(files, "heal", 4)
    doomed = sorted(before)[:2]
    for iid in doomed:
        os.unlink(files.work / "files" / iid)
    after = settled(files, "heal", 4)
    assert not set(doomed) & set(after)
    assert set(before) - set(doomed) < set(after)


def test_a_new_config_rolls_through_the_group(files: Stack) -> None:
    files.commit(cattle("roll"))
    old = settled(files, "roll", 3)
    assert files.commit(cattle("roll", note="v2")) == (
        "Committed roll: Performing a rolling update on 3 instances")
    new = wait_for(lambda: (found := files_of(files, "roll")) and len(found) == 3 and all(
        r["Spec"]["Properties"] == {"Note": "v2"} for r in found.values()) and found,
        what="every member on v2")
    assert not set(old) & set(new)
    sha = next(iter(new.values()))["Tags"]["infrakit.config_sha"]
    assert sha != V05_SHA
    settled(files, "roll", 3, sha=sha)


def test_pretend_changes_nothing(files: Stack) -> None:
    files.commit(cattle("dry"))
    before = settled(files, "dry", 3)
    assert files.commit(cattle("dry", 5, note="v2"), "--pretend") == (
        "Committing dry would involve: Performing a rolling update on 3 instances, then "
        "adding 2 instances to increase the group size to 5")
    time.sleep(0.5)  # five polls
    assert files_of(files, "dry") == before
    inspected = json.loads(files.cli("group", "inspect", "dry").stdout)
    assert inspected["Properties"]["Allocation"] == {"Size": 3}
    assert inspected["Properties"]["Instance"]["Properties"] == {"Note": "v1"}


def test_describe_shows_the_status_and_the_reason_for_each_action(files: Stack) -> None:
    files.commit(cattle("why", 2))
    members = settled(files, "why", 2)
    table = files.cli("group", "describe", "why").stdout
    assert "STATUS  Converged - 2 members match the spec" in table
    for iid in members:
        assert iid in table
    as_json = json.loads(files.cli("group", "describe", "why", "--output", "json").stdout)
    status = as_json["Status"]
    assert (status["Phase"], status["Size"], status["Members"]) == ("Converged", 2, 2)
    created = {a["Instance"]: a["Message"] for a in status["Actions"] if a["Kind"] == "created"}
    assert set(created) == set(members)
    for iid, message in created.items():
        assert message.startswith(f"created {iid} because count ")
    assert sorted(m.split(" because ")[1] for m in created.values()) == [
        "count 0 < 2", "count 1 < 2"]


def test_pause_and_resume_hold_and_continue_a_rolling_update(files: Stack) -> None:
    mark = files.work / "v2-ready"
    healthy = {"Init": ["echo v1"], "Health": {"Command": "true"}}
    gated = {"Init": ["echo v2"], "Health": {"Command": f"test -e {mark}"}}
    files.commit(cattle("gate", flavor=healthy))
    old = settled(files, "gate", 3)
    files.commit(cattle("gate", flavor=gated))
    # One old member is replaced; its replacement is never healthy, so the update waits.
    wait_for(lambda: len(set(files_of(files, "gate")) - set(old)) == 1, what="one new member")
    assert files.cli("group", "pause", "gate").stdout.strip() == "Paused gate"
    assert files.describe("gate")["Status"]["Phase"] == "Paused"
    mark.touch()  # the new member turns healthy, but a paused update replaces nothing more
    time.sleep(0.6)
    assert len(set(old) & set(files_of(files, "gate"))) == 2
    assert files.cli("group", "resume", "gate").stdout.strip() == "Resumed gate"
    new = wait_for(lambda: (found := files_of(files, "gate")) and len(found) == 3 and not (
        set(old) & set(found)) and found, what="every member replaced after resume")
    assert all(r["Spec"]["Init"] == "echo v2" for r in new.values())


def test_free_leaves_the_instances_unsupervised(files: Stack) -> None:
    files.commit(cattle("loose"))
    members = settled(files, "loose", 3)
    assert files.cli("group", "free", "loose").stdout.strip() == "Freed loose"
    assert "loose" not in files.cli("group", "ls").stdout.split()
    gone = sorted(members)[0]
    os.unlink(files.work / "files" / gone)
    time.sleep(0.5)  # five polls: nobody heals a freed group
    assert set(files_of(files, "loose")) == set(members) - {gone}


def test_destroy_removes_every_member(files: Stack) -> None:
    files.commit(cattle("doomed", 3))
    settled(files, "doomed", 3)
    assert files.cli("group", "destroy", "doomed").stdout.strip() == "Destroy doomed initiated"
    assert files_of(files, "doomed") == {}
    gone = files.cli("group", "describe", "doomed", ok=False)
    assert gone.returncode != 0 and "not being watched" in gone.stderr
