"""Three managers on etcd: a rolling update of 10 instances survives losing its leader.

Real processes throughout (etcd, three managers, their three fenced backends, a journaling
instance-file plugin, flavor-vanilla). In the middle of a rolling update gated by a slow
health probe, the leader is killed with ``kill -9`` (or the etcd member restarts); a
manager takes over and the update completes where it stopped: exactly 10 instances on the
new config, no instance destroyed twice, no new-config instance destroyed (not restarted
from scratch), nothing orphaned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from local_cluster import GID, NAMES, Local, backend_of, spec, until

from infrakit import testing_etcd
from infrakit.spi import group

TTL = "2s"
SIZE = 10
SLOW_PROBE = "sleep 0.3"
"""The health gate: each new member is judged healthy 0.3 s after it is probed."""




def etcd_flags(url: str, prefix: str) -> Callable[[str], Sequence[str]]:
    def flags(name: str) -> Sequence[str]:
        return ["etcd", "--endpoint", url, "--lease-ttl", TTL, "--leader-key",
                prefix + "leader", "--store-prefix", prefix + "configs/"]
    return flags


async def converged_on(local: Local, version: group.Spec, *, via: str) -> bool:
    description = await local.plugins.group(via).describe_group(GID)
    shas = local.shas()
    status = description.status or {}
    return (description.converged and len(shas) == SIZE and len(set(shas)) == 1
            and status.get("ConfigSHA") == shas[0])


async def run_update_across_failover(local: Local, disrupt: Callable[[str], object]) -> None:
    v1, v2 = spec("v1", size=SIZE, probe=SLOW_PROBE), spec("v2", size=SIZE, probe=SLOW_PROBE)
    first = await local.leader()
    standby = next(n for n in NAMES if n != first)
    assert await local.plugins.group(standby).commit_group(v1, False) == \
        f"Managing {SIZE} instances"
    await until(lambda: converged_on(local, v1, via=standby), timeout=30, what="v1")
    old_sha = local.shas()[0]

    assert await local.plugins.group(standby).commit_group(v2, False) == \
        f"Performing a rolling update on {SIZE} instances"
    await until(lambda: sum(s != old_sha for s in local.shas()) >= 3, timeout=30,
                what="three members on v2")
    disrupt(first)

    survivors = [n for n in NAMES if local.processes.alive(n)]
    await until(lambda: converged_on(local, v2, via=survivors[0]), timeout=60,
                what="the update completed after the failover")
    new_sha = local.shas()[0]
    assert new_sha != old_sha

    journal = local.journal()
    destroyed = journal.ids("destroy")
    assert len(destroyed) == len(set(destroyed)), "an instance was destroyed twice"
    assert set(destroyed) == journal.provisioned_with(old_sha), \
        "every v1 member, and only those, were destroyed"
    assert len(journal.provisioned_with(new_sha)) == SIZE, "no v2 member was created twice"
    assert set(local.instances()) == journal.provisioned_with(new_sha), "nothing orphaned"
    held = [n for n in NAMES if n in await local.supervising()]
    assert len(held) == 1 and held[0] == await local.leader(among=survivors)


async def test_a_rolling_update_completes_after_the_leader_is_killed(
        local: Local, etcd_member: testing_etcd.EtcdProcess, prefix: str) -> None:
    local.start(etcd_flags(etcd_member.url, prefix))
    await run_update_across_failover(local, local.processes.kill9)
    killed = [n for n in NAMES if not local.processes.alive(n)]
    assert len(killed) == 1
    # The killed manager's backend fenced itself: alive, supervising nothing.
    assert local.processes.alive(backend_of(killed[0]))


async def test_a_rolling_update_completes_across_an_etcd_member_restart(
        local: Local, own_etcd: testing_etcd.EtcdProcess, prefix: str) -> None:
    local.start(etcd_flags(own_etcd.url, prefix))

    def restart_etcd(_leader: str) -> None:
        own_etcd.restart()

    await run_update_across_failover(local, restart_etcd)
    assert all(local.processes.alive(n) for n in NAMES)
