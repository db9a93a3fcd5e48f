"""Scaled groups end to end: infrakit-group-default, infrakit-instance-file and
infrakit-flavor-vanilla as processes, driven by the ``infrakit`` command line."""

from __future__ import annotations

import json
import os

from stack import Stack, cattle, files_of, settled, wait_for

from infrakit.rpc import sync

V05_SHA = "rsfonnrfmaykaiytaj26ud5ixjk7m4rd"
"""InfraKit v0.5's config hash of ``cattle()`` with its defaults (see test_hashing)."""


def heal_once(stack: Stack, gid: str, size: int) -> tuple[str, str]:
    """Delete one member file of ``gid`` and wait for the group to replace it: proof that
    the group plugin ran a reconcile after the deletion. Returns (deleted, replacement)."""
    before = settled(stack, gid, size)
    gone = sorted(before)[0]
    os.unlink(stack.work / "files" / gone)
    after = settled(stack, gid, size)
    assert gone not in after
    (new,) = set(after) - set(before)
    return gone, new


def count_reconciles(stack: Stack, witness: str, count: int) -> None:
    """Wait until the group plugin has reconciled ``witness`` (a group of one) ``count``
    times more, each one seen by its effect: its member, labelled ``bootstrap`` ("adopt
    me"), is relabelled with the group's hash. Each round needs a poll after the previous
    one, and every group's loop polls at the same interval, so another group's loop, were
    it running, has run too. This replaces "sleep and hope a poll happened", which proves
    nothing on a busy machine."""
    (member,) = settled(stack, witness, 1)
    instances = sync.Client(stack.sockets / "instance-file", timeout=10.0)
    for _ in range(count):
        instances.call("Instance.Label", {"Type": "", "Instance": member,
                                          "Labels": {"infrakit.config_sha": "bootstrap"}})
        wait_for(lambda: files_of(stack, witness).get(member, {}).get("Tags", {}).get(
            "infrakit.config_sha") == V05_SHA, what=f"{witness} adopting {member} again")


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
    assert files_of(files, "dry") == before
    status = files.describe("dry")["Status"]
    assert (status["Size"], status["ConfigSHA"], status["Update"]) == (3, V05_SHA, None)
    # A reconcile after the pretend commit: it heals the group to the committed spec, not
    # to the pretended one (which would mean 5 members on another hash).
    gone, new = heal_once(files, "dry", 3)
    after = files_of(files, "dry")
    assert set(after) == set(before) - {gone} | {new}
    assert {r["Tags"]["infrakit.config_sha"] for r in after.values()} == {V05_SHA}
    assert after[new]["Spec"]["Properties"] == {"Note": "v1"}
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
    files.commit(cattle("gate-witness", 1))
    files.commit(cattle("gate", flavor=healthy))
    old = settled(files, "gate", 3)
    files.commit(cattle("gate", flavor=gated))
    # One old member is replaced; its replacement is never healthy, so the update waits.
    (new,) = wait_for(lambda: (fresh := set(files_of(files, "gate")) - set(old)) and
                      len(fresh) == 1 and fresh, what="one new member")
    assert files.cli("group", "pause", "gate").stdout.strip() == "Paused gate"
    assert files.describe("gate")["Status"]["Phase"] == "Paused"
    mark.touch()  # the new member turns healthy, but a paused update replaces nothing more
    # The health gate counts it (a reconcile saw it Healthy): unpaused, that same reconcile
    # would replace the next old member. Then three more polls of the plugin.

    def gate_passed() -> bool:
        update = files.describe("gate")["Status"]["Update"] or {}
        moved_on = len(set(old) & set(files_of(files, "gate"))) < 2  # pause ignored
        return new in update.get("Done", []) or moved_on

    wait_for(gate_passed, what="the new member passing the health gate")
    count_reconciles(files, "gate-witness", 3)
    assert files.describe("gate")["Status"]["Phase"] == "Paused"
    assert set(files_of(files, "gate")) - set(old) == {new}
    assert len(set(old) & set(files_of(files, "gate"))) == 2
    assert files.cli("group", "resume", "gate").stdout.strip() == "Resumed gate"
    replaced = wait_for(lambda: (found := files_of(files, "gate")) and len(found) == 3 and not (
        set(old) & set(found)) and found, what="every member replaced after resume")
    assert all(r["Spec"]["Init"] == "echo v2" for r in replaced.values())


def test_free_leaves_the_instances_unsupervised(files: Stack) -> None:
    files.commit(cattle("loose-witness", 1))
    files.commit(cattle("loose"))
    members = settled(files, "loose", 3)
    assert files.cli("group", "free", "loose").stdout.strip() == "Freed loose"
    assert "loose" not in files.cli("group", "ls").stdout.split()
    gone = sorted(members)[0]
    os.unlink(files.work / "files" / gone)
    count_reconciles(files, "loose-witness", 3)  # the plugin polls on; nobody heals "loose"
    assert set(files_of(files, "loose")) == set(members) - {gone}


def test_destroy_removes_every_member(files: Stack) -> None:
    files.commit(cattle("doomed", 3))
    settled(files, "doomed", 3)
    assert files.cli("group", "destroy", "doomed").stdout.strip() == "Destroy doomed initiated"
    assert files_of(files, "doomed") == {}
    gone = files.cli("group", "describe", "doomed", ok=False)
    assert gone.returncode != 0 and "not being watched" in gone.stderr
