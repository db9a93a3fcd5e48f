"""Calls a standby receives go to the leader; the leader answers calls forwarded to it.

:mod:`.serve` and :mod:`.embedded` wrap every method a manager serves with
:meth:`Forwarder.install`: while this manager leads, a call runs here; otherwise it is sent
to the leader (named by the leadership backend, found by name in the shared plugins dir,
else at the URL it published with its leadership: a leader on another host, reached over
TCP with mutual TLS) as ``Manager.Forward {Method, Params, Origin}``, and the leader's
answer (or error) is returned as is. The leader runs a forwarded call only while it still
leads, and never forwards it again, so a call makes at most one hop. Every hop has a
timeout.

Answered locally whoever leads: the handshake, ``Manager.IsLeader``,
``Manager.LeaderInfo`` and ``Metadata.*`` (they describe this manager). With no leader
known a call fails at once with :class:`errors.NotLeaderError` saying who was asked and
since when there is none.
"""

from __future__ import annotations

import asyncio
import pathlib
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from infrakit import errors
from infrakit.manager import leader, proxy
from infrakit.rpc import client as rpc_client
from infrakit.rpc import discovery, dispatch
from infrakit.spi.wire import Wire

METHOD = "Manager.Forward"
LOCAL = frozenset({"Handshake.Implements", "Plugin.Implements", "Handshake.Types",
                   "Manager.IsLeader", "Manager.LeaderInfo", "Metadata.List", "Metadata.Get"})
"""Methods every manager answers itself."""
DEFAULT_TIMEOUT = 30.0
"""Seconds a forwarded call may take (DestroyGroup drains members: it can be slow)."""
OWN_TURN = 3.0
"""Seconds to wait when the leadership backend already names this manager but it has not
noticed yet (the leader file was just written)."""


class ForwardRequest(Wire):
    """(ext) Params of ``Manager.Forward``: a call a standby passes to the leader."""

    method: str
    """The method the standby received, e.g. ``Group.CommitGroup``."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Its params, untouched."""
    origin: str = ""
    """The standby's name (for the leader's logs and errors)."""


class Forwarder:
    """``Forwarder(manager, plugins_dir=..., where="leader file /x", timeout=30)``."""

    def __init__(self, manager: proxy.Manager, *, plugins_dir: pathlib.Path | None = None,
                 where: str, timeout: float = DEFAULT_TIMEOUT, url: str = "") -> None:
        """``where`` says what the leadership backend is ("etcd key 'k' at URL"): errors
        name it as who was asked. ``url``: where this manager answers on TCP, if it does
        (told apart from a leader of the same name on another host by it)."""
        self.manager = manager
        self.where = where
        self.url = url
        self.timeout = timeout
        self._plugins = discovery.Plugins(plugins_dir, timeout=timeout)
        self._no_leader_since: datetime | None = None

    def install(self, methods: dispatch.Methods) -> dispatch.Methods:
        """``methods`` with every non-local one forwarded while this manager does not
        lead, plus ``Manager.Forward``."""
        table: dispatch.Methods = {}
        for name, handler in methods.items():
            table[name] = handler if name in LOCAL else self._wrap(name, handler)
        table[METHOD] = self._accepting(methods)
        return table

    async def close(self) -> None:
        await self._plugins.close()

    def _leads(self) -> bool:
        return self.manager.leadership.is_leader()

    def _is_me(self, info: leader.Info) -> bool:
        """The leader named is this manager (by URL when both have one: managers on
        different hosts may share a name)."""
        if info.url and self.url:
            return info.url == self.url
        return info.name == self.manager.name

    def _wrap(self, method: str, inner: dispatch.Handler) -> dispatch.Handler:
        async def handler(params: dict[str, Any]) -> Any:
            if self._leads():
                try:
                    return await inner(params)
                except errors.NotLeaderError:
                    if self._leads():
                        raise
                    # Leadership moved before this manager acted (after a change is saved
                    # the manager answers otherwise): the new leader takes the call.
            return await self.forward(method, params, inner)
        return handler

    def _accepting(self, methods: dispatch.Methods) -> dispatch.Handler:
        async def accept(params: dict[str, Any]) -> Any:
            req = dispatch.parse(ForwardRequest, params, method=METHOD)
            inner = methods.get(req.method)
            if inner is None or req.method in LOCAL:
                raise errors.InvalidError(f"{METHOD}: {req.method!r} cannot be forwarded",
                                          field="Method")
            if self._leads():
                return await inner(req.params)
            if self._is_me(await self._leader()):
                # Named the leader already (the leader file was just written): take it
                # as soon as this manager notices.
                return await self._own_turn(req.method, req.params, inner)
            raise errors.NotLeaderError(
                f"{req.method} was forwarded by {req.origin or 'a standby'} to manager "
                f"{self.manager.name!r}, which does not lead (leadership is moving); "
                "retry in a moment", manager=self.manager.name)
        return accept

    async def forward(self, method: str, params: dict[str, Any],
                      inner: dispatch.Handler) -> Any:
        """Send ``method`` to the leader and return its answer."""
        info = await self._leader()
        if not info.name:
            raise self._no_leader(method, info)
        self._no_leader_since = None
        if self._is_me(info):
            return await self._own_turn(method, params, inner)
        client = self._reach(method, info)
        request = ForwardRequest(method=method, params=params, origin=self.manager.name)
        try:
            raw, status = await client.call_raw(METHOD, request.to_wire(), timeout=self.timeout)
        except errors.CallTimeout:
            raise errors.CallTimeout(
                f"the leader {info.name!r} did not answer {method} (forwarded by "
                f"{self.manager.name!r}) within {self.timeout:g}s", leader=info.name) from None
        except errors.Unavailable as e:
            wait = info.ttl if info.ttl > 0 else 1.0
            raise errors.Unavailable(
                f"cannot forward {method} to the leader {info.name!r}: {e.message}"
                + (f"; its lease ends within {info.ttl:g}s, then a standby takes over"
                   if info.ttl > 0 else ""), delay=wait, leader=info.name) from None
        # Errors the leader answered with are raised here as the same types.
        return rpc_client.decode(raw, status=status, plugin=info.name)

    def _reach(self, method: str, info: leader.Info) -> rpc_client.Client:
        """The leader's local socket, else the URL it published."""
        if info.name != self.manager.name:
            try:
                return self._plugins.client(info.name)
            except errors.PluginNotFound:
                if not info.url:
                    raise errors.NotLeaderError(
                        f"cannot forward {method}: the leader named by {self.where}, "
                        f"{info.name!r}, has no socket in {self._plugins.directory} and "
                        "published no URL (start it with --listen)",
                        manager=self.manager.name, leader=info.name) from None
        if not info.url:
            raise errors.NotLeaderError(
                f"cannot forward {method}: the leader named by {self.where}, {info.name!r}, "
                "shares this manager's name and published no URL (give each manager "
                "--listen, or its own --name)", manager=self.manager.name, leader=info.name)
        return self._plugins.client(info.url)

    async def _leader(self) -> leader.Info:
        try:
            async with asyncio.timeout(self.timeout):
                return await self.manager.leader_info()
        except TimeoutError:
            raise errors.CallTimeout(f"cannot tell who leads: {self.where} did not answer "
                                     f"within {self.timeout:g}s") from None

    def _no_leader(self, method: str, info: leader.Info) -> errors.NotLeaderError:
        since = info.since or self._no_leader_since or datetime.now(UTC)
        self._no_leader_since = since
        return errors.NotLeaderError(
            f"no leader: {method} reached manager {self.manager.name!r}, which does not lead, "
            f"and {self.where} names no leader (none since {since:%Y-%m-%dT%H:%M:%SZ}); "
            "retry once one is elected", manager=self.manager.name, where=self.where,
            since=since.isoformat())

    async def _own_turn(self, method: str, params: dict[str, Any],
                        inner: dispatch.Handler) -> Any:
        deadline = time.monotonic() + min(OWN_TURN, self.timeout)
        while not self._leads():
            if time.monotonic() >= deadline:
                raise errors.NotLeaderError(
                    f"{self.where} names manager {self.manager.name!r}, which has not taken "
                    f"leadership yet; retry {method} in a moment", manager=self.manager.name)
            await asyncio.sleep(0.05)
        return await inner(params)
