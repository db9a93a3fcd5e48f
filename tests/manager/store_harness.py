"""A store under test plus a way to write raw bytes where it keeps each thing, so the
same corruption cases run against every backend (used by ``conftest.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infrakit.manager import etcd, store, store_etcd, store_file
from infrakit.spi import group

RawWriter = Callable[[str, bytes, str], Any]


class Harness:
    """A store plus a way to write raw bytes where it keeps each thing."""

    def __init__(self, kind: str, store: store.Store, raw: RawWriter) -> None:
        self.kind = kind
        self.store = store
        self._raw = raw

    async def put_raw(self, what: str, data: bytes, gid: str = "web") -> str:
        """Write ``data`` as the document/history/state; returns where (path or key)."""
        result = self._raw(what, data, gid)
        if asyncio.iscoroutine(result):
            result = await result
        return str(result)


def file_raw(root: Path) -> RawWriter:
    names = {"doc": store_file.CONFIG, "history": store_file.HISTORY, "state": store_file.STATE}

    def put(what: str, data: bytes, gid: str) -> Path:
        path = root / names[what]
        root.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    return put


def etcd_raw(client: etcd.Client, s: store_etcd.EtcdStore) -> RawWriter:
    async def put(what: str, data: bytes, gid: str) -> str:
        key = {"doc": s.doc_key, "history": s.history_key(group.ID(gid)),
               "state": s.state_key(group.ID(gid))}[what]
        await client.put(key, data)
        return key

    return put
