"""The ``flavor-mariadb`` plugin object: Validate, Prepare, Healthy (with reasons), Drain, and
the gates (CanRemove, Order) that keep a rolling update or a repair from losing writes.

Served by ``infrakit-flavor-mariadb`` (:mod:`.serve`); tests call :class:`Plugin` directly.
The group controller calls it for every member; the plugin keeps no state of its own: a
member's role travels on the member as the tag ``mariadb.role``, and the time it was prepared
(which starts its ``Startup`` window) as ``mariadb.prepared``, both put there by Prepare.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from infrakit import errors
from infrakit.plugins.flavor.mariadb import config, decide, probe, script, state
from infrakit.spi import flavor, instance

log = logging.getLogger(__name__)


class Plugin:
    """The MariaDB flavor (stateless; every method is a coroutine)."""

    async def validate(self, properties: Any, allocation: flavor.AllocationMethod) -> None:
        config.check_allocation(config.parse(properties), allocation)

    async def prepare(
        self, properties: Any, spec: instance.Spec, allocation: flavor.AllocationMethod,
        index: flavor.Index,
    ) -> instance.Spec:
        wanted = config.parse(properties)
        primary = config.primary_of(wanted, config.check_allocation(wanted, allocation))
        if not spec.logical_id:
            raise errors.InvalidError("Spec.LogicalID: required; flavor-mariadb members are "
                                      "pets named by their address", field="Spec.LogicalID")
        role = config.PRIMARY if spec.logical_id == primary else config.REPLICA
        init = script.render(wanted, logical_id=spec.logical_id, primary=primary)
        return spec.model_copy(update={
            "init": "\n".join([spec.init, init] if spec.init else [init]),
            "tags": {**spec.tags, config.ROLE_TAG: role,
                     config.PREPARED_TAG: str(int(time.time()))},
        })

    async def healthy(self, properties: Any, inst: instance.Description) -> flavor.Health:
        return (await self.judge(properties, inst)).health

    async def judge(self, properties: Any, inst: instance.Description) -> flavor.Verdict:
        """Healthy, with what the member said (ext: Flavor.Healthy's ``Reason``)."""
        wanted = config.parse(properties)
        if not inst.logical_id:
            return flavor.Verdict(flavor.Health.UNKNOWN,
                                  f"{inst.id} has no logical ID: not a flavor-mariadb member")
        try:
            member = await _check(wanted, inst.logical_id, config.role(wanted, inst))
        except errors.CallTimeout as exc:
            return flavor.Verdict(flavor.Health.UNKNOWN, exc.message)
        return decide.starting(decide.verdict(member, max_lag=wanted.max_lag),
                               age=config.age(inst, now=time.time()), startup=wanted.startup)

    async def drain(self, properties: Any, inst: instance.Description) -> None:
        """A primary goes read-only and waits (up to ``CatchUp``) for the replicas connected
        to it to apply its last writes; a replica has nothing to hand over. Never fails for
        a replica that does not keep up: CanRemove has already said the primary may go, and
        a group being destroyed stops its replicas at the same time."""
        wanted = config.parse(properties)
        if not inst.logical_id or config.role(wanted, inst) != config.PRIMARY:
            return
        try:
            behind = await probe.drain(wanted, inst.logical_id)
        except errors.CallTimeout as exc:
            behind = [exc.message]
        if behind:
            log.warning("primary %s is read-only, but within CatchUp (%gs) not every replica "
                        "applied its last write: %s", inst.logical_id, wanted.catch_up,
                        "; ".join(behind))

    async def can_remove(self, properties: Any, inst: instance.Description,
                         members: list[instance.Description]) -> flavor.Removal:
        """(ext) Flavor.CanRemove: see :func:`decide.removal`."""
        wanted = config.parse(properties)
        if not inst.logical_id:
            return flavor.Removal(allowed=True)
        everyone = [*members, inst]
        leaving_primary = config.role(wanted, inst) == config.PRIMARY
        primaries = ([inst.logical_id] if leaving_primary
                     else _logical_ids(wanted, everyone, role=config.PRIMARY))
        primary = await probe.primary(wanted, primaries[0]) if primaries else None
        # The primary leaving: have the replicas applied its last write (the heartbeat just
        # written)? Each may take up to Timeout to get there.
        wait_for = primary.gtid if leaving_primary and primary and primary.answered else ""
        replicas = await asyncio.gather(*(
            probe.replica(wanted, lid, wait_for=wait_for, wait=wanted.timeout)
            for lid in _logical_ids(wanted, everyone, role=config.REPLICA)))
        target = primary if leaving_primary else _find(replicas, inst.logical_id)
        assert target is not None  # inst is among the members checked
        answer = decide.removal(target, primary=primary, replicas=replicas,
                                max_lag=wanted.max_lag)
        if not answer.allowed:
            log.info("not now: %s", answer.reason)
        return answer

    async def order(self, properties: Any,
                    members: list[instance.Description]) -> list[instance.ID]:
        """(ext) Flavor.Order: the replicas that are behind (they lose nothing by going, and
        the others may not go before them), then the other replicas, the primary last."""
        wanted = config.parse(properties)
        replicas = [m for m in members
                    if m.logical_id and config.role(wanted, m) == config.REPLICA]
        checked = await asyncio.gather(*(_replica(wanted, m) for m in replicas))
        behind = {m.id for m, found in zip(replicas, checked, strict=True)
                  if found is None or not decide.caught_up(found, max_lag=wanted.max_lag)}
        return decide.order(wanted, members, behind=behind)


async def _replica(wanted: config.Properties, member: instance.Description
                   ) -> state.Member | None:
    """A replica's check, ``None`` when the check itself got stuck."""
    try:
        return await probe.replica(wanted, member.logical_id or "")
    except errors.CallTimeout:
        return None


async def _check(wanted: config.Properties, logical_id: str, role: str) -> state.Member:
    if role == config.PRIMARY:
        return await probe.primary(wanted, logical_id)
    return await probe.replica(wanted, logical_id)


def _logical_ids(wanted: config.Properties, members: list[instance.Description], *,
                 role: str) -> list[str]:
    """The distinct logical IDs of the ``members`` in ``role``, in their order."""
    return list(dict.fromkeys(m.logical_id for m in members
                              if m.logical_id and config.role(wanted, m) == role))


def _find(members: list[state.Member], logical_id: str) -> state.Member | None:
    return next((m for m in members if m.logical_id == logical_id), None)
