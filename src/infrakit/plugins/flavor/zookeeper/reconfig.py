"""Changing an ensemble's membership: ZooKeeper's ``reconfig``, through kazoo.

Reconfiguration needs a session (and the super user, unless members skip ACLs), which the
four-letter words do not give, so this is the one place the flavor uses a client library.
kazoo blocks, so each change runs in a thread, bounded by a timeout. A change is made against
the membership's version (``from_config``): one made meanwhile by someone else fails it rather
than being overwritten.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from infrakit import errors
from infrakit.plugins.flavor.zookeeper import ensemble, script

log = logging.getLogger(__name__)

TIMEOUT = 15.0
"""How long one reconfiguration may take, session included."""


async def add(membership: ensemble.Membership, server: ensemble.Server, *,
              password: str | None) -> None:
    """Add ``server`` (up and synced) to ``membership`` as a voter."""
    await _reconfig(membership, password=password, joining=server.line(), leaving=None)


async def remove(membership: ensemble.Membership, server: int, *,
                 password: str | None) -> None:
    """Remove server ``server`` from ``membership``."""
    await _reconfig(membership, password=password, joining=None, leaving=str(server))


async def _reconfig(membership: ensemble.Membership, *, password: str | None,
                    joining: str | None, leaving: str | None) -> None:
    """``TemporaryError`` when the change failed or its outcome is unknown (a leader that
    hands over closes the session before it answers): the caller looks again."""
    hosts = ",".join(ensemble.address(voter.host, voter.client_port)
                     for voter in membership.voters)
    what = f"add {joining}" if joining else f"remove server {leaving}"
    try:
        async with asyncio.timeout(TIMEOUT):
            await asyncio.to_thread(_call, hosts, password, joining, leaving,
                                    membership.version)
    except TimeoutError:
        raise errors.TemporaryError(f"reconfig ({what}): no answer in {TIMEOUT:g}s") from None
    except errors.InfrakitError:
        raise
    except Exception as exc:  # kazoo's errors: say which, and let the caller look again
        raise errors.TemporaryError(f"reconfig ({what}): {type(exc).__name__} {exc}".strip()
                                    ) from None
    log.info("reconfig: %s", what)


def _call(hosts: str, password: str | None, joining: str | None, leaving: str | None,
          version: int) -> None:
    try:
        from kazoo.client import KazooClient  # type: ignore[import-untyped]
    except ImportError:
        raise errors.PermanentError(
            "flavor-zookeeper needs kazoo to reconfigure an ensemble (the zookeeper extra: "
            "pip install 'infrakit[zookeeper]')") from None
    auth: list[tuple[str, str]] = [("digest", script.super_auth(password))] if password else []
    client: Any = KazooClient(hosts=hosts, timeout=5.0, auth_data=auth or None,
                              connection_retry={"max_tries": 2, "delay": 0.2})
    try:
        client.start(timeout=5.0)
        result = client.reconfig_async(joining, leaving, None, version or -1)
        result.get(timeout=TIMEOUT - 5.0)
    finally:
        client.stop()
        client.close()
