"""The flavor's methods against live members: a primary and two replicas run from the Init
script it prepares (real ``mariadbd``), their verdicts, gates and drain."""

from __future__ import annotations

from typing import Any

import pytest
from mariadb_cluster import IDS, PRIMARY, Members, applied, position, sql

from infrakit.plugins.flavor.mariadb import config, plugin
from infrakit.spi import flavor, instance

R32, R33 = IDS[1], IDS[2]


def desc(lid: str) -> instance.Description:
    role = config.PRIMARY if lid == PRIMARY else config.REPLICA
    return instance.Description(id=f"i-{lid}", logical_id=lid, tags={config.ROLE_TAG: role})


ALL = [desc(lid) for lid in IDS]


async def verdict(members: Members, lid: str, **changes: Any) -> flavor.Verdict:
    return await plugin.Plugin().judge({**members.properties, **changes}, desc(lid))


async def test_members_are_healthy_and_replicate_what_the_primary_takes(
        members: Members) -> None:
    port = members.port
    sql(PRIMARY, port, "CREATE DATABASE IF NOT EXISTS app")
    sql(PRIMARY, port, "CREATE TABLE IF NOT EXISTS app.rows (n INT PRIMARY KEY)")
    sql(PRIMARY, port, "INSERT INTO app.rows VALUES (1), (2), (3)")
    written = position(port)
    for lid in (R32, R33):
        assert applied(lid, port, written)
        assert sql(lid, port, "SELECT COUNT(*) AS n FROM app.rows")[0]["n"] == 3
        assert sql(lid, port, "SELECT @@read_only AS ro")[0]["ro"] == 1

    primary = await verdict(members, PRIMARY)
    assert primary.health == flavor.Health.HEALTHY, primary.reason
    assert primary.reason.startswith(f"primary {PRIMARY}:{port} takes writes (at 0-")
    for lid in (R32, R33):
        replica = await verdict(members, lid)
        assert replica.health == flavor.Health.HEALTHY, replica.reason
        assert f"replica {lid}:{port} of {PRIMARY}:{port}" in replica.reason
    assert await plugin.Plugin().order(members.properties, ALL) == [
        f"i-{R32}", f"i-{R33}", f"i-{PRIMARY}"]


async def test_a_wrong_password_is_unknown_not_unhealthy(members: Members) -> None:
    found = await verdict(members, R32, Password="wrong")
    assert found.health == flavor.Health.UNKNOWN
    assert "Access denied" in found.reason and "wrong" not in found.reason


async def test_a_replica_that_stopped_applying_holds_back_the_primary_and_goes_first(
        members: Members) -> None:
    port, flavor_ = members.port, plugin.Plugin()
    sql(R33, port, "STOP SLAVE SQL_THREAD")
    try:
        sql(PRIMARY, port, "CREATE DATABASE IF NOT EXISTS app")
        sql(PRIMARY, port, "CREATE TABLE IF NOT EXISTS app.held (n INT)")
        sql(PRIMARY, port, "INSERT INTO app.held VALUES (1)")

        found = await verdict(members, R33)
        assert found.health == flavor.Health.UNHEALTHY
        assert f"replica {R33}:{port} SQL thread No" in found.reason

        primary = await flavor_.can_remove(members.properties, desc(PRIMARY), ALL)
        assert not primary.allowed
        assert primary.reason.startswith(
            f"replacing primary {PRIMARY} would lose writes: replica {R33} is not replicating")
        other = await flavor_.can_remove(members.properties, desc(R32), ALL)
        assert (other.allowed, other.reason) == (
            False, f"replacing {R32} would leave 0 of 2 replicas caught up")
        assert (await flavor_.can_remove(members.properties, desc(R33), ALL)).allowed
        assert await flavor_.order(members.properties, ALL) == [
            f"i-{R33}", f"i-{R32}", f"i-{PRIMARY}"]
    finally:
        sql(R33, port, "START SLAVE SQL_THREAD")
    assert applied(R33, port, position(port))
    assert (await flavor_.can_remove(members.properties, desc(PRIMARY), ALL)).allowed
    assert (await flavor_.can_remove(members.properties, desc(R32), ALL)).allowed


async def test_drain_of_the_primary_makes_it_read_only_once_replicas_have_its_writes(
        members: Members) -> None:
    port = members.port
    sql(PRIMARY, port, "CREATE DATABASE IF NOT EXISTS app")
    sql(PRIMARY, port, "CREATE TABLE IF NOT EXISTS app.drained (n INT)")
    sql(PRIMARY, port, "INSERT INTO app.drained VALUES (1)")
    try:
        await plugin.Plugin().drain(members.properties, desc(PRIMARY))
        last = position(port)
        assert sql(PRIMARY, port, "SELECT @@read_only AS ro")[0]["ro"] == 1
        for lid in (R32, R33):  # applied already: no wait
            assert applied(lid, port, last, timeout=0)
        found = await verdict(members, PRIMARY)
        assert (found.health, found.reason) == (
            flavor.Health.UNHEALTHY, f"primary {PRIMARY}:{port} is read-only, it takes no writes")
    finally:
        sql(PRIMARY, port, "SET GLOBAL read_only = OFF")
    await plugin.Plugin().drain(members.properties, desc(R32))  # a replica: nothing to do
    assert sql(R32, port, "SELECT COUNT(*) AS n FROM app.drained")[0]["n"] == 1


@pytest.mark.timeout(240)
async def test_while_the_primary_is_down_replicas_wait_and_then_reconnect(
        members: Members) -> None:
    port, flavor_ = members.port, plugin.Plugin()
    sql(PRIMARY, port, "CREATE DATABASE IF NOT EXISTS app")
    sql(PRIMARY, port, "CREATE TABLE IF NOT EXISTS app.kept (n INT)")
    sql(PRIMARY, port, "INSERT INTO app.kept VALUES (7)")
    members.stop(PRIMARY)

    down = await verdict(members, PRIMARY)
    assert down.health == flavor.Health.UNHEALTHY and f"{PRIMARY}:{port}: " in down.reason
    replica = await verdict(members, R32)
    assert replica.health == flavor.Health.UNHEALTHY
    assert "IO thread Connecting" in replica.reason
    held = await flavor_.can_remove(members.properties, desc(R32), ALL)
    assert not held.allowed
    assert held.reason.startswith(f"replacing replica {R32} now would leave it nothing to "
                                  f"catch up from: primary {PRIMARY}:{port} ")
    # A primary that does not answer has nothing more to give: its successor keeps its data.
    assert (await flavor_.can_remove(members.properties, desc(PRIMARY), ALL)).allowed

    members.start(PRIMARY)  # the same datadir, as a replaced pet finds it
    members.wait_up(PRIMARY)
    sql(PRIMARY, port, "INSERT INTO app.kept VALUES (8)")
    last = position(port)
    for lid in (R32, R33):
        assert applied(lid, port, last)
        assert [r["n"] for r in sql(lid, port, "SELECT n FROM app.kept ORDER BY n")] == [7, 8]
    for lid in IDS:
        found = await verdict(members, lid)
        assert found.health == flavor.Health.HEALTHY, found.reason
