"""The instance-file plugin, called in-process, against a real directory."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import re
import stat
import threading
from typing import Any

import pytest

from infrakit import errors
from infrakit.plugins.instance import file
from infrakit.spi import instance

WEB = {"infrakit.group": "workers", "tier": "web"}


def spec(tags: dict[str, str] | None = None, **fields: Any) -> instance.Spec:
    return instance.Spec(tags=WEB if tags is None else tags, init="echo hello",
                         properties={"Note": "v1"}, **fields)


def ids(descriptions: list[instance.Description]) -> list[str]:
    return [description.id for description in descriptions]


def test_provision_writes_one_file_named_by_an_original_style_id(plugin: file.Plugin) -> None:
    iid = plugin.provision(spec(logical_id=instance.LogicalID("db-1")))

    assert re.fullmatch(r"instance-\d{1,19}", iid)
    record = json.loads((plugin.directory / iid).read_text())
    assert record == {
        "ID": iid, "LogicalID": "db-1", "Tags": WEB,
        "Spec": {"Properties": {"Note": "v1"}, "Tags": WEB, "Init": "echo hello",
                 "LogicalID": "db-1", "Attachments": None},
    }
    assert [name for name in os.listdir(plugin.directory) if name.startswith(".")] == []


def test_missing_directory_is_created_private(tmp_path: pathlib.Path) -> None:
    file.Plugin(tmp_path / "a" / "b").close()

    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["a", "b", "c"]),
        ({"infrakit.group": "workers"}, ["a", "b"]),
        ({"infrakit.group": "workers", "tier": "web"}, ["a"]),
        ({"tier": "web"}, ["a", "c"]),
        ({"tier": "db", "infrakit.group": "workers"}, ["b"]),
        ({"infrakit.group": "nobody"}, []),
    ],
)
def test_describe_matches_all_given_tags(
    plugin: file.Plugin, query: dict[str, str], expected: list[str]
) -> None:
    made = {
        "a": plugin.provision(spec({"infrakit.group": "workers", "tier": "web"})),
        "b": plugin.provision(spec({"infrakit.group": "workers", "tier": "db"})),
        "c": plugin.provision(spec({"infrakit.group": "others", "tier": "web"})),
    }
    names = {iid: name for name, iid in made.items()}

    found = plugin.describe(query)

    assert sorted(names[iid] for iid in ids(found)) == expected
    assert ids(found) == sorted(ids(found))


def test_properties_are_the_provisioned_spec_and_only_when_asked(plugin: file.Plugin) -> None:
    iid = plugin.provision(spec())

    [plain] = plugin.describe({})
    [detailed] = plugin.describe({}, properties=True)

    assert plain.properties is None
    assert "Properties" not in plain.to_wire()
    assert detailed.id == iid
    assert detailed.properties["Properties"] == {"Note": "v1"}
    assert detailed.properties["Init"] == "echo hello"


@pytest.mark.parametrize("properties", [None, {"Note": "v1"}, [1, 2], "text", 3, True])
def test_any_json_properties_validate_and_provision(plugin: file.Plugin, properties: Any) -> None:
    plugin.validate(properties)
    iid = plugin.provision(instance.Spec(properties=properties))

    [detailed] = plugin.describe({}, properties=True)
    assert detailed.id == iid
    assert detailed.properties["Properties"] == properties


def test_label_merges_tags_and_keeps_the_spec(plugin: file.Plugin) -> None:
    iid = plugin.provision(spec({"infrakit.config_sha": "bootstrap", "tier": "web"}))

    plugin.label(iid, {"infrakit.config_sha": "abc", "infrakit.group": "workers"})

    [found] = plugin.describe({"infrakit.group": "workers"})
    assert found.tags == {"infrakit.config_sha": "abc", "infrakit.group": "workers", "tier": "web"}
    record = json.loads((plugin.directory / iid).read_text())
    assert record["Spec"]["Tags"] == {"infrakit.config_sha": "bootstrap", "tier": "web"}
    assert [name for name in os.listdir(plugin.directory) if name.startswith(".")] == []


def test_destroy_removes_the_instance(plugin: file.Plugin) -> None:
    keep = plugin.provision(spec())
    gone = plugin.provision(spec())

    plugin.destroy(gone)

    assert ids(plugin.describe({})) == [keep]
    assert not (plugin.directory / gone).exists()


@pytest.mark.parametrize("verb", ["label", "destroy"])
def test_unknown_instance_is_not_found(plugin: file.Plugin, verb: str) -> None:
    with pytest.raises(errors.NotFoundError, match="instance-42"):
        if verb == "label":
            plugin.label(instance.ID("instance-42"), {"a": "b"})
        else:
            plugin.destroy(instance.ID("instance-42"))


@pytest.mark.parametrize("verb", ["label", "destroy"])
def test_a_foreign_file_is_no_instance_and_is_left_alone(plugin: file.Plugin, verb: str) -> None:
    (plugin.directory / "notes.txt").write_text("my notes")

    with pytest.raises(errors.NotFoundError, match=r"notes\.txt.*not JSON"):
        if verb == "label":
            plugin.label(instance.ID("notes.txt"), {"a": "b"})
        else:
            plugin.destroy(instance.ID("notes.txt"))
    assert (plugin.directory / "notes.txt").read_text() == "my notes"


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", ".hidden", "x\0y"])
def test_an_id_that_is_a_path_is_invalid(plugin: file.Plugin, bad: str) -> None:
    with pytest.raises(errors.InvalidError, match="Instance"):
        plugin.destroy(instance.ID(bad))


def test_a_file_deleted_behind_its_back_is_gone_from_the_next_describe(
    plugin: file.Plugin,
) -> None:
    first, second = plugin.provision(spec()), plugin.provision(spec())
    assert len(plugin.describe({})) == 2

    (plugin.directory / first).unlink()

    assert ids(plugin.describe({})) == [second]


def test_a_file_added_behind_its_back_shows_in_the_next_describe(plugin: file.Plugin) -> None:
    assert plugin.describe({}) == []
    record = {"ID": "instance-7", "LogicalID": None, "Tags": WEB, "Spec": {}}
    (plugin.directory / "instance-7").write_text(json.dumps(record))

    assert ids(plugin.describe(WEB)) == ["instance-7"]


def test_a_file_edited_in_place_shows_its_new_tags(plugin: file.Plugin) -> None:
    iid = plugin.provision(spec())
    plugin.describe({})
    path = plugin.directory / iid
    record = json.loads(path.read_text())
    record["Tags"]["tier"] = "wab"  # same size: only the content changes
    with open(path, "r+") as handle:
        handle.write(json.dumps(record, indent=2))
    # As a person's edit would be, later than the write it replaces (the scan relies on mtime,
    # and a filesystem with coarse timestamps could otherwise give both writes the same one).
    later = path.stat().st_mtime_ns + 10_000_000
    os.utime(path, ns=(later, later))

    [found] = plugin.describe({})
    assert found.tags["tier"] == "wab"


def test_a_file_of_the_original_go_plugin_is_read(plugin: file.Plugin) -> None:
    # What InfraKit's plugin writes: json.MarshalIndent(fileInstance, "", "").
    text = ('{\n"ID": "instance-5577006791947779410",\n"LogicalID": null,\n"Tags": {\n'
            '"infrakit.group": "workers"\n},\n"Spec": {\n"Properties": {\n"Note": "v1"\n},\n'
            '"Tags": {\n"infrakit.group": "workers"\n},\n"Init": "",\n"LogicalID": null,\n'
            '"Attachments": null\n}\n}')
    (plugin.directory / "instance-5577006791947779410").write_text(text)

    [found] = plugin.describe({"infrakit.group": "workers"})
    assert found.id == "instance-5577006791947779410"
    plugin.label(found.id, {"tier": "web"})
    assert plugin.describe({"tier": "web"}) == [
        found.model_copy(update={"tags": {"infrakit.group": "workers", "tier": "web"}})
    ]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("instance-1", "{not json"),
        ("instance-2", "[1, 2]"),
        ("instance-3", '{"ID": "instance-other", "Tags": {}}'),
        ("instance-4", '{"ID": "instance-4", "Tags": {"a": 1}}'),
        ("instance-5", '{"ID": "instance-5", "LogicalID": 5}'),
        ("notes.txt", "hello"),
        ("instance-6", b"\xff\xfe"),
    ],
)
def test_a_corrupt_or_foreign_file_is_skipped_with_one_warning(
    plugin: file.Plugin, caplog: pytest.LogCaptureFixture, name: str, content: str | bytes
) -> None:
    good = plugin.provision(spec())
    path = plugin.directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)

    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert ids(plugin.describe({})) == [good]

    warnings = [record for record in caplog.records if name in record.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


def test_a_corrupt_file_is_warned_about_again_after_it_changes(
    plugin: file.Plugin, caplog: pytest.LogCaptureFixture
) -> None:
    path = plugin.directory / "instance-9"
    with caplog.at_level(logging.WARNING):
        path.write_text("{broken")
        plugin.describe({})
        path.write_text("{broken again")
        plugin.describe({})
        plugin.describe({})

    assert len([r for r in caplog.records if "instance-9" in r.getMessage()]) == 2


def test_a_corrupt_file_that_is_repaired_shows_up(plugin: file.Plugin) -> None:
    path = plugin.directory / "instance-9"
    path.write_text("{broken")
    assert plugin.describe({}) == []

    path.write_text(json.dumps({"ID": "instance-9", "Tags": WEB}))

    assert ids(plugin.describe({})) == ["instance-9"]


def test_subdirectories_and_temporary_files_are_ignored(plugin: file.Plugin) -> None:
    iid = plugin.provision(spec())
    (plugin.directory / "subdir").mkdir()
    (plugin.directory / ".instance-1.tmp").write_text("{")

    assert ids(plugin.describe({})) == [iid]


async def test_describe_instances_over_rpc_sees_every_change_at_once(plugin: file.Plugin) -> None:
    # The coroutine the server calls: answered on the loop while nothing changed.
    first = plugin.provision(spec())
    assert ids(await plugin.describe_instances(WEB)) == [first]
    assert ids(await plugin.describe_instances(WEB)) == [first]

    second = plugin.provision(spec())
    assert ids(await plugin.describe_instances(WEB)) == sorted([first, second])
    (plugin.directory / first).unlink()
    assert ids(await plugin.describe_instances(WEB)) == [second]
    plugin.label(second, {"tier": "db"})
    assert await plugin.describe_instances(WEB) == []
    [detailed] = await plugin.describe_instances({}, properties=True)
    assert detailed.properties["Init"] == "echo hello"


def test_a_new_plugin_on_the_same_directory_sees_existing_instances(
    plugin: file.Plugin,
) -> None:
    iid = plugin.provision(spec())

    again = file.Plugin(plugin.directory)
    try:
        assert ids(again.describe(WEB)) == [iid]
    finally:
        again.close()


def test_a_returned_list_can_be_changed_without_touching_the_next_answer(
    plugin: file.Plugin,
) -> None:
    plugin.provision(spec())
    plugin.describe({}).clear()

    assert len(plugin.describe({})) == 1


def test_concurrent_calls_from_threads_are_consistent(plugin: file.Plugin) -> None:
    made: list[str] = []
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(20):
                iid = plugin.provision(spec())
                plugin.label(iid, {"done": "yes"})
                plugin.describe({"done": "yes"})
                made.append(iid)
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert len(set(made)) == 160
    assert sorted(ids(plugin.describe({"done": "yes"}))) == sorted(made)


def test_run_serves_the_plugin_on_the_named_socket(
    served: list[tuple[str, dict[str, Any]]], tmp_path: pathlib.Path
) -> None:
    file.run(["--name", "files", "--dir", str(tmp_path / "d"), "--log", "5"])

    [(name, kwargs)] = served
    assert name == "files"
    assert isinstance(kwargs["instance"], file.Plugin)
    assert kwargs["instance"].directory == tmp_path / "d"
    kwargs["instance"].close()


def test_run_defaults_the_directory_under_infrakit_home(
    served: list[tuple[str, dict[str, Any]]], tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INFRAKIT_HOME", str(tmp_path))

    file.run([])

    [(name, kwargs)] = served
    assert name == "instance-file"
    assert kwargs["instance"].directory == tmp_path / "instance-file"
    kwargs["instance"].close()
