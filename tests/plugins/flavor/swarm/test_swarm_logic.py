"""The swarm flavor without engines: properties, health verdicts, quorum on removal, the
replacement order, and the Init it writes."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from infrakit import errors
from infrakit.plugins.flavor.swarm import properties as swprops
from infrakit.plugins.flavor.swarm import quorum, script
from infrakit.spi import flavor

GOOD: dict[str, Any] = {"Docker": {"NodeHost": "unix:///srv/swarm/{LogicalID}/docker.sock"}}
LIDS = ["10.0.0.11", "10.0.0.12", "10.0.0.13"]


def pets(*lids: str) -> flavor.AllocationMethod:
    return flavor.AllocationMethod.model_validate({"LogicalIDs": list(lids)})


def manager(nid: str, host: str, *, reach: str = "reachable", state: str = "ready",
            leader: bool = False) -> quorum.Node:
    return quorum.Node(id=nid, hostname=host, state=state, manager=True, reachability=reach,
                       leader=leader, manager_addr=f"{host}:2377")


@pytest.mark.parametrize(("raw", "field"), [
    (None, "Properties"),
    ({}, "Properties.Docker.NodeHost"),
    ({"Docker": {"NodeHost": "http://x"}}, "Properties.Docker.NodeHost"),
    ({**GOOD, "Docker": {**GOOD["Docker"], "Managers": ["ftp://m"]}},
     "Properties.Docker.Managers[0]"),
    ({**GOOD, "InitScriptTemplateURL": "file:///x.sh"}, "Properties.InitScriptTemplateURL"),
    ({**GOOD, "EngineLabels": {"a b": "c"}}, "Properties.EngineLabels.a b"),
    ({**GOOD, "Docker": {**GOOD["Docker"], "TLS": {"CAFile": "ca.pem"}}}, "Properties.Docker.TLS"),
])
def test_bad_properties_are_refused_naming_the_field(raw: Any, field: str) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        swprops.parse(raw)
    assert caught.value.message.startswith(field)


@pytest.mark.parametrize(("props", "allocation", "role", "words"), [
    (GOOD, pets("10.0.0.11", "10.0.0.12"), "manager", "odd number for quorum"),
    (GOOD, flavor.AllocationMethod(size=3), "manager", "odd number for quorum"),
    (GOOD, pets("10.0.0.11", "10.0.0.11", "10.0.0.12"), "manager", "more than once"),
    ({**GOOD, "SwarmJoinIP": "10.0.0.99"}, pets(*LIDS), "manager", "not one of the logical"),
    ({**GOOD, "Attachments": {"10.0.0.99": []}}, pets(*LIDS), "manager", "not a logical ID"),
    ({**GOOD, "Attachments": {"*": [{"ID": "v"}]}}, pets(*LIDS), "manager", "no attachment type"),
    ({**GOOD, "Attachments": {"*": [{"ID": "v", "Type": "t"}],
                              "10.0.0.11": [{"ID": "v", "Type": "t"}]}},
     pets(*LIDS), "manager", "specified more than once"),
])
def test_allocations_are_checked_as_v05_does(props: dict[str, Any],
                                             allocation: flavor.AllocationMethod, role: str,
                                             words: str) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        swprops.check(swprops.parse(props), allocation, role=role)
    assert words in caught.value.message


def test_workers_may_be_cattle_and_managers_come_from_the_logical_ids() -> None:
    props = swprops.parse({"Docker": {"Host": "unix:///m.sock",
                                      "NodeHost": "unix:///srv/{LogicalID}/docker.sock"}})
    assert swprops.check(props, flavor.AllocationMethod(size=2), role="worker") == []
    assert swprops.manager_urls(props, LIDS, skip="unix:///srv/10.0.0.12/docker.sock") == [
        "unix:///m.sock", "unix:///srv/10.0.0.11/docker.sock",
        "unix:///srv/10.0.0.13/docker.sock"]


@pytest.mark.parametrize(("node", "is_manager", "healthy", "words"), [
    (None, False, False, "not a node"),
    (quorum.Node(id="w", hostname="w", state="down"), False, False, "is down"),
    (quorum.Node(id="w", hostname="w", state="ready", availability="active"), False, True,
     "ready"),
    (quorum.Node(id="w", hostname="w", state="ready"), True, False, "not a manager"),
    (manager("m", "10.0.0.11", reach="unreachable"), True, False, "unreachable"),
    (manager("m", "10.0.0.11", leader=True), True, True, "leader"),
])
def test_a_node_is_healthy_when_ready_and_a_manager_when_reachable(
        node: quorum.Node | None, is_manager: bool, healthy: bool, words: str) -> None:
    ok, why = quorum.verdict(node, manager=is_manager)
    assert ok is healthy
    assert words in why


THREE = [manager("a", "10.0.0.11", leader=True), manager("b", "10.0.0.12"),
         manager("c", "10.0.0.13")]


@pytest.mark.parametrize(("target", "nodes", "leaving", "allowed"), [
    ("a", THREE, [], True),                       # 2 of 3 stay
    ("b", THREE, ["a"], False),                   # 1 of 3 would stay
    ("b", [THREE[0], THREE[1], manager("c", "10.0.0.13", reach="unreachable")], [], False),
    ("c", [THREE[0], THREE[1], manager("c", "10.0.0.13", reach="unreachable")], [], True),
    ("w", [*THREE, quorum.Node(id="w", state="ready")], ["a", "b"], True),  # a worker
])
def test_a_manager_may_go_only_while_the_others_keep_the_raft_majority(
        target: str, nodes: list[quorum.Node], leaving: list[str], allowed: bool) -> None:
    found = next(node for node in nodes if node.id == target)
    ok, why = quorum.removal(found, nodes, leaving=leaving)
    assert ok is allowed
    assert (why == "") is allowed


def test_unreachable_managers_go_first_and_the_leader_last() -> None:
    nodes = [manager("a", "10.0.0.11", leader=True), manager("b", "10.0.0.12"),
             manager("c", "10.0.0.13", reach="unreachable")]
    by_host = {"10.0.0.11": "i-1", "10.0.0.12": "i-2", "10.0.0.13": "i-3"}
    assert quorum.order(by_host, nodes) == ["i-3", "i-2", "i-1"]


def test_a_replaced_manager_is_a_ghost_once_its_successor_serves() -> None:
    nodes = [manager("old", "10.0.0.11"), manager("new", "10.0.0.11"), manager("b", "10.0.0.12")]
    assert [n.id for n in quorum.ghosts("10.0.0.11", "new", nodes)] == ["old"]
    dead = [manager("old", "10.0.0.11", state="down"), manager("b", "10.0.0.12")]
    assert [n.id for n in quorum.stale("10.0.0.11", dead)] == ["old"]
    assert quorum.stale("10.0.0.12", dead) == []


def test_the_init_joins_in_the_background_then_runs_the_nodes_own_boot() -> None:
    command = script.join(token="SWMTKN-1-x", addresses=["10.0.0.11:2377", "10.0.0.12:2377"],
                          advertise="10.0.0.13")
    text = script.render("exec dockerd $SWARM_ENGINE_LABELS",
                         url=script.engine_url("unix:///srv/{ID}/d.sock", lid="10.0.0.13"),
                         command=command, engine_labels={"tier": "control"}, role="manager",
                         timeout=60)
    assert 'SWARM_ENGINE="unix:///srv/${INFRAKIT_INSTANCE_ID}/d.sock"' in text
    assert "swarm join --token SWMTKN-1-x --advertise-addr 10.0.0.13 10.0.0.11:2377 ||" in text
    assert "SWARM_ENGINE_LABELS='--label tier=control'" in text
    assert text.index(") &") < text.index("exec dockerd")
    assert subprocess.run(["sh", "-n", "-c", text], check=False).returncode == 0
