"""Our etcd v3 client, over etcd's JSON gateway (``POST /v3/...``, etcd ≥ 3.4).

Used by the etcd store (:mod:`.store_etcd`) and etcd leadership (:mod:`.leader_etcd`).
We only need KV range/put/delete/txn, leases and a watch, all of which the gateway serves
as JSON; that is a few dozen lines over aiohttp instead of a gRPC stack. On the wire keys
and values are base64 and int64s are JSON strings; here they are ``str``/``bytes``/``int``.

Several endpoints (members of one cluster): a call starts at the member that last
answered and moves on when that one fails. ``timeout`` bounds each attempt, so a hung
member (SIGSTOP, a partition) costs one timeout, not the call. Whether a failed attempt
may be sent again to another member depends on whether the member may have applied it:

- refused connection: it never saw the request; always try the next member.
- timeout, connection dropped after sending, or etcd's own "unavailable"/"deadline"
  answer: it may or may not have applied it; try the next member only when the request
  is *idempotent* (applying it twice is applying it once), else raise.

Idempotent here: range, read-only txns, lease keep-alive, time-to-live and revoke (a
repeat finds the lease gone, so :meth:`Client.revoke` may say False for a lease it did
revoke), watch creation, and lease grant (a grant applied twice leaves an extra lease that
holds no key and expires after its TTL). Not idempotent: put and delete (a repeat can
overwrite a newer value or report 0 deleted), and txns that write, unless the caller says
``idempotent=True`` because its compares make a second application fail *and* it
recognises its own first one in the failure answer (the election's ``CREATE == 0`` txn,
the store's fenced writes).

Errors: every member refused or dropped → :class:`errors.Unavailable`; the last attempt
timed out → :class:`errors.CallTimeout`; etcd's own errors are mapped from their gRPC code
(see :data:`_BY_GRPC_CODE`).
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import aiohttp

from infrakit import errors

Target = Literal["CREATE", "MOD", "VERSION", "LEASE", "VALUE"]
Result = Literal["EQUAL", "NOT_EQUAL", "GREATER", "LESS"]

# gRPC status codes etcd answers with, and what they mean to us.
_BY_GRPC_CODE: dict[int, type[errors.InfrakitError]] = {
    3: errors.InvalidError,  # INVALID_ARGUMENT
    4: errors.CallTimeout,  # DEADLINE_EXCEEDED
    5: errors.NotFoundError,  # NOT_FOUND (e.g. "requested lease not found")
    8: errors.TemporaryError,  # RESOURCE_EXHAUSTED
    9: errors.ConflictError,  # FAILED_PRECONDITION
    14: errors.Unavailable,  # UNAVAILABLE (no leader, member stopping)
}

# Answers after which the request may or may not have been applied ("request timed out",
# "leader changed"): another member is tried for idempotent requests only.
_AMBIGUOUS_GRPC_CODES = frozenset({4, 14})


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def prefix_end(prefix: str) -> bytes:
    """The ``range_end`` that makes a range cover every key starting with ``prefix``."""
    raw = bytearray(prefix.encode())
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return b"\0"  # every key
    raw[-1] += 1
    return bytes(raw)


@dataclass(frozen=True)
class KeyValue:
    """One key as etcd holds it."""

    key: str
    value: bytes
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    lease: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyValue:
        return cls(
            key=_unb64(data.get("key")).decode(),
            value=_unb64(data.get("value")),
            create_revision=int(data.get("create_revision", 0)),
            mod_revision=int(data.get("mod_revision", 0)),
            version=int(data.get("version", 0)),
            lease=int(data.get("lease", 0)),
        )


@dataclass(frozen=True)
class Event:
    """A change seen by a watch: ``PUT`` (``kv`` is the new value) or ``DELETE``."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    revision: int
    """The store revision of the response that carried the event."""


@dataclass(frozen=True)
class Lease:
    id: int
    ttl: int
    """Seconds granted (etcd may raise a small TTL to its minimum)."""


@dataclass(frozen=True)
class Compare:
    """One condition of a transaction: ``target(key) <result> value``.

    A key that does not exist compares as 0 for CREATE, MOD, VERSION and LEASE.
    """

    key: str
    target: Target
    value: int | bytes
    result: Result = "EQUAL"

    def to_json(self) -> dict[str, Any]:
        field_name = {"CREATE": "create_revision", "MOD": "mod_revision",
                      "VERSION": "version", "LEASE": "lease", "VALUE": "value"}[self.target]
        value: Any = _b64(self.value) if isinstance(self.value, bytes) else str(self.value)
        return {"key": _b64(self.key), "target": self.target, "result": self.result,
                field_name: value}


@dataclass(frozen=True)
class Put:
    key: str
    value: bytes
    lease: int = 0

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"key": _b64(self.key), "value": _b64(self.value)}
        if self.lease:
            body["lease"] = str(self.lease)
        return {"request_put": body}


@dataclass(frozen=True)
class Get:
    key: str
    prefix: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"request_range": _range_body(self.key, prefix=self.prefix)}


@dataclass(frozen=True)
class Delete:
    key: str
    prefix: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"request_delete_range": _range_body(self.key, prefix=self.prefix)}


Op = Put | Get | Delete


def _range_body(key: str, *, prefix: bool) -> dict[str, Any]:
    body = {"key": _b64(key)}
    if prefix:
        body["range_end"] = _b64(prefix_end(key))
    return body


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    """True when every comparison held, so the ``success`` ops ran."""
    revision: int
    """The store revision after the transaction."""
    ranges: list[list[KeyValue]] = field(default_factory=list)
    """The keys each op returned, in op order (``[]`` for a put or delete)."""


class Client:
    """An etcd v3 client over the JSON gateway; one aiohttp session, several endpoints.

    ``Client(["http://127.0.0.1:2379"], timeout=2.0)``; use ``async with`` or :meth:`close`.
    """

    def __init__(self, endpoints: str | Sequence[str], *, timeout: float = 2.0) -> None:
        urls = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        if not urls:
            raise errors.InvalidError("etcd endpoints: expected at least one URL")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise errors.InvalidError(
                    f"etcd endpoint {url!r}: expected an http:// or https:// URL", endpoint=url)
        self.endpoints = [u.rstrip("/") for u in urls]
        self.timeout = timeout
        self._current = 0
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- KV ---------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        """The key, or None when it does not exist."""
        found = await self.get_prefix(key, prefix=False)
        return found[0] if found else None

    async def get_prefix(self, key: str, *, prefix: bool = True) -> list[KeyValue]:
        """Every key starting with ``key`` (sorted by key)."""
        reply = await self.call("/v3/kv/range", _range_body(key, prefix=prefix),
                                idempotent=True)
        return [KeyValue.from_json(kv) for kv in reply.get("kvs", [])]

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Set the key; returns the new store revision."""
        reply = await self.call("/v3/kv/put", Put(key, value, lease).to_json()["request_put"])
        return _revision(reply)

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        """Delete the key (or every key under it); returns how many were deleted."""
        reply = await self.call("/v3/kv/deleterange", _range_body(key, prefix=prefix))
        return int(reply.get("deleted", 0))

    async def txn(self, compare: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = (), *, idempotent: bool = False) -> TxnResult:
        """If every comparison holds run ``success``, else ``failure``; atomically.

        A txn that only reads may always be sent again to another member. One that writes
        only with ``idempotent=True``: say so when ``compare`` makes a second application
        fail and you recognise the first one in the answer (see the module docstring).
        """
        read_only = all(isinstance(op, Get) for op in (*success, *failure))
        reply = await self.call("/v3/kv/txn", {
            "compare": [c.to_json() for c in compare],
            "success": [op.to_json() for op in success],
            "failure": [op.to_json() for op in failure],
        }, idempotent=idempotent or read_only)
        ranges = [[KeyValue.from_json(kv) for kv in r.get("response_range", {}).get("kvs", [])]
                  for r in reply.get("responses", [])]
        return TxnResult(succeeded=bool(reply.get("succeeded", False)),
                         revision=_revision(reply), ranges=ranges)

    # -- leases -----------------------------------------------------------------------------

    async def grant(self, ttl: int) -> Lease:
        """A new lease of ``ttl`` seconds."""
        # Idempotent enough: a grant applied twice leaves a keyless lease that expires.
        reply = await self.call("/v3/lease/grant", {"TTL": str(ttl)}, idempotent=True)
        return Lease(id=int(reply["ID"]), ttl=int(reply.get("TTL", ttl)))

    async def keepalive(self, lease: int, *, timeout: float | None = None) -> int:
        """Refresh the lease once; returns its TTL now, 0 when the lease is gone.
        ``timeout`` bounds each member's attempt (default: the client's)."""
        reply = await self.call("/v3/lease/keepalive", {"ID": str(lease)}, timeout=timeout,
                                idempotent=True)
        result = reply.get("result", reply)
        return int(result.get("TTL", 0))

    async def revoke(self, lease: int) -> bool:
        """Revoke the lease (deleting its keys); False when it was already gone."""
        try:
            await self.call("/v3/lease/revoke", {"ID": str(lease)}, idempotent=True)
        except errors.NotFoundError:
            return False
        return True

    async def time_to_live(self, lease: int) -> int:
        """Seconds the lease has left; -1 when it is gone."""
        reply = await self.call("/v3/lease/timetolive", {"ID": str(lease)}, idempotent=True)
        return int(reply.get("TTL", -1))

    # -- watch ------------------------------------------------------------------------------

    def watch(self, key: str, *, start_revision: int = 0, prefix: bool = False) -> Watch:
        """``async with client.watch(key, start_revision=r) as events: async for e in events``."""
        body: dict[str, Any] = _range_body(key, prefix=prefix)
        if start_revision:
            body["start_revision"] = str(start_revision)
        return Watch(self, {"create_request": body})

    # -- transport --------------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    @property
    def current_endpoint(self) -> str:
        """The endpoint the next call starts at: the last one that answered."""
        return self.endpoints[self._current]

    def endpoint_order(self) -> list[int]:
        """Endpoint indexes to try, starting with the last one that answered."""
        n = len(self.endpoints)
        return [(self._current + i) % n for i in range(n)]

    def answered(self, index: int) -> None:
        """Endpoint ``index`` works: start there next time."""
        self._current = index

    def failed(self, index: int) -> None:
        """Endpoint ``index`` failed: calls starting from now begin at the next one."""
        if self._current == index:
            self._current = (index + 1) % len(self.endpoints)

    async def call(self, path: str, body: dict[str, Any], *, idempotent: bool = False,
                   timeout: float | None = None) -> dict[str, Any]:
        """POST one request; the decoded JSON answer, or a mapped error.

        Tries each endpoint in :meth:`endpoint_order`, each for at most ``timeout`` seconds
        (default: the client's). A refused connection always moves on; a failure after
        which the member may have applied the request moves on only when ``idempotent``.
        """
        limit = timeout or self.timeout
        failures: list[errors.TemporaryError] = []
        for index in self.endpoint_order():
            try:
                return await self._attempt(index, path, body, timeout=limit)
            except _Refused as e:
                failures.append(e)
            except errors.TemporaryError as e:
                if not idempotent:
                    raise
                failures.append(e)
        cls = errors.CallTimeout if isinstance(failures[-1], errors.CallTimeout) \
            else errors.Unavailable
        raise cls("etcd unreachable: " + "; ".join(e.message for e in failures),
                  endpoints=self.endpoints)

    async def _attempt(self, index: int, path: str, body: dict[str, Any], *,
                       timeout: float) -> dict[str, Any]:
        """One request to one endpoint. Raises :class:`_Refused` when the member cannot
        have seen it, another :class:`errors.TemporaryError` when it may have applied it."""
        url = self.endpoints[index] + path
        try:
            async with self.session().post(url, json=body,
                                           timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                status, text = resp.status, await resp.text()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
            self.failed(index)
            raise _Refused(f"{url}: {e}", endpoint=url) from e
        except TimeoutError as e:
            self.failed(index)
            raise errors.CallTimeout(
                f"etcd at {url} did not answer within {timeout:g}s (the request may or may "
                f"not have been applied)", endpoint=url) from e
        except aiohttp.ClientError as e:
            self.failed(index)
            raise errors.Unavailable(
                f"etcd at {url} dropped the connection (the request may or may not have "
                f"been applied): {e}", endpoint=url) from e
        try:
            reply = _decode_reply(status, text, url=url)
        except errors.InfrakitError as e:
            if e.data.get("grpc_code") in _AMBIGUOUS_GRPC_CODES:
                self.failed(index)
            else:
                self.answered(index)  # a member that answers a plain error works
            raise
        self.answered(index)
        return reply


class _Refused(errors.Unavailable):
    """The member never saw the request (connection refused or not made in time)."""


def _revision(reply: dict[str, Any]) -> int:
    return int(reply.get("header", {}).get("revision", 0))


def _decode_reply(status: int, text: str, *, url: str) -> dict[str, Any]:
    try:
        data = json.JSONDecoder().raw_decode(text.lstrip())[0] if text.strip() else {}
    except ValueError as e:
        raise errors.ProtocolError(f"etcd at {url} answered {status} with non-JSON: "
                                   f"{text[:200]!r}") from e
    if not isinstance(data, dict):
        raise errors.ProtocolError(f"etcd at {url} answered a non-object: {text[:200]!r}")
    # Streaming endpoints (keepalive, watch) wrap errors as {"error": {...}}.
    error = data.get("error")
    if isinstance(error, dict):
        data = error
    if status != 200 or data.get("code"):
        raise _error_of(data, url=url, status=status)
    return data


def _error_of(data: dict[str, Any], *, url: str, status: int) -> errors.InfrakitError:
    code = int(data.get("code", 0) or 0)
    message = str(data.get("message") or data.get("error") or f"HTTP {status}")
    cls = _BY_GRPC_CODE.get(code, errors.RemoteError)
    return cls(f"etcd at {url}: {message}", endpoint=url, grpc_code=code)


class Watch:
    """A watch stream on one key (or prefix); an async context manager yielding an iterator.

    The iterator ends with :class:`errors.Unavailable` when the stream breaks, and with
    :class:`errors.ConflictError` when the start revision was compacted away.
    """

    def __init__(self, client: Client, body: dict[str, Any]) -> None:
        self._client = client
        self._body = body
        self._resp: aiohttp.ClientResponse | None = None
        self._buffer = ""
        self._utf8 = codecs.getincrementaldecoder("utf-8")()

    async def __aenter__(self) -> AsyncIterator[Event]:
        # Only the headers are bounded: a watch may then stay quiet for as long as it likes.
        # A hung member accepts the connection (the kernel does) but never answers them.
        limit = aiohttp.ClientTimeout(total=None, sock_connect=self._client.timeout)
        failures: list[str] = []
        for index in self._client.endpoint_order():
            url = self._client.endpoints[index] + "/v3/watch"
            try:
                async with asyncio.timeout(self._client.timeout):
                    self._resp = await self._client.session().post(url, json=self._body,
                                                                   timeout=limit)
            except (aiohttp.ClientError, TimeoutError) as e:
                self._client.failed(index)
                failures.append(f"{url}: {str(e) or type(e).__name__}")
                continue
            self._client.answered(index)
            if self._resp.status != 200:
                text = await self._resp.text()
                await self.__aexit__(None, None, None)
                _decode_reply(self._resp.status, text, url=url)
            return self._events()
        raise errors.Unavailable("etcd unreachable: " + "; ".join(failures))

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._resp is not None:
            self._resp.close()

    async def _events(self) -> AsyncIterator[Event]:
        while True:
            result = await self._next_result()
            if result.get("canceled"):
                compacted = int(result.get("compact_revision", 0))
                reason = result.get("cancel_reason") or f"compacted at revision {compacted}"
                raise errors.ConflictError(f"etcd watch canceled: {reason}",
                                           compact_revision=compacted)
            revision = _revision(result)
            for raw in result.get("events", []):
                kind: Literal["PUT", "DELETE"] = (
                    "DELETE" if raw.get("type") == "DELETE" else "PUT")
                yield Event(type=kind, kv=KeyValue.from_json(raw.get("kv", {})),
                            revision=revision)

    async def _next_result(self) -> dict[str, Any]:
        assert self._resp is not None
        decoder = json.JSONDecoder()
        while True:
            text = self._buffer.lstrip()
            if text:
                try:
                    obj, end = decoder.raw_decode(text)
                except ValueError:
                    pass  # an incomplete object: read more
                else:
                    self._buffer = text[end:]
                    if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
                        raise _error_of(obj["error"], url=str(self._resp.url), status=200)
                    result = obj.get("result", {}) if isinstance(obj, dict) else {}
                    return result if isinstance(result, dict) else {}
            try:
                chunk = await self._resp.content.readany()
            except aiohttp.ClientError as e:
                raise errors.Unavailable(f"etcd watch stream broke: {e}") from e
            if not chunk:
                raise errors.Unavailable(f"etcd watch stream at {self._resp.url} ended")
            self._buffer += self._utf8.decode(chunk)
