"""Our etcd v3 client, over etcd's JSON gateway (``POST /v3/...``, etcd ≥ 3.4).

Used by the etcd store (:mod:`.store_etcd`) and etcd leadership (:mod:`.leader_etcd`).
We only need KV range/put/delete/txn, leases and a watch, all of which the gateway serves
as JSON; that is a few dozen lines over aiohttp instead of a gRPC stack. On the wire keys
and values are base64 and int64s are JSON strings; here they are ``str``/``bytes``/``int``.

Errors: a member that refuses or drops the connection → :class:`errors.Unavailable` (the
next endpoint is tried first); no answer in time → :class:`errors.CallTimeout`; etcd's own
errors are mapped from their gRPC code (see :data:`_BY_GRPC_CODE`).
"""

from __future__ import annotations

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
        reply = await self.call("/v3/kv/range", _range_body(key, prefix=prefix))
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
                  failure: Sequence[Op] = ()) -> TxnResult:
        """If every comparison holds run ``success``, else ``failure``; atomically."""
        reply = await self.call("/v3/kv/txn", {
            "compare": [c.to_json() for c in compare],
            "success": [op.to_json() for op in success],
            "failure": [op.to_json() for op in failure],
        })
        ranges = [[KeyValue.from_json(kv) for kv in r.get("response_range", {}).get("kvs", [])]
                  for r in reply.get("responses", [])]
        return TxnResult(succeeded=bool(reply.get("succeeded", False)),
                         revision=_revision(reply), ranges=ranges)

    # -- leases -----------------------------------------------------------------------------

    async def grant(self, ttl: int) -> Lease:
        """A new lease of ``ttl`` seconds."""
        reply = await self.call("/v3/lease/grant", {"TTL": str(ttl)})
        return Lease(id=int(reply["ID"]), ttl=int(reply.get("TTL", ttl)))

    async def keepalive(self, lease: int, *, timeout: float | None = None) -> int:
        """Refresh the lease once; returns its TTL now, 0 when the lease is gone."""
        reply = await self.call("/v3/lease/keepalive", {"ID": str(lease)}, timeout=timeout)
        result = reply.get("result", reply)
        return int(result.get("TTL", 0))

    async def revoke(self, lease: int) -> bool:
        """Revoke the lease (deleting its keys); False when it was already gone."""
        try:
            await self.call("/v3/lease/revoke", {"ID": str(lease)})
        except errors.NotFoundError:
            return False
        return True

    async def time_to_live(self, lease: int) -> int:
        """Seconds the lease has left; -1 when it is gone."""
        reply = await self.call("/v3/lease/timetolive", {"ID": str(lease)})
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

    def endpoint_order(self) -> list[int]:
        """Endpoint indexes to try, starting with the last one that answered."""
        n = len(self.endpoints)
        return [(self._current + i) % n for i in range(n)]

    def answered(self, index: int) -> None:
        self._current = index

    async def call(self, path: str, body: dict[str, Any], *,
                   timeout: float | None = None) -> dict[str, Any]:
        """POST one request; the decoded JSON answer, or a mapped error."""
        limit = aiohttp.ClientTimeout(total=timeout or self.timeout)
        refused: list[str] = []
        for index in self.endpoint_order():
            url = self.endpoints[index] + path
            try:
                async with self.session().post(url, json=body, timeout=limit) as resp:
                    text = await resp.text()
                    self.answered(index)
                    return _decode_reply(resp.status, text, url=url)
            except TimeoutError as e:
                raise errors.CallTimeout(
                    f"etcd at {url} did not answer within {timeout or self.timeout:g}s",
                    endpoint=url) from e
            except aiohttp.ClientError as e:
                refused.append(f"{url}: {e}")
        raise errors.Unavailable("etcd unreachable: " + "; ".join(refused),
                                 endpoints=self.endpoints)


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
        limit = aiohttp.ClientTimeout(total=None, sock_connect=self._client.timeout)
        failures: list[str] = []
        for index in self._client.endpoint_order():
            url = self._client.endpoints[index] + "/v3/watch"
            try:
                self._resp = await self._client.session().post(url, json=self._body,
                                                               timeout=limit)
            except (aiohttp.ClientError, TimeoutError) as e:
                failures.append(f"{url}: {e}")
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
