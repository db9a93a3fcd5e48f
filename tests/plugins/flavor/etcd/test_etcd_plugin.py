"""The etcd flavor's methods called directly, on real etcd members run from the Init
scripts Prepare writes (as instance-process would run them), on 127.0.0.21 … 127.0.0.23."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import pytest
from etcd_harness import ADDRESSES, Runner, cluster_members, get, put, status

from infrakit.plugins.flavor.etcd import plugin
from infrakit.spi import flavor, instance

THREE = ADDRESSES[:3]
ALLOCATION = flavor.AllocationMethod(logical_ids=THREE)


@dataclass
class Cluster:
    flavor: plugin.Plugin
    props: dict[str, Any]
    runner: Runner
    instances: dict[str, instance.Description]

    def url(self, lid: str) -> str:
        return f"http://{lid}:{self.props['ClientPort']}"

    async def prepare(self, lid: str, *, allocation: flavor.AllocationMethod = ALLOCATION
                      ) -> instance.Spec:
        spec = instance.Spec(logical_id=lid, tags={"infrakit.group": "etcd"})
        return await self.flavor.prepare(self.props, spec, allocation,
                                         flavor.Index(group="etcd", sequence=1))

    async def start(self, lid: str) -> instance.Description:
        self.instances[lid] = self.runner.start(await self.prepare(lid))
        return self.instances[lid]

    async def verdict(self, lid: str) -> flavor.Verdict:
        return await self.flavor.judge(self.props, self.instances[lid])

    async def wait_healthy(self, *lids: str, timeout: float = 30.0) -> None:
        async def all_healthy() -> bool:
            verdicts = [await self.verdict(lid) for lid in lids]
            return all(v.health == flavor.Health.HEALTHY for v in verdicts)
        await wait(all_healthy, what=f"{lids} healthy", timeout=timeout,
                   logs=lambda: {lid: self.runner.log(lid) for lid in lids})

    def leader(self) -> str:
        """The logical ID of the raft leader."""
        listed = cluster_members(self.url(THREE[0])) or cluster_members(self.url(THREE[1]))
        lead = next(status(self.url(m["name"])).get("leader") for m in listed
                    if m.get("name") and status(self.url(m["name"])).get("leader"))
        return next(str(m["name"]) for m in listed if m["ID"] == lead)


async def wait(check: Any, *, what: str, timeout: float = 30.0, logs: Any = None) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}" +
                                 (f": {logs()}" if logs else ""))
        await asyncio.sleep(0.1)


@pytest.fixture
async def cluster(props: dict[str, Any], runner: Runner) -> Cluster:
    """Three members bootstrapped from Prepare's scripts, all healthy."""
    made = Cluster(flavor=plugin.Plugin(), props=props, runner=runner, instances={})
    for lid in THREE:
        await made.start(lid)
    await made.wait_healthy(*THREE)
    return made


async def test_the_first_members_bootstrap_one_cluster_named_by_logical_ids(
        cluster: Cluster) -> None:
    listed = cluster_members(cluster.url(THREE[0]))
    assert sorted(m["name"] for m in listed) == THREE
    assert all(m["clientURLs"] == [cluster.url(m["name"])] for m in listed)
    tags = cluster.instances[THREE[1]].tags
    assert tags["etcd.name"] == THREE[1]
    assert tags["etcd.client-url"] == cluster.url(THREE[1])
    assert tags["etcd.endpoints"] == ",".join(cluster.url(lid) for lid in THREE)
    verdict = await cluster.verdict(THREE[1])
    assert verdict.reason.startswith(f"{THREE[1]} is a started member of a 3-member cluster")


async def test_a_killed_member_is_removed_and_its_replacement_joins_empty(
        cluster: Cluster) -> None:
    victim = THREE[1]
    put(cluster.url(THREE[0]), "kept", "yes")
    old = {m["name"]: m["ID"] for m in cluster_members(cluster.url(THREE[0]))}[victim]
    cluster.runner.kill(victim)

    spec = await cluster.prepare(victim)
    assert "--initial-cluster-state existing" in spec.init
    assert 'rm -rf -- "$data"' in spec.init
    listed = cluster_members(cluster.url(THREE[0]))
    assert old not in [m["ID"] for m in listed]  # the dead member was removed
    added = [m for m in listed if m["peerURLs"] == [f"http://{victim}:{cluster.props['PeerPort']}"]]
    assert len(added) == 1 and not added[0].get("name")  # its successor added, not started

    cluster.instances[victim] = cluster.runner.start(spec)
    await cluster.wait_healthy(*THREE)
    assert get(cluster.url(victim), "kept") == "yes"
    assert len(cluster_members(cluster.url(victim))) == 3


async def test_prepare_does_not_ask_the_member_it_replaces(
        cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    victim = next(lid for lid in THREE if lid != cluster.leader())  # the cluster keeps its
    cluster.runner.hang(victim)  # gone as a dead host is: connections hang, none answers

    with caplog.at_level(logging.DEBUG, logger="infrakit.plugins.flavor.etcd"):
        spec = await cluster.prepare(victim)

    # asking it would have cost the whole Timeout: the member is being replaced anyway
    assert not [r for r in caplog.records if r.getMessage().startswith(f"status of {victim}")]
    assert "--initial-cluster-state existing" in spec.init
    cluster.runner.kill(victim)
    cluster.instances[victim] = cluster.runner.start(spec)
    await cluster.wait_healthy(*THREE)


async def test_can_remove_keeps_a_quorum_of_healthy_members(cluster: Cluster) -> None:
    group = list(cluster.instances.values())
    first, second, _ = THREE
    assert (await cluster.flavor.can_remove(cluster.props, cluster.instances[first],
                                            group)).allowed
    cluster.runner.kill(second)
    refused = await cluster.flavor.can_remove(cluster.props, cluster.instances[first], group)
    assert refused == flavor.Removal(allowed=False, reason=(
        f"removing {first} would leave 1 of 2 voting members healthy; quorum needs 2"))
    assert (await cluster.flavor.can_remove(cluster.props, cluster.instances[second],
                                            group)).allowed


async def test_order_replaces_the_leader_last(cluster: Cluster) -> None:
    for _ in range(5):  # asked again should an election happen meanwhile
        leader = cluster.leader()
        order = await cluster.flavor.order(cluster.props, list(cluster.instances.values()))
        if cluster.leader() == leader:
            break
    assert sorted(order) == sorted(i.id for i in cluster.instances.values())
    assert order[-1] == cluster.instances[leader].id


async def test_draining_the_leader_hands_leadership_over_then_removes_it(
        cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    # Right after a member joined, etcd refuses the next removal for a few seconds (its
    # strict reconfiguration check) and Drain retries (logged, when it happens).
    leader = cluster.leader()
    follower = next(lid for lid in THREE if lid != leader)
    cluster.runner.kill(follower)
    await cluster.start(follower)
    await cluster.wait_healthy(follower)
    caplog.set_level(logging.INFO, logger="infrakit.plugins.flavor.etcd")

    await cluster.flavor.drain(cluster.props, cluster.instances[leader])

    async def left() -> bool:  # the follower applies the removal a moment later
        remaining = cluster_members(cluster.url(follower))
        return sorted(m["name"] for m in remaining) == sorted(set(THREE) - {leader})
    await wait(left, what=f"{leader} gone from the cluster")
    assert f"drain {leader}: moved leadership to" in caplog.text


async def test_drain_of_a_member_outside_the_cluster_does_nothing(cluster: Cluster) -> None:
    tags = cluster.instances[THREE[0]].tags
    stranger = instance.Description(id=instance.ID("i-x"), logical_id=ADDRESSES[4], tags={
        key: tags[key] for key in ("infrakit.group", "etcd.endpoints")})
    await cluster.flavor.drain(cluster.props, stranger)
    assert len(cluster_members(cluster.url(THREE[0]))) == 3


async def test_a_stopped_member_is_unhealthy_and_says_why(cluster: Cluster) -> None:
    cluster.runner.kill(THREE[2])
    verdict = await cluster.verdict(THREE[2])
    assert verdict.health == flavor.Health.UNHEALTHY
    assert verdict.reason == (f"{THREE[2]}: GET {cluster.url(THREE[2])}/health: "
                              "connection refused")


async def test_without_logical_id_health_is_unknown(props: dict[str, Any]) -> None:
    verdict = await plugin.Plugin().judge(props, instance.Description(id=instance.ID("i-1")))
    assert verdict.health == flavor.Health.UNKNOWN
