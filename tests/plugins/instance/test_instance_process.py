"""The instance-process plugin with real processes (each test kills everything it started)."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from infrakit import errors, processes, testing
from infrakit.plugins.instance import process
from infrakit.spi import instance

SLEEP = "exec sleep 1000"


def alive(pid: int) -> bool:
    """Running and not a zombie (this container's init may never reap orphans)."""
    info = processes.stat(pid)
    return info is not None and info.running


@pytest.fixture
def changes() -> threading.Semaphore:
    """Released once per ``on_change()`` call."""
    return threading.Semaphore(0)


@pytest.fixture
def plugin(
    tmp_path: pathlib.Path, cleanup: None, changes: threading.Semaphore
) -> Iterator[process.Plugin]:
    subject = process.Plugin(tmp_path / "state", on_change=changes.release)
    try:
        yield subject
    finally:
        subject.close()


def provision(plugin: process.Plugin, init: str = SLEEP, *, properties: Any = None,
              **tags: str) -> instance.ID:
    return plugin.provision(instance.Spec(init=init, tags=tags, properties=properties))


def pid_of(plugin: process.Plugin, iid: str) -> int:
    [found] = [d for d in plugin.describe_instances({}, properties=True) if d.id == iid]
    pid: int = found.properties["Pid"]
    return pid


def ids(plugin: process.Plugin, tags: dict[str, str] | None = None) -> list[str]:
    return [description.id for description in plugin.describe_instances(tags or {})]


def test_an_instance_runs_its_init_with_its_identity_in_the_environment(
    plugin: process.Plugin,
) -> None:
    iid = plugin.provision(instance.Spec(
        init='echo "$INFRAKIT_INSTANCE_ID $INFRAKIT_LOGICAL_ID $INFRAKIT_TAG_PORT"; ' + SLEEP,
        tags={"port": "8080", "infrakit.group": "web"}, logical_id=instance.LogicalID("db-1"),
    ))
    log = plugin.directory / f"{iid}.log"

    [found] = plugin.describe_instances({"infrakit.group": "web"})
    assert (found.id, found.logical_id, found.tags) == (iid, "db-1", {"port": "8080",
                                                                     "infrakit.group": "web"})
    assert testing.wait_until(lambda: log.exists() and log.read_text() == f"{iid} db-1 8080\n")
    assert alive(pid_of(plugin, iid))


def test_env_and_cwd_come_from_the_properties(
    plugin: process.Plugin, tmp_path: pathlib.Path
) -> None:
    iid = provision(plugin, 'pwd; echo "$GREETING"; ' + SLEEP,
                    properties={"Env": {"GREETING": "hello"}, "Cwd": str(tmp_path)})
    log = plugin.directory / f"{iid}.log"

    assert testing.wait_until(lambda: log.read_text() == f"{tmp_path}\nhello\n")


def test_describe_matches_all_given_tags_and_gives_details_when_asked(
    plugin: process.Plugin,
) -> None:
    web = provision(plugin, tier="web", group="g")
    provision(plugin, tier="db", group="g")

    assert ids(plugin, {"group": "g", "tier": "web"}) == [web]
    assert len(ids(plugin, {"group": "g"})) == 2
    [plain] = plugin.describe_instances({"tier": "web"})
    [detailed] = plugin.describe_instances({"tier": "web"}, properties=True)
    assert plain.properties is None
    assert detailed.properties["Log"] == str(plugin.directory / f"{web}.log")
    assert detailed.properties["Init"] == SLEEP
    assert detailed.properties["Started"].endswith("+00:00")


def test_a_process_killed_with_kill_9_is_gone_from_the_next_describe(
    plugin: process.Plugin,
) -> None:
    keep, victim = provision(plugin), provision(plugin)
    pid = pid_of(plugin, victim)
    os.kill(pid, signal.SIGKILL)
    assert testing.wait_until(lambda: not alive(pid))  # kill() returns before the signal is handled

    assert ids(plugin) == [keep]
    assert not (plugin.directory / f"{victim}.json").exists()
    assert (plugin.directory / f"{victim}.log").exists()  # kept for the post-mortem


def test_an_exit_is_announced_through_on_change(
    plugin: process.Plugin, changes: threading.Semaphore
) -> None:
    iid = provision(plugin)
    os.kill(pid_of(plugin, iid), signal.SIGKILL)

    assert changes.acquire(timeout=5)
    assert ids(plugin) == []


def test_an_init_that_ends_by_itself_ends_the_instance(
    plugin: process.Plugin, changes: threading.Semaphore
) -> None:
    provision(plugin, "exit 0")

    assert changes.acquire(timeout=5)
    assert ids(plugin) == []


def test_when_the_leader_dies_the_rest_of_its_session_is_killed(
    plugin: process.Plugin, changes: threading.Semaphore
) -> None:
    iid = provision(plugin, "sleep 1000 & " + SLEEP)
    leader = pid_of(plugin, iid)
    assert testing.wait_until(lambda: len(processes.session_members(leader)) == 2)
    [background] = [pid for pid in processes.session_members(leader) if pid != leader]

    os.kill(leader, signal.SIGKILL)

    assert changes.acquire(timeout=5)
    assert testing.wait_until(lambda: not alive(background))


def test_destroy_stops_the_whole_process_tree(plugin: process.Plugin) -> None:
    iid = provision(plugin, "sleep 1000 & sleep 1000 & wait")
    leader = pid_of(plugin, iid)
    assert testing.wait_until(lambda: len(processes.session_members(leader)) == 3)
    tree = processes.session_members(leader)

    plugin.destroy(iid)

    assert not any(alive(pid) for pid in tree)
    assert ids(plugin) == []
    assert list(plugin.directory.iterdir()) == []


def test_destroy_kills_what_ignores_term_after_the_stop_timeout(plugin: process.Plugin) -> None:
    iid = provision(plugin, "trap '' TERM; sleep 1000 & wait",
                    properties={"StopTimeout": "200ms"})
    leader = pid_of(plugin, iid)
    assert testing.wait_until(lambda: len(processes.session_members(leader)) == 2)
    tree = processes.session_members(leader)

    started = time.monotonic()
    plugin.destroy(iid)

    assert 0.2 <= time.monotonic() - started < 3
    assert not any(alive(pid) for pid in tree)


def test_destroy_does_not_announce_a_change(
    plugin: process.Plugin, changes: threading.Semaphore
) -> None:
    plugin.destroy(provision(plugin))

    assert not changes.acquire(timeout=0.2)


def test_destroying_an_unknown_instance_is_not_found(plugin: process.Plugin) -> None:
    with pytest.raises(errors.NotFoundError, match="instance-1"):
        plugin.destroy(instance.ID("instance-1"))


def test_label_merges_tags_and_survives_a_restart(
    plugin: process.Plugin, tmp_path: pathlib.Path
) -> None:
    iid = provision(plugin, tier="web", **{"infrakit.config_sha": "bootstrap"})

    plugin.label(iid, {"infrakit.config_sha": "abc", "infrakit.group": "g"})

    expected = {"tier": "web", "infrakit.config_sha": "abc", "infrakit.group": "g"}
    assert plugin.describe_instances({})[0].tags == expected
    plugin.close()
    again = process.Plugin(plugin.directory)
    try:
        assert again.describe_instances({})[0].tags == expected
    finally:
        again.close()


def test_labelling_a_dead_or_unknown_instance_is_not_found(plugin: process.Plugin) -> None:
    iid = provision(plugin)
    pid = pid_of(plugin, iid)
    os.kill(pid, signal.SIGKILL)
    assert testing.wait_until(lambda: not alive(pid))

    for target in (iid, "instance-2"):
        with pytest.raises(errors.NotFoundError, match=target):
            plugin.label(instance.ID(target), {"a": "b"})


def test_a_restarted_plugin_adopts_live_processes_and_forgets_dead_ones(
    plugin: process.Plugin,
) -> None:
    live, dead = provision(plugin, name="live"), provision(plugin, name="dead")
    live_pid, dead_pid = pid_of(plugin, live), pid_of(plugin, dead)
    plugin.close()  # no longer watching: the death below happens while "down"
    os.kill(dead_pid, signal.SIGKILL)
    assert testing.wait_until(lambda: not alive(dead_pid))

    again = process.Plugin(plugin.directory)
    try:
        assert ids(again) == [live]
        assert pid_of(again, live) == live_pid
        assert not (plugin.directory / f"{dead}.json").exists()
        again.destroy(live)
        assert not alive(live_pid)
    finally:
        again.close()


@pytest.mark.parametrize("mismatch", ["start_time", "boot_id"])
def test_a_recycled_pid_is_neither_adopted_nor_killed(
    tmp_path: pathlib.Path, cleanup: None, mismatch: str
) -> None:
    stranger = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        info = processes.stat(stranger.pid)
        assert info is not None
        record = process.Record(
            id=instance.ID("instance-1"), pid=stranger.pid, init=SLEEP, started=time.time(),
            start_time=info.start_time + (1 if mismatch == "start_time" else 0),
            boot_id=processes.boot_id() + ("-old" if mismatch == "boot_id" else ""),
        )
        state = tmp_path / "state"
        state.mkdir()
        (state / "instance-1.json").write_text(json.dumps(record.to_wire()))

        subject = process.Plugin(state)
        try:
            assert subject.describe_instances({}) == []
            assert not (state / "instance-1.json").exists()
        finally:
            subject.close()
        assert alive(stranger.pid)
    finally:
        stranger.kill()
        stranger.wait()


def test_a_corrupt_record_is_skipped_with_a_warning(
    tmp_path: pathlib.Path, cleanup: None, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "instance-1.json").write_text("{broken")

    with caplog.at_level(logging.WARNING):
        subject = process.Plugin(state)
    try:
        assert subject.describe_instances({}) == []
        assert "instance-1.json" in caplog.text
    finally:
        subject.close()


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"StopTimeout": "soon"}, r"^Properties\.StopTimeout: expected a duration"),
        ({"StopTimeout": "-1s"}, r"^Properties\.StopTimeout: "),
        ({"Env": ["A=1"]}, r"^Properties\.Env: expected an object$"),
        ({"Env": {"A": 1}}, r"^Properties\.Env\.A: expected a string$"),
        ({"Cwd": "/nonexistent/dir"}, r"^Properties\.Cwd: not a directory"),
        ("text", r"^Properties: expected an object$"),
    ],
)
def test_bad_properties_are_invalid_naming_the_field(
    plugin: process.Plugin, properties: Any, message: str
) -> None:
    with pytest.raises(errors.InvalidError, match=message):
        plugin.validate(properties)
    with pytest.raises(errors.InvalidError, match=message):
        provision(plugin, properties=properties)
    assert ids(plugin) == []


@pytest.mark.parametrize("init", ["", "   \n"])
def test_an_empty_init_is_invalid(plugin: process.Plugin, init: str) -> None:
    with pytest.raises(errors.InvalidError, match=r"^Spec\.Init: empty"):
        provision(plugin, init)


def test_run_serves_the_plugin_on_the_named_socket(
    served: list[tuple[str, dict[str, Any]]], tmp_path: pathlib.Path
) -> None:
    process.run(["--name", "procs", "--dir", str(tmp_path / "p")])

    [(name, kwargs)] = served
    assert name == "procs"
    assert kwargs["instance"].directory == tmp_path / "p"
    kwargs["instance"].close()
