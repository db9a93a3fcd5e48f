"""Quorum groups (pets) end to end: one instance per logical ID, recreated under its ID."""

from __future__ import annotations

import os
from typing import Any

from stack import Stack, files_of, wait_for


def pets(gid: str, ids: list[str]) -> dict[str, Any]:
    return {"ID": gid, "Properties": {
        "Instance": {"Plugin": "instance-file", "Properties": {"Note": "db"}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Init": ["start-db"]}},
        "Allocation": {"LogicalIDs": ids}}}


def by_logical_id(stack: Stack, gid: str) -> dict[str, str]:
    """Instance ID by logical ID (the files of ``gid``)."""
    return {record["LogicalID"]: iid for iid, record in files_of(stack, gid).items()}


def test_pets_get_one_instance_per_logical_id_and_keep_it(files: Stack) -> None:
    assert files.commit(pets("db", ["db-a", "db-b", "db-c"])) == (
        "Committed db: Managing 3 instances")
    first = wait_for(lambda: (found := by_logical_id(files, "db")) and len(found) == 3 and found,
                     what="three pets")
    assert sorted(first) == ["db-a", "db-b", "db-c"]
    for lid, iid in first.items():
        assert files_of(files, "db")[iid]["Spec"]["LogicalID"] == lid

    os.unlink(files.work / "files" / first["db-b"])
    again = wait_for(lambda: (found := by_logical_id(files, "db")) and len(found) == 3
                     and found["db-b"] != first["db-b"] and found, what="db-b recreated")
    assert again["db-a"] == first["db-a"] and again["db-c"] == first["db-c"]
    wait_for(lambda: files.describe("db")["Converged"], what="converged")


def test_a_changed_list_of_logical_ids_adds_then_removes(files: Stack) -> None:
    files.commit(pets("quorum", ["q1", "q2"]))
    wait_for(lambda: len(by_logical_id(files, "quorum")) == 2, what="two pets")
    assert files.commit(pets("quorum", ["q2", "q3"])) == (
        "Committed quorum: Adding 1 instances for new logical IDs, then terminating 1 "
        "instances whose logical IDs were removed")
    wait_for(lambda: sorted(by_logical_id(files, "quorum")) == ["q2", "q3"]
             and files.describe("quorum")["Converged"], what="q1 replaced by q3")
