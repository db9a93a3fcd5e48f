"""Behaviours every store backend has (file and etcd, real files and a real etcd)."""

from __future__ import annotations

import json

import pytest
from store_harness import Harness

from infrakit import errors
from infrakit.manager import store
from infrakit.spi import group


def spec(gid: str, size: int = 3) -> group.Spec:
    return group.Spec(id=group.ID(gid), properties={"Allocation": {"Size": size}})


def doc_of(*specs: group.Spec, plugin_name: str = "group-stateless") -> store.Document:
    doc = store.Document()
    for s in specs:
        doc = doc.with_group(s, plugin_name=plugin_name)
    return doc


WEB = group.ID("web")


def test_document_adds_replaces_and_removes_groups() -> None:
    doc = doc_of(spec("web", 1), spec("db"))
    doc = doc.with_group(spec("web", 5), plugin_name="group-2")

    assert doc.group_spec(WEB) == spec("web", 5)
    assert doc.groups[WEB].plugin == "group-2"
    assert list(doc.without_group(WEB).groups) == ["db"]
    with pytest.raises(errors.NotFoundError, match="'web'"):
        doc.without_group(WEB).group_spec(WEB)


def test_document_reads_a_null_groups_map_from_go_as_empty() -> None:
    assert store.Document.from_wire({"Groups": None}) == store.Document()


async def test_missing_store_loads_as_empty_document(harness: Harness) -> None:
    assert await harness.store.load() == store.Document()
    assert await harness.store.history(WEB) == []
    assert await harness.store.load_state(WEB) is None


async def test_saved_document_loads_back_in_infrakit_shape(harness: Harness) -> None:
    doc = doc_of(spec("web"), spec("db", 1))
    await harness.store.save(doc)

    loaded = await harness.store.load()

    assert loaded == doc
    assert loaded.group_spec(WEB) == spec("web")
    assert loaded.to_wire() == {"Groups": {
        "web": {"Plugin": "group-stateless",
                "Properties": {"ID": "web", "Properties": {"Allocation": {"Size": 3}}}},
        "db": {"Plugin": "group-stateless",
               "Properties": {"ID": "db", "Properties": {"Allocation": {"Size": 1}}}},
    }}


async def test_history_keeps_the_last_n_commits_oldest_first(harness: Harness) -> None:
    for size in range(1, 6):
        await harness.store.save(doc_of(spec("web", size)))

    history = await harness.store.history(WEB)

    assert [h.version for h in history] == [3, 4, 5]
    assert [h.spec.properties["Properties"]["Allocation"]["Size"] for h in history] == [3, 4, 5]
    assert history[0].time <= history[1].time <= history[2].time


async def test_history_records_only_groups_that_changed(harness: Harness) -> None:
    await harness.store.save(doc_of(spec("web"), spec("db")))
    await harness.store.save(doc_of(spec("web"), spec("db", 2)))
    await harness.store.save(doc_of(spec("db", 2)))  # web freed: its history stays

    assert [h.version for h in await harness.store.history(WEB)] == [1]
    assert [h.version for h in await harness.store.history(group.ID("db"))] == [1, 2]


async def test_state_is_saved_per_group_and_cleared_with_none(harness: Harness) -> None:
    update = {"phase": "rolling", "done": ["i-1", "i-2"], "paused": False}
    await harness.store.save_state(WEB, update)
    await harness.store.save_state(group.ID("db"), {"phase": "idle"})

    assert await harness.store.load_state(WEB) == update
    await harness.store.save_state(WEB, None)
    assert await harness.store.load_state(WEB) is None
    assert await harness.store.load_state(group.ID("db")) == {"phase": "idle"}


async def test_every_state_loads_at_once_also_of_groups_out_of_the_document(
        harness: Harness) -> None:
    """A destroy's record outlives its group's entry: a take-over finds it."""
    assert await harness.store.load_states() == {}
    record = store.destroying(doc_of(spec("gone")).groups[group.ID("gone")])
    await harness.store.save(doc_of(spec("web")))
    await harness.store.save_state(WEB, {"phase": "idle"})
    await harness.store.save_state(group.ID("gone"), record)

    assert await harness.store.load_states() == {WEB: {"phase": "idle"}, "gone": record}
    assert store.destroying_entry(record) == doc_of(spec("gone")).groups[group.ID("gone")]
    assert store.destroying_entry({"phase": "idle"}) is None


async def test_state_that_json_cannot_hold_is_refused(harness: Harness) -> None:
    with pytest.raises(errors.InvalidError, match="state of group 'web'"):
        await harness.store.save_state(WEB, {"when": object()})


GOOD = json.dumps(doc_of(spec("web")).to_wire()).encode()

CORRUPT_DOCUMENTS = [
    pytest.param(GOOD[: len(GOOD) // 2], "truncated JSON", id="truncated"),
    pytest.param(b"", "truncated JSON", id="empty"),
    pytest.param(b"{Groups: nope}", "bad JSON", id="bad-json"),
    pytest.param(b"\xff\xfe{}", "not UTF-8", id="binary"),
    pytest.param(b"[]", "wrong shape", id="not-an-object"),
    pytest.param(b'{"Groups": {"web": {"Plugin": 5}}}', "Groups.web.Plugin", id="plugin-number"),
    pytest.param(b'{"Groups": {"web": {"Plugin": "g", "Properties": 7}}}',
                 "Groups.web.Properties is not a group spec", id="properties-not-spec"),
    pytest.param(b'{"Groups": {"web": {"Plugin": "g", "Properties": {"ID": "db"}}}}',
                 "expected 'web'", id="id-mismatch"),
]


@pytest.mark.parametrize(("raw", "problem"), CORRUPT_DOCUMENTS)
async def test_corrupt_document_is_named_and_last_good_kept(
        harness: Harness, raw: bytes, problem: str) -> None:
    good = doc_of(spec("web", 2))
    await harness.store.save(good)
    where = await harness.put_raw("doc", raw)

    with pytest.raises(errors.InvalidError, match=problem) as caught:
        await harness.store.load()

    assert where in caught.value.message
    assert where in caught.value.data["source"]
    assert harness.store.last_good == good


@pytest.mark.parametrize(("raw", "problem"), CORRUPT_DOCUMENTS[:5])
async def test_corrupt_document_is_not_overwritten_unless_forced(
        harness: Harness, raw: bytes, problem: str) -> None:
    await harness.put_raw("doc", raw)
    newer = doc_of(spec("web", 9))

    with pytest.raises(errors.InvalidError, match="refusing to overwrite"):
        await harness.store.save(newer)
    with pytest.raises(errors.InvalidError, match=problem):
        await harness.store.load()  # still the bad bytes: nothing was written

    await harness.store.save(newer, force=True)
    assert await harness.store.load() == newer


@pytest.mark.parametrize(("what", "raw", "read"), [
    ("history", b'[{"Version": 1, "Time": "yesterday"', "history"),
    ("history", b'{"web": "not a list"}', "history"),
    ("state", b"{oops", "state"),
])
async def test_corrupt_history_or_state_is_named_and_not_overwritten(
        harness: Harness, what: str, raw: bytes, read: str) -> None:
    if harness.kind == "etcd" and raw.startswith(b'{"web"'):
        raw = b'"not a list"'  # etcd keeps one key per group
    where = await harness.put_raw(what, raw)

    with pytest.raises(errors.InvalidError, match="corrupt store") as caught:
        if read == "history":
            await harness.store.history(WEB)
        else:
            await harness.store.load_state(WEB)
    assert where in caught.value.message

    with pytest.raises(errors.InvalidError, match="refusing to overwrite"):
        if what == "history":
            await harness.store.save(doc_of(spec("web")))
        else:
            await harness.store.save_state(WEB, {"phase": "idle"})
