"""The swarm flavor: the Flavor interface over :mod:`.swarm`, :mod:`.quorum` and
:mod:`.script`, one object per role (``flavor-swarm/manager``, ``flavor-swarm/worker``).

- **Prepare** asks a reachable manager (``Docker.Host``, ``Docker.Managers``, and in the
  manager group every logical ID's ``Docker.NodeHost``) for the join token of the role and
  the reachable managers' addresses, and puts the join before the spec's Init. The first
  manager (``SwarmJoinIP``, else the first logical ID) initializes the swarm when no manager
  answers; any other node waits (a ``TemporaryError``: the group retries). A manager that
  replaces a dead one first has the dead one's node demoted and removed, so the swarm does not
  count a ghost against its quorum.
- **Healthy** (``judge``): the node's own engine is in the swarm, and a manager sees the node
  ``ready`` (managers: ``reachable``). No manager answering reads as Unknown.
- **Drain**: availability ``drain``, demotion (managers), ``leave`` on the node's own engine,
  then removal from the node list. Best effort: each failed step is logged.
- **CanRemove**: a manager may go only while the reachable managers that stay, less those
  already allowed to go, keep the Raft majority. **Order**: unreachable managers first, the
  leader last.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import string
import time
from datetime import UTC, datetime
from typing import Any

from infrakit import errors
from infrakit.plugins.flavor.swarm import properties as swprops
from infrakit.plugins.flavor.swarm import quorum, script, swarm
from infrakit.spi import flavor, instance

log = logging.getLogger(__name__)

HEALTHY, UNHEALTHY, UNKNOWN = flavor.Health.HEALTHY, flavor.Health.UNHEALTHY, flavor.Health.UNKNOWN
REMEMBER = 120.0
"""How long an allowed removal counts as leaving."""
LINK_ALPHABET = string.ascii_lowercase + string.digits


class Plugin:
    """The flavor of one role: ``manager`` or ``worker``."""

    def __init__(self, role: str) -> None:
        if role not in swprops.ROLES:
            raise ValueError(f"role: expected one of {swprops.ROLES}, got {role!r}")
        self.role = role
        self._lids: list[str] = []
        """The group's logical IDs, last seen (Drain is not told them)."""
        self._leaving: dict[str, tuple[str, float]] = {}
        """Removals allowed and not done, by instance ID: (node ID, when)."""
        self._burying: set[str] = set()
        """IDs of replaced managers' nodes being demoted and removed."""

    @property
    def manager(self) -> bool:
        return self.role == swprops.MANAGER

    async def validate(self, properties: Any, allocation: flavor.AllocationMethod) -> None:
        self._lids = swprops.check(swprops.parse(properties), allocation, role=self.role)

    async def prepare(self, properties: Any, spec: instance.Spec,
                      allocation: flavor.AllocationMethod, index: flavor.Index) -> instance.Spec:
        props = swprops.parse(properties)
        lids = self._lids = swprops.check(props, allocation, role=self.role)
        lid = str(spec.logical_id or "")
        if self.manager and not lid:
            raise errors.InvalidError("LogicalID: managers need one (their address)",
                                      field="LogicalID")
        own = swprops.node_url(props, lid=lid) if "{ID}" not in props.docker.node_host else ""
        urls = swprops.manager_urls(props, lids, skip=own)
        seen = await swarm.view(urls)
        command, swarm_id = await self._command(props, seen, lid=lid, lids=lids, urls=urls)
        own_init = "\n".join(part for part in (spec.init, *props.init) if part)
        init = script.render(own_init, url=script.engine_url(props.docker.node_host, lid=lid),
                             command=command, engine_labels=props.engine_labels,
                             role=self.role, timeout=props.join_timeout)
        link = "".join(secrets.choice(LINK_ALPHABET) for _ in range(16))
        tags = {**spec.tags, "swarm-id": swarm_id, "infrakit-link": link,
                "infrakit-link-context": f"swarm::{swarm_id}::{self.role}",
                "infrakit-link-created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        attached = [*(spec.attachments or []), *swprops.attachments(props, lid or None)]
        return spec.model_copy(update={"init": init, "tags": tags, "attachments": attached})

    async def _command(self, props: swprops.Properties, seen: swarm.View | None, *,
                       lid: str, lids: list[str], urls: list[str]) -> tuple[str, str]:
        """The join (or init) command and the swarm's ID (``?`` when there is none yet)."""
        if seen is None:
            first = props.swarm_join_ip or (lids[0] if lids else "")
            if self.manager and lid == first and not await swarm.any_member(urls):
                return script.initialize(advertise=lid), "?"
            raise errors.TemporaryError(
                f"no manager of the swarm answers (asked {', '.join(urls) or 'none'}): "
                f"{lid or 'the node'} joins once one does", delay=2.0)
        if self.manager:
            await _clear(seen, lid)
        addresses = seen.addresses()
        if not addresses:
            raise errors.TemporaryError("no reachable manager advertises an address", delay=2.0)
        command = script.join(token=seen.token(self.role), addresses=addresses,
                              advertise=lid if self.manager else "")
        return command, seen.swarm_id or "?"

    async def healthy(self, properties: Any, inst: instance.Description) -> flavor.Health:
        return (await self.judge(properties, inst)).health

    async def judge(self, properties: Any, inst: instance.Description) -> flavor.Verdict:
        """Healthy with the reason."""
        props = swprops.parse(properties)
        lid = str(inst.logical_id or "")
        own = swprops.node_url(props, lid=lid, iid=str(inst.id))
        try:
            node_id, state = await swarm.local_node(own)
        except errors.InfrakitError as exc:
            return flavor.Verdict(UNHEALTHY, exc.message)
        if state != "active":
            return flavor.Verdict(UNHEALTHY, f"{lid or inst.id}: not in a swarm ({state})")
        seen = await swarm.view([*swprops.manager_urls(props, self._lids, skip=own), own])
        if seen is None:
            return flavor.Verdict(UNKNOWN, "no manager of the swarm answers (no quorum?)")
        ok, why = quorum.verdict(seen.node(node_id), manager=self.manager)
        if ok and self.manager:
            self._bury(seen, quorum.ghosts(lid, node_id, seen.nodes))
        return flavor.Verdict(HEALTHY if ok else UNHEALTHY, why)

    def _bury(self, seen: swarm.View, ghosts: list[quorum.Node]) -> None:
        """Demote and remove, in the background, the managers a live one replaced."""
        for ghost in ghosts:
            if ghost.id in self._burying:
                continue
            self._burying.add(ghost.id)
            task = asyncio.get_running_loop().create_task(_clear_one(seen.url, ghost))
            task.add_done_callback(functools.partial(self._buried, ghost.id))

    def _buried(self, node_id: str, task: asyncio.Task[None]) -> None:
        self._burying.discard(node_id)

    async def drain(self, properties: Any, inst: instance.Description) -> None:
        """Drain, demote, leave and remove the node; each step best effort."""
        props = swprops.parse(properties)
        lid = str(inst.logical_id or "")
        own = swprops.node_url(props, lid=lid, iid=str(inst.id))
        node_id: str | None = None
        try:
            node_id, _ = await swarm.local_node(own)
        except errors.InfrakitError as exc:
            log.info("drain %s: %s", inst.id, exc.message)
            own = ""
        seen = await swarm.view([*swprops.manager_urls(props, self._lids, skip=own), own])
        if not node_id and seen is not None and lid:
            found = seen.manager_at(lid)
            node_id = found.id if found else None
        if seen is not None and node_id:
            await _step(f"drain {inst.id}", swarm.update(seen.url, node_id,
                                                         Availability="drain"))
            if self.manager:
                await _step(f"demote {inst.id}", swarm.demote(seen.url, node_id))
        if own:
            await _step(f"leave {inst.id}", swarm.leave(own))
        if seen is not None and node_id and seen.url != own:
            await _step(f"remove {inst.id}", swarm.remove(seen.url, node_id))

    async def can_remove(self, properties: Any, inst: instance.Description,
                         members: list[instance.Description]) -> flavor.Removal:
        if not self.manager:
            return flavor.Removal(True)
        props = swprops.parse(properties)
        self._lids = [str(m.logical_id) for m in members if m.logical_id] or self._lids
        seen = await swarm.view(swprops.manager_urls(props, self._lids))
        if seen is None:
            return flavor.Removal(False, "no manager of the swarm answers: cannot tell whether "
                                         "the quorum holds")
        target = seen.manager_at(str(inst.logical_id or ""))
        now = time.monotonic()
        present = {str(member.id) for member in members}
        self._leaving = {iid: (node, when) for iid, (node, when) in self._leaving.items()
                         if iid in present and now - when < REMEMBER}
        leaving = [node for iid, (node, _) in self._leaving.items() if iid != str(inst.id)]
        allowed, why = quorum.removal(target, seen.nodes, leaving=leaving)
        if allowed and target is not None and target.reachable:
            self._leaving[str(inst.id)] = (target.id, now)
        return flavor.Removal(allowed, why)

    async def order(self, properties: Any,
                    members: list[instance.Description]) -> list[instance.ID]:
        if not self.manager:
            return []
        props = swprops.parse(properties)
        by_host = {str(m.logical_id): str(m.id) for m in members if m.logical_id}
        seen = await swarm.view(swprops.manager_urls(props, list(by_host)))
        if seen is None:
            return []
        return [instance.ID(iid) for iid in quorum.order(by_host, seen.nodes)]


async def _clear(seen: swarm.View, lid: str) -> None:
    """Demote and remove the dead managers advertised at ``lid`` (the one this replaces)."""
    for node in quorum.stale(lid, seen.nodes):
        await _clear_one(seen.url, node)


async def _clear_one(url: str, node: quorum.Node) -> None:
    log.info("manager %s at %s (%s, %s) was replaced: demoted and removed", node.id,
             node.manager_addr, node.state, node.reachability)
    await _step(f"demote {node.id}", swarm.demote(url, node.id))
    await _step(f"remove {node.id}", swarm.remove(url, node.id))


async def _step(what: str, step: Any) -> None:
    try:
        await step
    except errors.InfrakitError as exc:
        log.warning("%s: %s", what, exc.message)
