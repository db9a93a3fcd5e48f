"""instance-file creates an instance file in place with one write, so a reader may meet it
empty or cut short: such a file is "not there yet" (left out of Describe without a warning,
read again once complete), never an error and never a deletion."""

from __future__ import annotations

import json
import logging
import os
import pathlib
from typing import Any

import pytest

from infrakit import errors, files
from infrakit.plugins.instance import dirwatch, file
from infrakit.spi import instance

WEB = {"infrakit.group": "workers"}
RECORD = json.dumps({"ID": "instance-7", "LogicalID": None, "Tags": WEB,
                     "Spec": {"Properties": {"Note": "a \"quoted\" note"}, "Init": "x"}},
                    indent=2)


def ids(descriptions: list[instance.Description]) -> list[str]:
    return [description.id for description in descriptions]


def warnings_about(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and name in r.getMessage()]


@pytest.mark.parametrize("cut", [0, 1, RECORD.index('"Tags"') + 3, RECORD.index("quoted"),
                                 RECORD.index('"Init"') - 2, len(RECORD) - 1])
def test_a_half_written_instance_file_is_left_out_quietly_until_complete(
    plugin: file.Plugin, caplog: pytest.LogCaptureFixture, cut: int,
) -> None:
    known = plugin.provision(instance.Spec(tags=WEB))
    path = plugin.directory / "instance-7"
    with caplog.at_level(logging.DEBUG), path.open("w") as writer:
        writer.write(RECORD[:cut])
        writer.flush()
        assert ids(plugin.describe(WEB)) == [known]
        assert ids(plugin.describe(WEB)) == [known]
        with pytest.raises(errors.NotFoundError):
            plugin.label(instance.ID("instance-7"), {"a": "b"})
        assert path.read_text() == RECORD[:cut]  # not rewritten by the refused label
        writer.write(RECORD[cut:])

    assert ids(plugin.describe(WEB)) == sorted([known, "instance-7"])
    assert warnings_about(caplog, "instance-7") == []


def test_a_file_that_is_no_json_object_is_still_warned_about(
    plugin: file.Plugin, caplog: pytest.LogCaptureFixture,
) -> None:
    # Cut-short detection must not hide junk: text that can never become an instance file.
    (plugin.directory / "instance-8").write_text('"just a string')
    with caplog.at_level(logging.WARNING):
        assert plugin.describe({}) == []
    assert len(warnings_about(caplog, "instance-8")) == 1


def test_provision_creates_the_file_in_place_without_a_temporary_one(
    plugin: file.Plugin,
) -> None:
    watch = dirwatch.open_watch(plugin.directory)
    assert watch is not None
    try:
        iid = plugin.provision(instance.Spec(tags=WEB))
        names = watch.events()
    finally:
        watch.close()
    assert names and set(names) == {iid}  # created, written, closed: no other name, no rename
    assert json.loads((plugin.directory / iid).read_text())["ID"] == iid


def test_a_describe_during_a_provision_sees_nothing_half_done(
    plugin: file.Plugin, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_write = os.write
    seen: list[list[str]] = []

    def half_then_look(fd: int, data: Any) -> int:
        # Called for the instance file only: nothing else in a Provision writes to an fd.
        monkeypatch.setattr(files.os, "write", real_write)
        written = real_write(fd, bytes(data)[: len(data) // 2])
        seen.append(ids(plugin.describe({})))
        return written

    monkeypatch.setattr(files.os, "write", half_then_look)
    with caplog.at_level(logging.WARNING):
        iid = plugin.provision(instance.Spec(tags=WEB))
    assert seen == [[]]  # looked at mid-write, and saw no instance yet
    assert caplog.records == []
    assert ids(plugin.describe(WEB)) == [iid]
    assert json.loads((plugin.directory / iid).read_text())["ID"] == iid


def test_provision_never_overwrites_a_file_that_has_the_drawn_name(
    plugin: file.Plugin, monkeypatch: pytest.MonkeyPatch,
) -> None:
    (plugin.directory / "instance-7").write_text("my notes")
    draws = iter([7, 8])
    monkeypatch.setattr(file.secrets, "randbits", lambda bits: next(draws))

    assert plugin.provision(instance.Spec(tags=WEB)) == "instance-8"

    assert (plugin.directory / "instance-7").read_text() == "my notes"
    assert ids(plugin.describe(WEB)) == ["instance-8"]


def test_create_removes_its_partial_file_when_the_write_fails(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def full(fd: int, data: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "write", full)
    with pytest.raises(OSError, match="No space"):
        files.create(tmp_path / "instance-1", b"{}")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileExistsError):
        files.create(tmp_path / "instance-2", b"{}")
        files.create(tmp_path / "instance-2", b"{}")


def test_an_instance_rewritten_in_place_keeps_its_last_whole_version_meanwhile(
    plugin: file.Plugin,
) -> None:
    # As the original plugin's Label does (WriteFile truncates, then writes): the instance
    # must not look deleted for a moment, or the group would replace it.
    iid = plugin.provision(instance.Spec(tags=WEB))
    path = plugin.directory / iid
    record = json.loads(path.read_text())
    record["Tags"]["tier"] = "web"
    text = json.dumps(record)
    with path.open("w") as writer:
        assert [m.tags for m in plugin.describe({})] == [WEB]  # truncated: the old version
        writer.write(text[: len(text) // 2])
        writer.flush()
        assert [m.tags for m in plugin.describe({})] == [WEB]
        writer.write(text[len(text) // 2:])

    assert [m.tags for m in plugin.describe({})] == [{**WEB, "tier": "web"}]
