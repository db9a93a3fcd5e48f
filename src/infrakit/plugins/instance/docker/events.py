"""Wake the group when a container dies: the engine's ``/events`` stream, read asynchronously.

``infrakit-instance-docker --notify GROUP`` runs :func:`watch` beside its RPC server. It
subscribes to ``die`` and ``destroy`` events of containers that carry the group tag (and the
plugin's namespace tags) and calls ``wake`` for each, coalesced: while a wake is in flight,
any number of events make one more. Events of containers the plugin itself is destroying
wake nobody (the group asked for that). When the stream drops (the engine stops or
restarts) it reconnects with backoff, and wakes the group once it is back: events may have
been missed meanwhile, and the engine's restart may have stopped containers.

dockerd sends ``die`` before its container listing shows the container stopped (it records
the new state after logging the event, under the container's lock); a group woken at once
would still list the member running and heal only at its next poll. So a ``die`` wakes
the group only after an inspect of that container has answered: inspect waits for the
same lock, and by then the listing is up to date.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping

from infrakit import errors
from infrakit.plugins.instance.docker import engine

log = logging.getLogger(__name__)

EVENTS = ("die", "destroy")
RETRY_FIRST = 0.1
RETRY_MAX = 2.0
"""Reconnection backoff, in seconds: doubled after each failure up to this."""


def filters(namespace: Mapping[str, str]) -> dict[str, list[str]]:
    """The engine-side filter: container deaths of group members (within the namespace)."""
    labels = ["infrakit.group", *(f"{key}={value}" for key, value in sorted(namespace.items()))]
    return {"type": ["container"], "event": list(EVENTS), "label": labels}


class Waker:
    """Runs a blocking ``wake`` in a thread, at most one at a time; pokes during a wake
    make exactly one more wake after it."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._again = False
        self._task: asyncio.Task[None] | None = None
        self.wakes = 0
        """How many wakes have run (for tests and logs)."""

    def poke(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self._again = False
            await asyncio.to_thread(self._wake)
            self.wakes += 1
            if not self._again:
                return

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


async def watch(docker: engine.Engine, waker: Waker, *, namespace: Mapping[str, str],
                ignore: Collection[str] = ()) -> None:
    """Read the event stream forever (until cancelled), poking ``waker`` for each death of
    a container whose full ID is not in ``ignore`` (a live view: the plugin's own
    destroys)."""
    wanted = filters(namespace)
    delay = RETRY_FIRST
    dropped = False
    settling: set[asyncio.Task[None]] = set()

    def on_open() -> None:
        nonlocal delay
        delay = RETRY_FIRST
        log.info("watching %s for container deaths", docker.url)
        if dropped:
            waker.poke()  # deaths while the stream was down were missed

    while True:
        try:
            async for event in docker.events(wanted, on_open=on_open):
                cid, action = str(event.get("id", "")), event.get("Action", event.get("status"))
                if cid in ignore:
                    continue
                log.debug("container %s: %s", cid[:12], action)
                if action == "die":
                    settling.add(asyncio.create_task(_settled(docker, cid, waker)))
                    settling.difference_update([t for t in settling if t.done()])
                else:
                    waker.poke()
            reason = "the engine closed the event stream"
        except errors.InfrakitError as exc:
            reason = exc.message
        except asyncio.CancelledError:
            for task in settling:
                task.cancel()
            raise
        dropped = True
        log.warning("event stream: %s; reconnecting in %gs", reason, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX)


async def _settled(docker: engine.Engine, cid: str, waker: Waker) -> None:
    """Poke ``waker`` once the engine's listing shows container ``cid``'s death."""
    try:
        await docker.call("GET", f"/containers/{cid}/json", timeout=10.0)
    except errors.InfrakitError as exc:
        log.debug("inspect of %s after its death failed: %s", cid[:12], exc.message)
    waker.poke()
