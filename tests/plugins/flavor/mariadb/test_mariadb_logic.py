"""The MariaDB flavor's logic without a server: properties, the Init script, verdicts, gates."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest

from infrakit import errors
from infrakit.plugins.flavor.mariadb import config, decide, plugin, script, state
from infrakit.spi import flavor, instance

IDS = ["127.0.0.31", "127.0.0.32", "127.0.0.33"]
PETS = flavor.AllocationMethod(logical_ids=IDS)


@pytest.mark.parametrize(("properties", "allocation", "field", "words"), [
    ({"Prot": 3307}, PETS, "Properties.Prot", "did you mean Port?"),
    ({"Port": 0}, PETS, "Properties.Port", "expected 1 or more"),
    ({"User": "bad user"}, PETS, "Properties.User", "letters, digits or _"),
    ({"Password": ""}, PETS, "Properties.Password", "non-empty password"),
    ({"MaxLag": "soon"}, PETS, "Properties.MaxLag", "duration"),
    ({"Options": {"max connections": "1"}}, PETS, "Properties.Options", "option name"),
    ({"Options": {"x": "1\n[client]"}}, PETS, "Properties.Options", "control characters"),
    ({"Primary": "127.0.0.9"}, PETS, "Properties.Primary", "not one of the group's LogicalIDs"),
    ({}, flavor.AllocationMethod(size=3), "Allocation.LogicalIDs", "pets"),
])
async def test_bad_properties_are_refused_naming_the_field(
        properties: dict[str, Any], allocation: flavor.AllocationMethod, field: str,
        words: str) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        await plugin.Plugin().validate(properties, allocation)
    assert caught.value.data["field"] == field
    assert words in caught.value.message


async def test_a_bad_password_is_never_echoed_in_the_error() -> None:
    with pytest.raises(errors.InvalidError) as caught:
        await plugin.Plugin().validate({"Password": "s3cret\n"}, PETS)
    assert "s3cret" not in caught.value.message


async def test_prepare_makes_the_first_logical_id_the_primary_and_tags_roles() -> None:
    flavor_ = plugin.Plugin()
    specs = [await flavor_.prepare({"Port": 3307}, instance.Spec(logical_id=lid, tags={"a": "b"}),
                                   PETS, flavor.Index()) for lid in IDS]
    assert [s.tags[config.ROLE_TAG] for s in specs] == ["primary", "replica", "replica"]
    assert all(abs(float(s.tags[config.PREPARED_TAG]) - time.time()) < 600 for s in specs)
    assert all(s.tags["a"] == "b" for s in specs)
    assert "RESET SLAVE ALL" in specs[0].init and "CHANGE MASTER" not in specs[0].init
    assert "MASTER_HOST='127.0.0.31', MASTER_PORT=3307" in specs[1].init
    assert "read_only = ON" in specs[2].init and "bind_address = 127.0.0.33" in specs[2].init


async def test_an_explicit_primary_wins_and_a_spec_without_logical_id_is_refused() -> None:
    flavor_ = plugin.Plugin()
    spec = await flavor_.prepare({"Primary": "127.0.0.32"}, instance.Spec(logical_id="127.0.0.32"),
                                 PETS, flavor.Index())
    assert spec.tags[config.ROLE_TAG] == "primary"
    with pytest.raises(errors.InvalidError, match=r"Spec\.LogicalID"):
        await flavor_.prepare({}, instance.Spec(), PETS, flavor.Index())


def test_server_ids_come_from_the_address_and_are_never_zero() -> None:
    assert config.server_id("127.0.0.31") == (127 << 24) + 31
    assert config.server_id("db-1.example") != config.server_id("db-2.example")
    assert config.server_id("0.0.0.0") > 0


def test_the_init_script_is_valid_sh_and_quotes_what_it_is_given() -> None:
    wanted = config.parse({"DataDir": "/srv/my data", "Password": "it's\\x",
                           "Bin": "/opt/maria db/bin", "Options": {"max_connections": "50"}})
    text = script.render(wanted, logical_id="127.0.0.32", primary="127.0.0.31")
    subprocess.run(["/bin/sh", "-n", "-c", text], check=True)  # parses
    assert "member='/srv/my data/127.0.0.32'" in text
    assert "PATH='/opt/maria db/bin':\"$PATH\"" in text
    assert "MASTER_PASSWORD='it\\'s\\\\x'" in text
    assert text.rstrip().endswith('exec mariadbd --defaults-file="$member/my.cnf"')
    assert text.index("max_connections = 50") > text.index("init_file")  # Options win


def member(lid: str = "127.0.0.32", **facts: Any) -> state.Member:
    role = facts.pop("role", "replica")
    return state.Member(logical_id=lid, address=f"{lid}:3306", role=role, **facts)


CAUGHT_UP = {"replicating": True, "io_running": "Yes", "sql_running": "Yes", "behind": 0,
             "source": "127.0.0.31:3306", "gtid": "0-1-9"}
PRIMARY = member("127.0.0.31", role="primary", wrote=True, gtid="0-1-9")


@pytest.mark.parametrize(("found", "health", "words"), [
    (PRIMARY, flavor.Health.HEALTHY, "primary 127.0.0.31:3306 takes writes (at 0-1-9)"),
    (member("127.0.0.31", role="primary", read_only=True), flavor.Health.UNHEALTHY,
     "is read-only"),
    (member(error="Can't connect (Connection refused)"), flavor.Health.UNHEALTHY,
     "127.0.0.32:3306: Can't connect (Connection refused)"),
    (member(error="Access denied", denied=True), flavor.Health.UNKNOWN, "Properties.Password"),
    (member(**CAUGHT_UP), flavor.Health.HEALTHY, "replica 127.0.0.32:3306 of 127.0.0.31:3306"),
    (member(), flavor.Health.UNHEALTHY, "no primary is configured"),
    (member(**{**CAUGHT_UP, "io_running": "Connecting", "behind": None,
               "last_error": "error reconnecting to master"}),
     flavor.Health.UNHEALTHY, "IO thread Connecting: error reconnecting to master"),
    (member(**{**CAUGHT_UP, "sql_running": "No", "behind": None}), flavor.Health.UNHEALTHY,
     "SQL thread No"),
    (member(**{**CAUGHT_UP, "behind": 30}), flavor.Health.UNHEALTHY,
     "is 30s behind 127.0.0.31:3306 (at most 5s)"),
])
def test_verdicts_say_what_the_member_said(found: state.Member, health: flavor.Health,
                                           words: str) -> None:
    verdict = decide.verdict(found, max_lag=5.0)
    assert verdict.health == health
    assert words in verdict.reason


@pytest.mark.parametrize(("age", "health"), [
    (5.0, flavor.Health.UNKNOWN), (61.0, flavor.Health.UNHEALTHY), (None, flavor.Health.UNHEALTHY),
])
def test_a_member_that_is_not_up_yet_is_starting_within_its_window(
        age: float | None, health: flavor.Health) -> None:
    down = decide.verdict(member(error="Connection refused"), max_lag=5.0)
    found = decide.starting(down, age=age, startup=60.0)
    assert found.health == health
    assert found.reason.endswith("127.0.0.32:3306: Connection refused")
    if health == flavor.Health.UNKNOWN:
        assert found.reason.startswith("starting (5s of 60s): ")
    healthy = decide.verdict(member(**CAUGHT_UP), max_lag=5.0)
    assert decide.starting(healthy, age=age, startup=60.0) == healthy


def test_the_prepared_tag_gives_the_age() -> None:
    tagged = instance.Description(id="i", tags={config.PREPARED_TAG: "1000"})
    assert config.age(tagged, now=1030.0) == 30.0
    assert config.age(instance.Description(id="i"), now=1030.0) is None


R32, R33 = member("127.0.0.32", **CAUGHT_UP), member("127.0.0.33", **CAUGHT_UP)
BROKEN33 = member("127.0.0.33", **{**CAUGHT_UP, "sql_running": "No"})


@pytest.mark.parametrize(("target", "primary", "replicas", "denied"), [
    (R32, PRIMARY, [R32, R33], ""),
    (R32, PRIMARY, [R32, BROKEN33], "replacing 127.0.0.32 would leave 0 of 2 replicas caught up"),
    (BROKEN33, PRIMARY, [R32, BROKEN33], ""),
    (R32, PRIMARY, [R32], ""),  # one replica: the primary holds the data
    (R32, None, [R32, R33], "the group has no primary"),
    (R32, member("127.0.0.31", role="primary", error="Connection refused"), [R32, R33],
     "catch up from: primary 127.0.0.31:3306 Connection refused"),
    (PRIMARY, PRIMARY, [member("127.0.0.32", **CAUGHT_UP, applied=True),
                        member("127.0.0.33", **CAUGHT_UP, applied=True)], ""),
    (PRIMARY, PRIMARY, [member("127.0.0.32", **CAUGHT_UP, applied=True),
                        member("127.0.0.33", **{**CAUGHT_UP, "gtid": "0-1-7"}, applied=False)],
     "replacing primary 127.0.0.31 would lose writes: replica 127.0.0.33 has not applied "
     "0-1-9 yet (it is at 0-1-7)"),
    (PRIMARY, PRIMARY, [member("127.0.0.33", **{**CAUGHT_UP, "io_running": "Connecting"},
                               applied=False)],
     "replica 127.0.0.33 is not replicating (IO thread Connecting)"),
    (PRIMARY, PRIMARY, [member("127.0.0.33", error="timed out", applied=None)],
     "replica 127.0.0.33 does not answer (timed out)"),
    (member("127.0.0.31", role="primary", error="refused"), None, [R32], ""),
])
def test_removal_gates(target: state.Member, primary: state.Member | None,
                       replicas: list[state.Member], denied: str) -> None:
    answer = decide.removal(target, primary=primary, replicas=replicas, max_lag=5.0)
    assert answer.allowed == (not denied)
    assert denied in answer.reason


def test_order_puts_replicas_behind_first_and_the_primary_last() -> None:
    def desc(iid: str, lid: str, role: str) -> instance.Description:
        return instance.Description(id=iid, logical_id=lid, tags={config.ROLE_TAG: role})

    members = [desc("a", "127.0.0.31", "primary"), desc("b", "127.0.0.33", "replica"),
               desc("c", "127.0.0.32", "replica")]
    wanted = config.parse({})
    assert decide.order(wanted, members) == ["c", "b", "a"]
    assert decide.order(wanted, members, behind={"b"}) == ["b", "c", "a"]
