"""Asking a member how it is: ZooKeeper's four-letter words over a plain TCP connection.

``srvr`` says whether a member serves and as what (leader, follower); ``conf`` says its
server ID and the membership it follows (a member that is up but not in the ensemble does
not find itself there). Four-letter words need no session and no client library, so a
health probe costs one short connection; the members whitelist ``srvr``, ``mntr``, ``ruok``
and ``conf`` (:mod:`.script`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os

from infrakit.plugins.flavor.zookeeper import ensemble

TIMEOUT = 2.0
"""How long a member may take to answer one word."""

NOT_SERVING = "not currently serving requests"
"""What a member without a quorum answers."""


@dataclasses.dataclass(frozen=True, slots=True)
class Status:
    """What ``srvr`` and ``conf`` said, or why they said nothing."""

    address: str
    mode: str = ""
    """``leader``, ``follower``, ``observer``, or ``""`` when the member does not serve."""
    me: int | None = None
    """The member's own server ID."""
    membership: ensemble.Membership | None = None
    """The membership the member follows."""
    error: str = ""
    """Why the member did not answer (``connection refused``, ``no answer in 2s``), or
    ``not serving requests`` without a quorum."""

    @property
    def serving(self) -> bool:
        return self.mode in ("leader", "follower")

    @property
    def voting(self) -> bool:
        """Whether the member serves and its membership counts it as a voter."""
        return (self.serving and self.me is not None and self.membership is not None
                and any(voter.id == self.me for voter in self.membership.voters))


async def ask(host: str, port: int, word: str, *, timeout: float = TIMEOUT) -> str:
    """Send ``word`` to ``host:port`` and return the whole answer; ``OSError`` or
    ``TimeoutError`` when the member does not answer."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(word.encode())
            await writer.drain()
            return (await reader.read(-1)).decode(errors="replace")
        finally:
            writer.close()


async def status(host: str, port: int, *, timeout: float = TIMEOUT) -> Status:
    """``srvr`` then ``conf`` of one member."""
    address = ensemble.address(host, port)
    try:
        served = await ask(host, port, "srvr", timeout=timeout)
        if NOT_SERVING in served:
            return Status(address, error="not serving requests (no quorum)")
        configured = await ask(host, port, "conf", timeout=timeout)
    except TimeoutError:
        return Status(address, error=f"no answer in {timeout:g}s")
    except OSError as exc:
        return Status(address, error=os.strerror(exc.errno).lower() if exc.errno else str(exc))
    mode = next((line.split(":", 1)[1].strip() for line in served.splitlines()
                 if line.startswith("Mode:")), "")
    me, membership = ensemble.parse_conf(configured)
    return Status(address, mode=mode, me=me, membership=membership)


async def statuses(targets: list[tuple[str, int]], *, timeout: float = TIMEOUT) -> list[Status]:
    """:func:`status` of each ``(host, port)``, all at once."""
    return list(await asyncio.gather(*(status(host, port, timeout=timeout)
                                       for host, port in targets)))
