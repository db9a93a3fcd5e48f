"""Leadership: which manager acts, its fencing token, and notice of gaining or losing it.

The manager starts a :class:`Leadership`, commits every stored group when it gains it
and frees them when it loses it; stores check :meth:`Leadership.token` before each write.
Backends: :mod:`.leader_file` (InfraKit's leader file; ``flock`` for one host) and
:mod:`.leader_etcd` (lease + transaction). They share :class:`Base`, which keeps the
state and fans changes out to callbacks (run synchronously, at the moment of change) and
to async iterators.

Loss is signalled before anything else happens: the flag and token drop first, then the
callbacks run, then the iterators wake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from infrakit.spi.wire import Wire

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Token:
    """Proof of leadership at one moment; stores carry it into every write (fencing)."""

    generation: int
    """etcd: the leader key's create revision. File modes: a number unique per gain."""
    lease: int = 0
    """etcd: the lease the leader key is tied to; 0 for file modes."""
    key: str = ""
    """etcd: the leader key whose incarnation this token proves; "" for file modes."""


@dataclass(frozen=True)
class Change:
    """Leadership gained (``leading``) or lost, and why."""

    leading: bool
    token: Token | None
    reason: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Info(Wire):
    """Who leads now, as ``manager leader`` shows it."""

    name: str = ""
    """The leading manager's name; "" when no leader is known."""
    since: datetime | None = None
    """When it gained leadership (as far as we can tell)."""
    lease: int = 0
    """etcd: the leader's lease ID; 0 for file modes."""
    ttl: float = 0
    """etcd: seconds left on that lease; 0 for file modes."""
    backend: str = ""
    """``file``, ``flock`` or ``etcd``."""
    url: str = ""
    """(ext) etcd: where the leader answers on TCP (``https://host:port``), when it
    listens there; standbys on other hosts forward to it at this URL."""


class Leadership(Protocol):
    """One manager's view of leadership."""

    @property
    def name(self) -> str:
        """This manager's name, as the other managers see it."""

    async def start(self) -> None:
        """Begin taking part (campaign, poll); returns at once."""

    async def stop(self) -> None:
        """Stop taking part; signals loss first if leading and resigns cleanly."""

    def is_leader(self) -> bool:
        """True while this manager may act."""

    def token(self) -> Token | None:
        """The fencing token while leading, else None."""

    async def leader_info(self) -> Info:
        """Who leads now."""

    def changes(self) -> AsyncIterator[Change]:
        """The current state first, then every change; ends when :meth:`stop` is called."""

    def on_change(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``callback`` synchronously on every change; returns the unsubscribe."""


class Base:
    """What every backend shares: the flag, token, ``since``, the fan-out of changes, and
    one background task (:meth:`_run`) from :meth:`start` to :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._token: Token | None = None
        self._since: datetime | None = None
        self._callbacks: list[Callable[[Change], None]] = []
        self._queues: list[asyncio.Queue[Change | None]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self._name

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"leadership:{self._name}")

    async def stop(self) -> None:
        self._lose("stopped")  # first: nothing may act while we wind down
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._resign()
        self._end_changes()

    async def _run(self) -> None:
        """The backend's loop: campaign or poll until cancelled."""
        raise NotImplementedError

    async def _resign(self) -> None:
        """Give up what the backend holds, after the loss has been signalled."""

    def is_leader(self) -> bool:
        return self._token is not None and self._still_valid()

    def token(self) -> Token | None:
        return self._token if self.is_leader() else None

    def _still_valid(self) -> bool:
        """A backend whose leadership can lapse without notice (a lease) checks it here."""
        return True

    def on_change(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    async def changes(self) -> AsyncIterator[Change]:
        queue: asyncio.Queue[Change | None] = asyncio.Queue()
        self._queues.append(queue)
        try:
            yield Change(leading=self.is_leader(), token=self.token(), reason="current state")
            while (change := await queue.get()) is not None:
                yield change
        finally:
            self._queues.remove(queue)

    def _gain(self, token: Token, reason: str) -> None:
        if self._token is not None:
            return
        self._token, self._since = token, datetime.now(UTC)
        log.info("%s gained leadership: %s", self._name, reason)
        self._publish(Change(leading=True, token=token, reason=reason))

    def _lose(self, reason: str) -> None:
        if self._token is None:
            return
        self._token, self._since = None, None
        log.warning("%s lost leadership: %s", self._name, reason)
        self._publish(Change(leading=False, token=None, reason=reason))

    def _publish(self, change: Change) -> None:
        for callback in list(self._callbacks):
            try:
                callback(change)
            except Exception:
                # One bad listener must not keep the others from hearing of a loss.
                log.exception("leadership callback %r failed", callback)
        for queue in self._queues:
            queue.put_nowait(change)

    def _end_changes(self) -> None:
        for queue in self._queues:
            queue.put_nowait(None)
