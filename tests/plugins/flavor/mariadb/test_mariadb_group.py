"""A primary and two replicas as a group, end to end: the group plugin, ``instance-process``
and ``infrakit-flavor-mariadb`` as processes, real ``mariadbd`` members, the CLI to commit.

Depends on the group plugin asking Flavor.CanRemove / Flavor.Order (the replicas-first order
of the rolling update is the flavor's)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from mariadb_cluster import APP, IDS, PRIMARY, Writer, applied, position, recorded, shared_port, sql
from stack import Stack, wait_for

GID = "db"


def spec(stack: Stack, port: int, **options: str) -> dict[str, Any]:
    return {"ID": GID, "Properties": {
        "Allocation": {"LogicalIDs": IDS},
        # No DataDir: each member's data is under the instance's working dir, mariadb/<ID>.
        "Instance": {"Plugin": "instance-process",
                     "Properties": {"Cwd": str(stack.work), "StopTimeout": "60s"}},
        "Flavor": {"Plugin": "flavor-mariadb", "Properties": {
            "Port": port, "Timeout": "5s", "CatchUp": "30s", "Options": options}},
        "Health": {"Interval": "250ms", "StartupGrace": "60s", "UnhealthyAfter": "30s"},
        "Update": {"HealthTimeout": "3m"}}}


@dataclass
class Cluster:
    stack: Stack
    port: int
    committed: str

    @property
    def data(self) -> Any:
        return self.stack.work / "mariadb"

    def members(self) -> dict[str, dict[str, Any]]:
        """The group's members (Description JSON) by logical ID."""
        return {m["LogicalID"]: m for m in self.stack.members(GID)}

    def converged(self, *, gone: Collection[str] = (),
                  timeout: float = 180.0) -> dict[str, dict[str, Any]]:
        """The members once the group says Converged, with one per logical ID, all on one
        config and none of the instances ``gone``."""
        def check() -> dict[str, dict[str, Any]] | None:
            described = self.stack.describe(GID)
            members = {m["LogicalID"]: m for m in described["Instances"] or []}
            shas = {m["Tags"]["infrakit.config_sha"] for m in members.values()}
            ok = (described["Converged"] and sorted(members) == IDS and len(shas) == 1
                  and not any(m["ID"] in gone for m in members.values()))
            return members if ok else None
        return wait_for(check, what=f"{GID} converged: {self.stack.log('group')[-600:]}",
                        timeout=timeout)


@pytest.fixture(scope="module")
def cluster(stack: Stack) -> Iterator[Cluster]:
    port = shared_port()
    found = Cluster(stack, port, stack.commit(spec(stack, port)))
    found.converged()
    yield found


def test_a_commit_brings_up_a_primary_and_two_replicas_that_replicate(
        cluster: Cluster) -> None:
    assert cluster.committed == f"Committed {GID}: Managing 3 instances"
    roles = {lid: m["Tags"]["mariadb.role"] for lid, m in cluster.members().items()}
    assert roles == {IDS[0]: "primary", IDS[1]: "replica", IDS[2]: "replica"}
    port = cluster.port
    sql(PRIMARY, port, "CREATE DATABASE IF NOT EXISTS app")
    sql(PRIMARY, port, "CREATE TABLE app.rows (n INT PRIMARY KEY)")
    sql(PRIMARY, port, "INSERT INTO app.rows VALUES (1), (2)")
    written = position(port)
    for lid in IDS[1:]:
        assert applied(lid, port, written)
        assert sql(lid, port, "SELECT COUNT(*) AS n FROM app.rows")[0]["n"] == 2
        assert sql(lid, port, "SELECT @@read_only AS ro")[0]["ro"] == 1
    for lid in IDS:  # each member's data under the instance's working dir
        assert (cluster.data / lid / "db" / "mysql").is_dir()


def test_killed_replicas_are_replaced_and_catch_up(cluster: Cluster) -> None:
    port, state = cluster.port, cluster.stack.work / "procs"
    before = recorded(state)
    # 127.0.0.32 keeps its datadir (a pet restarted where it was); 127.0.0.33 loses it, so
    # its replacement starts empty and rebuilds from the primary's binary log.
    (cluster.data / IDS[1] / "db" / "kept").write_text("")
    os.rename(cluster.data / IDS[2], cluster.data / f"{IDS[2]}.lost")
    for lid in IDS[1:]:
        os.kill(int(before[lid]["Pid"]), signal.SIGKILL)
    sql(PRIMARY, port, "CREATE DATABASE IF NOT EXISTS app")
    sql(PRIMARY, port, "CREATE TABLE app.during (n INT PRIMARY KEY)")
    sql(PRIMARY, port, "INSERT INTO app.during VALUES (1), (2), (3)")
    written = position(port)

    members = cluster.converged(gone={before[lid]["ID"] for lid in IDS[1:]})
    assert members[PRIMARY]["ID"] == before[PRIMARY]["ID"]
    for lid in IDS[1:]:
        assert applied(lid, port, written)
        assert sql(lid, port, "SELECT COUNT(*) AS n FROM app.during")[0]["n"] == 3
    assert (cluster.data / IDS[1] / "db" / "kept").exists()  # restarted on its data
    assert (cluster.data / IDS[2] / "db" / "mysql").is_dir()  # rebuilt from empty


def replacements(cluster: Cluster, stop: threading.Event, seen: list[str]) -> None:
    """Note each logical ID once its member is replaced, in the order it happens."""
    first = {lid: record["ID"] for lid, record in recorded(cluster.stack.work / "procs").items()}
    while not stop.is_set():
        for lid, record in recorded(cluster.stack.work / "procs").items():
            if lid in first and record["ID"] != first[lid] and lid not in seen:
                seen.append(lid)
        time.sleep(0.02)


@pytest.mark.timeout(400)
def test_a_rolling_update_replaces_replicas_first_then_the_primary_and_loses_nothing(
        cluster: Cluster) -> None:
    port, stack = cluster.port, cluster.stack
    sql(PRIMARY, port, "CREATE DATABASE IF NOT EXISTS app")
    sql(PRIMARY, port, "CREATE TABLE app.log (n INT PRIMARY KEY)")
    sql(PRIMARY, port, "CREATE USER 'app'@'%%' IDENTIFIED BY %s", (APP["password"],))
    sql(PRIMARY, port, "GRANT INSERT, SELECT ON app.* TO 'app'@'%'")
    before = {lid: m["ID"] for lid, m in cluster.members().items()}
    writer, order, watching = Writer(port), [], threading.Event()
    threads = [threading.Thread(target=writer.run),
               threading.Thread(target=replacements, args=(cluster, watching, order))]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(writer.acknowledged) >= 5, what="the writer writing")
        assert stack.commit(spec(stack, port, max_connections="77")) == (
            f"Committed {GID}: Performing a rolling update on 3 instances")
        cluster.converged(gone=set(before.values()), timeout=300)
        after = len(writer.acknowledged) + 5
        wait_for(lambda: len(writer.acknowledged) >= after, what="writes after the update")
    finally:
        writer.stop.set()
        watching.set()
        for thread in threads:
            thread.join(30)

    assert sorted(order[:2]) == IDS[1:] and order[2:] == [PRIMARY], order
    written = position(port)
    for lid in IDS:
        assert lid == PRIMARY or applied(lid, port, written)
        found = {r["n"] for r in sql(lid, port, "SELECT n FROM app.log")}
        assert set(writer.acknowledged) <= found, f"{lid} lost writes"
        assert sql(lid, port, "SELECT @@max_connections AS m")[0]["m"] == 77


@pytest.mark.timeout(400)
def test_the_group_waits_to_replace_replicas_while_the_primary_takes_no_writes(
        cluster: Cluster) -> None:
    port, stack = cluster.port, cluster.stack
    before = {lid: m["ID"] for lid, m in cluster.members().items()}
    sql(PRIMARY, port, "SET GLOBAL read_only = ON")
    try:
        update = spec(stack, port, max_connections="88")
        update["Properties"]["Update"]["MaxUnavailable"] = 2  # the primary counts as one
        stack.commit(update)
        waiting = wait_for(lambda: stack.describe(GID)["Status"].get("Waiting"),
                           what="the group waiting on the flavor", timeout=60)
        assert set(waiting) <= {before[lid] for lid in IDS[1:]}
        assert all(why.startswith("replacing replica 127.0.0.3") and why.endswith(
            f"now would leave it nothing to catch up from: primary {PRIMARY}:{port} is "
            "read-only") for why in waiting.values()), waiting
        assert {lid: m["ID"] for lid, m in cluster.members().items()} == before
    finally:
        sql(PRIMARY, port, "SET GLOBAL read_only = OFF")
    members = cluster.converged(gone=set(before.values()), timeout=300)
    assert "Waiting" not in stack.describe(GID)["Status"]
    for lid in IDS:
        assert sql(lid, port, "SELECT @@max_connections AS m")[0]["m"] == 88
    assert len(members) == 3
