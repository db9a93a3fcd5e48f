"""The file store's own behaviours: atomic writes, reload, keeping bad files aside."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from infrakit import errors
from infrakit.manager import leader, store, store_file
from infrakit.spi import group


def doc_with(size: int, *, groups: int = 1) -> store.Document:
    doc = store.Document()
    for n in range(groups):
        gid = group.ID(f"g{n}")
        doc = doc.with_group(group.Spec(id=gid, properties={"Size": size, "Pad": "x" * 2000}),
                             plugin_name="group")
    return doc


async def test_failed_write_keeps_the_old_document_and_leaves_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = store_file.FileStore(tmp_path)
    await s.save(doc_with(1))
    before = (tmp_path / "global.config").read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(store_file.os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        await s.save(doc_with(2))
    monkeypatch.undo()

    assert (tmp_path / "global.config").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["global.config", "history.json"]


async def test_readers_never_see_a_partial_document(tmp_path: Path) -> None:
    s = store_file.FileStore(tmp_path)
    await s.save(doc_with(0, groups=20))
    seen: list[str] = []
    stop = threading.Event()

    def read_all_the_time() -> None:
        while not stop.is_set():
            raw = (tmp_path / "global.config").read_bytes()
            try:
                store.Document.from_wire(json.loads(raw))
            except ValueError as e:
                seen.append(str(e))

    reader = threading.Thread(target=read_all_the_time)
    reader.start()
    try:
        for size in range(1, 30):
            await s.save(doc_with(size, groups=20))
    finally:
        stop.set()
        reader.join()
    assert seen == []


async def test_a_new_store_on_the_same_dir_sees_document_history_and_state(
        tmp_path: Path) -> None:
    first = store_file.FileStore(tmp_path)
    await first.save(doc_with(1))
    await first.save(doc_with(2))
    await first.save_state(group.ID("g0"), {"step": 4})

    again = store_file.FileStore(tmp_path)

    assert await again.load() == doc_with(2)
    assert [h.version for h in await again.history(group.ID("g0"))] == [1, 2]
    assert await again.load_state(group.ID("g0")) == {"step": 4}


async def test_forced_save_keeps_the_corrupt_file_aside(tmp_path: Path) -> None:
    (tmp_path / "global.config").write_bytes(b'{"Groups": {"g0": ')
    s = store_file.FileStore(tmp_path)

    await s.save(doc_with(1), force=True)

    aside = [p for p in tmp_path.iterdir() if p.name.startswith("global.config.corrupt-")]
    assert [p.read_bytes() for p in aside] == [b'{"Groups": {"g0": ']
    assert await s.load() == doc_with(1)


async def test_write_without_leadership_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    token: leader.Token | None = leader.Token(generation=1)
    s = store_file.FileStore(tmp_path, token=lambda: token)
    await s.save(doc_with(1))
    token = None

    with pytest.raises(errors.NotLeaderError):
        await s.save(doc_with(2))
    with pytest.raises(errors.NotLeaderError):
        await s.save_state(group.ID("g0"), {"step": 1})

    assert await s.load() == doc_with(1)
    assert not (tmp_path / "state.json").exists()


async def test_store_files_are_private_to_the_owner(tmp_path: Path) -> None:
    s = store_file.FileStore(tmp_path)
    await s.save(doc_with(1))
    assert os.stat(tmp_path / "global.config").st_mode & 0o077 == 0


@pytest.mark.parametrize("limit", [0, -3])
def test_history_limit_below_one_is_invalid(tmp_path: Path, limit: int) -> None:
    with pytest.raises(errors.InvalidError, match="history_limit"):
        store_file.FileStore(tmp_path, history_limit=limit)
