"""What a start of ``infrakit up`` does with the store: it keeps what changed since the file
was last applied (set-size, rollback, a CLI commit, a rolling update in flight) and says so,
applies a file edited since, and applies the file anyway with ``--apply``; ``infrakit apply``
commits the file to a running ``up``. The first tests drive the pure rules
(:mod:`infrakit.manager.applied`); the others run ``infrakit up`` processes."""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import test_up
from click.testing import CliRunner
from local_cluster import until
from test_up import Up, env_for, start_up

from infrakit.cli import main
from infrakit.manager import applied, store
from infrakit.rpc import sync
from infrakit.spi import group, plugin

GID = "workers"
WHEN = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
home = test_up.home
"""A short INFRAKIT_HOME (test_up's fixture)."""
running = test_up.running
"""The ``infrakit up`` processes a test starts, killed at the end (test_up's fixture)."""
WITNESS = "witness"
"""A second group of one in every config: its reconcile rounds are seen (:func:`reconciled`)."""
ROUNDS = 3
"""Reconcile rounds a restarted ``up`` gets to show that it creates and destroys nothing."""

def group_spec(*, size: int, note: str = "up", probe: str | None = None, gid: str = GID,
               **extra: Any) -> dict[str, Any]:
    flavor: dict[str, Any] = {"Init": ["echo hi"]}
    if probe is not None:
        flavor["Health"] = {"Command": probe, "Timeout": "5s"}
    return {"ID": gid, "Properties": {
        "Allocation": {"Size": size},
        "Instance": {"Plugin": "instance-file", "Properties": {"Note": note}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": flavor},
        **extra}}


# -- the rules, pure ---------------------------------------------------------------------------


def spec_of(size: int, **extra: Any) -> group.Spec:
    return group.Spec.from_wire(group_spec(size=size, **extra))


def entry(version: int, spec: group.Spec) -> store.HistoryEntry:
    return store.HistoryEntry(version=version, time=datetime(2026, 12, 2, 13, 38, tzinfo=UTC),
                              spec=plugin.Spec(plugin="group-embedded",
                                               properties=spec.to_wire()))


def mark(version: int, spec: group.Spec) -> applied.Mark:
    return applied.Mark(version=version, hash=applied.spec_hash(spec), source="up.yml")


S2, S3, S4 = spec_of(2), spec_of(3), spec_of(4)
S3_SCALED = spec_of(3, Scale={"Policy": "Newest"})


@pytest.mark.parametrize(("wanted", "history", "recorded", "action", "line"), [
    (S2, [], None, applied.Action.CREATE, None),
    (S2, [entry(1, S2)], mark(1, S2), applied.Action.SAME,
     "workers: the store's v1 is the file's spec; nothing to apply"),
    (S2, [entry(1, S2), entry(2, S3)], mark(1, S2), applied.Action.KEEP,
     "workers: the store has v2 (resize at 2026-12-02T13:38:00Z); the file's v1 was not "
     "re-applied; use --apply to apply the file"),
    (S2, [entry(1, S2), entry(2, S3), entry(3, S4), entry(4, S3)], mark(1, S2),
     applied.Action.KEEP, "workers: the store has v4 (rollback to v2 at "
     "2026-12-02T13:38:00Z); the file's v1 was not re-applied; use --apply to apply the file"),
    (S2, [entry(1, S2), entry(2, S3_SCALED)], mark(1, S2), applied.Action.KEEP,
     "workers: the store has v2 (commit at 2026-12-02T13:38:00Z); the file's v1 was not "
     "re-applied; use --apply to apply the file"),
    (S3, [entry(1, S2)], mark(1, S2), applied.Action.APPLY,
     "workers: the file changed since its v1 was applied, and the store did not; applying it"),
    (S4, [entry(1, S2), entry(2, S3)], mark(1, S2), applied.Action.KEEP,
     "workers: the store has v2 (resize at 2026-12-02T13:38:00Z), and the file changed since "
     "its v1 was applied; the file was not applied; use --apply to apply the file"),
    # Applied by `infrakit apply` (v2, no mark), then resized: the history shows it.
    (S3, [entry(1, S2), entry(2, S3), entry(3, S4)], mark(1, S2), applied.Action.KEEP,
     "workers: the store has v3 (resize at 2026-12-02T13:38:00Z); the file's v2 was not "
     "re-applied; use --apply to apply the file"),
    # The file edited back to an older spec is an edit, not an old application.
    (S2, [entry(1, S2), entry(2, S3)], mark(2, S3), applied.Action.APPLY,
     "workers: the file changed since its v2 was applied, and the store did not; applying it"),
    # A store from before marks were kept: only what the history shows counts.
    (S2, [entry(1, S2), entry(2, S3)], None, applied.Action.KEEP,
     "workers: the store has v2 (resize at 2026-12-02T13:38:00Z); the file's v1 was not "
     "re-applied; use --apply to apply the file"),
    (S4, [entry(1, S3)], None, applied.Action.KEEP,
     "workers: the store has v1 (commit at 2026-12-02T13:38:00Z), and no application of this "
     "file is recorded; the file was not applied; use --apply to apply the file"),
    (S4, [], mark(1, S2), applied.Action.KEEP,
     "workers: the store holds another spec (its history is unreadable), and the file changed "
     "since its v1 was applied; the file was not applied; use --apply to apply the file"),
])
def test_a_start_keeps_what_changed_in_the_store_since_the_file_was_applied(
        wanted: group.Spec, history: list[store.HistoryEntry], recorded: applied.Mark | None,
        action: applied.Action, line: str | None) -> None:
    stored = None
    if history:
        stored = group.Spec.model_validate(history[-1].spec.properties)
    elif action is applied.Action.KEEP:
        stored = S3
    decision = applied.decide(wanted, stored=stored, history=history, recorded=recorded)
    assert (decision.action, decision.explain()) == (action, line)
    assert decision.commits == (action in (applied.Action.CREATE, applied.Action.APPLY))


def test_apply_commits_the_file_over_any_store() -> None:
    decision = applied.decide(S2, stored=S3, history=[entry(1, S2), entry(2, S3)],
                              recorded=mark(1, S2), force=True)
    assert decision.action is applied.Action.FORCED and decision.commits
    assert decision.explain() == ("workers: --apply: applying the file over the store's v2 "
                                  "(resize at 2026-12-02T13:38:00Z)")


def test_the_mark_records_what_the_start_learned() -> None:
    history = [entry(1, S2), entry(2, S3), entry(3, S4)]
    kept = applied.decide(S3, stored=S4, history=history, recorded=mark(1, S2))
    assert kept.applied == 2  # committed by `infrakit apply`: recorded from now on
    same = applied.decide(S4, stored=S4, history=history, recorded=mark(1, S2))
    assert same.applied == 3


def test_marks_load_from_an_absent_file_and_round_trip(tmp_path: pathlib.Path) -> None:
    assert applied.load(tmp_path) == {}
    marks = {group.ID(GID): mark(3, S2)}
    applied.save(tmp_path, marks, token=None)
    assert applied.load(tmp_path) == marks


def test_a_corrupt_marks_file_is_named_and_kept_aside_when_replaced(
        tmp_path: pathlib.Path) -> None:
    (tmp_path / applied.FILE).write_text("{not json")
    with pytest.raises(Exception, match=re.escape(str(tmp_path / applied.FILE))):
        applied.load(tmp_path)
    applied.save(tmp_path, {group.ID(GID): mark(1, S2)}, token=None)
    assert applied.load(tmp_path) == {group.ID(GID): mark(1, S2)}
    assert [p.name.split("-")[0] for p in tmp_path.glob(f"{applied.FILE}.corrupt-*")] == [
        f"{applied.FILE}.corrupt"]


# -- infrakit up, as processes ----------------------------------------------------------------


def write_config(home: pathlib.Path, **spec: Any) -> pathlib.Path:
    """An ``up`` config (JSON): the group ``workers``, then the :data:`WITNESS`."""
    path = home / "up.json"
    path.write_text(json.dumps({
        "Manager": {"Name": "group", "PollInterval": "200ms", "StatePoll": "200ms"},
        "Plugins": [{"Plugin": "instance-file", "Launch": {"os": {
            "Cmd": f"infrakit-instance-file --dir {home}/files --log 3"}}},
                    {"Plugin": "flavor-vanilla"}],
        "Groups": [{"Plugin": "group", "Properties": group_spec(**spec)},
                   {"Plugin": "group", "Properties": group_spec(size=1, gid=WITNESS)}]}))
    return path


def write_commit(home: pathlib.Path, **spec: Any) -> str:
    """A ``manager commit`` file with the group ``workers``."""
    path = home / "commit.json"
    path.write_text(json.dumps([{"Plugin": "group", "Properties": group_spec(**spec)}]))
    return str(path)


def cli(home: pathlib.Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "infrakit.cli.main", *argv],
                          capture_output=True, text=True, env=env_for(home), timeout=30)


def ok(home: pathlib.Path, *argv: str) -> str:
    done = cli(home, *argv)
    assert (done.returncode, done.stderr) == (0, ""), done
    return done.stdout


async def start(home: pathlib.Path, config: pathlib.Path, running: list[Up],
                *flags: str) -> Up:
    up = await start_up(home, config, *flags)
    running.append(up)
    await up.line("Up: manager 'group' leads")
    return up


async def stop(up: Up) -> None:
    up.proc.send_signal(signal.SIGINT)
    await up.line("Stopped", timeout=15)
    assert await asyncio.wait_for(up.proc.wait(), 10) == 0


def members(home: pathlib.Path, gid: str = GID) -> dict[str, str]:
    """Each instance file of group ``gid``: its ID and config hash."""
    found = {}
    for path in sorted((home / "files").glob("instance-*")):
        try:
            tags = json.loads(path.read_text())["Tags"]
        except (ValueError, KeyError):
            continue  # being written
        if tags.get("infrakit.group") == gid:
            found[path.name] = tags.get("infrakit.config_sha", "")
    return found


async def reconciled(home: pathlib.Path, rounds: int) -> None:
    """Wait until the controller has reconciled the :data:`WITNESS` ``rounds`` times more,
    each seen by its effect: its member, labelled ``bootstrap`` ("adopt me"), is labelled
    with the group's hash again. Every group's loop polls at the same interval, so
    ``workers`` has been reconciled too (instead of sleeping and hoping it was)."""
    (member, sha), = (await until(lambda: members(home, WITNESS), timeout=10,
                                  what="the witness's member")).items()
    instances = sync.Client(home / "plugins" / "instance-file", timeout=10.0)
    for _ in range(rounds):
        instances.call("Instance.Label", {"Type": "", "Instance": member,
                                          "Labels": {"infrakit.config_sha": "bootstrap"}})
        await until(lambda: members(home, WITNESS).get(member) == sha, timeout=10,
                    what=f"the witness adopting {member} again")


def stored_spec(home: pathlib.Path) -> dict[str, Any]:
    doc = json.loads((home / "configs" / "global.config").read_text())
    properties: dict[str, Any] = doc["Groups"][GID]["Properties"]["Properties"]
    return properties


def decided(up: Up) -> list[str]:
    """What ``up`` said about the group, and what it committed."""
    return [line for line in up.lines
            if line.startswith((f"{GID}: ", f"Committed {GID}:"))]


Action = Callable[[pathlib.Path], str]
"""A change made through the CLI to the running ``up``; returns what the CLI printed."""


def set_size(size: int) -> Action:
    return lambda home: ok(home, "group", "set-size", GID, str(size))


def rollback(to: int) -> Action:
    return lambda home: ok(home, "manager", "rollback", GID, "--to", str(to))


def commit(size: int, **extra: Any) -> Action:
    return lambda home: ok(home, "manager", "commit", write_commit(home, size=size, **extra))


@pytest.mark.slow
@pytest.mark.parametrize(("actions", "size", "said"), [
    ([set_size(3)], 3, rf"the store has v2 \(resize at {WHEN}\)"),
    ([set_size(3), set_size(4), rollback(2)], 3, rf"the store has v4 \(rollback to v2 at {WHEN}\)"),
    ([commit(3, Scale={"Policy": "Newest"})], 3, rf"the store has v2 \(commit at {WHEN}\)"),
], ids=["set-size", "rollback", "cli-commit"])
async def test_a_restart_keeps_a_change_made_since_the_file_was_applied_and_says_so(
        home: pathlib.Path, running: list[Up], actions: list[Action], size: int,
        said: str) -> None:
    config = write_config(home, size=2)
    up = await start(home, config, running)
    assert decided(up) == ["Committed workers: Managing 2 instances"]
    await until(lambda: len(members(home)) == 2, timeout=10, what="2 members")
    for act in actions:
        act(home)
    await until(lambda: len(members(home)) == size, timeout=10, what=f"{size} members")
    await stop(up)
    before = members(home)

    again = await start(home, config, running)
    await reconciled(home, ROUNDS)
    assert len(decided(again)) == 1 and re.fullmatch(
        rf"workers: {said}; the file's v1 was not re-applied; use --apply to apply the file",
        decided(again)[0]), again.lines
    assert members(home) == before  # nothing created, nothing destroyed
    assert stored_spec(home)["Allocation"] == {"Size": size}
    await stop(again)


@pytest.mark.slow
async def test_up_apply_applies_the_file_over_the_store(home: pathlib.Path,
                                                       running: list[Up]) -> None:
    config = write_config(home, size=2)
    up = await start(home, config, running)
    set_size(3)(home)
    await until(lambda: len(members(home)) == 3, timeout=10, what="3 members")
    await stop(up)

    again = await start(home, config, running, "--apply")
    assert re.fullmatch(rf"workers: --apply: applying the file over the store's v2 \(resize at "
                        rf"{WHEN}\)", decided(again)[0]), again.lines
    assert decided(again)[1:] == [
        "Committed workers: Terminating 1 instances to reduce the group size to 2"]
    await until(lambda: len(members(home)) == 2, timeout=10, what="2 members")
    assert stored_spec(home)["Allocation"] == {"Size": 2}
    await stop(again)


@pytest.mark.slow
async def test_a_file_edited_between_runs_is_applied_once(home: pathlib.Path,
                                                          running: list[Up]) -> None:
    config = write_config(home, size=2)
    await stop(await start(home, config, running))
    write_config(home, size=3)

    edited = await start(home, config, running)
    assert decided(edited) == [
        "workers: the file changed since its v1 was applied, and the store did not; "
        "applying it",
        "Committed workers: Adding 1 instances to increase the group size to 3"]
    await until(lambda: len(members(home)) == 3, timeout=10, what="3 members")
    await stop(edited)
    before = members(home)

    same = await start(home, config, running)
    await reconciled(home, ROUNDS)
    assert decided(same) == ["workers: the store's v2 is the file's spec; nothing to apply"]
    assert members(home) == before
    await stop(same)


@pytest.mark.slow
async def test_infrakit_apply_commits_the_file_to_a_running_up(home: pathlib.Path,
                                                               running: list[Up]) -> None:
    config = write_config(home, size=2)
    up = await start(home, config, running)
    write_config(home, size=3)
    assert ok(home, "apply", "--pretend", str(config)) == (
        "Committing workers would involve: Adding 1 instances to increase the group size to 3\n"
        "Committing witness would involve: Noop\n")
    assert ok(home, "apply", str(config)) == (
        "Committed workers: Adding 1 instances to increase the group size to 3\n"
        "Committed witness: Noop\n")
    await until(lambda: len(members(home)) == 3, timeout=10, what="3 members")
    set_size(4)(home)  # after the apply: the next start keeps it
    await until(lambda: len(members(home)) == 4, timeout=10, what="4 members")
    await stop(up)

    again = await start(home, config, running)
    assert len(decided(again)) == 1 and re.fullmatch(
        rf"workers: the store has v3 \(resize at {WHEN}\); the file's v2 was not re-applied; "
        "use --apply to apply the file", decided(again)[0]), again.lines
    await stop(again)


@pytest.mark.slow
async def test_a_rolling_update_in_flight_at_stop_is_resumed_not_reverted(
        home: pathlib.Path, running: list[Up]) -> None:
    config = write_config(home, size=2)
    up = await start(home, config, running)
    await until(lambda: len(members(home)) == 2, timeout=10, what="2 members")
    old = set(members(home).values())
    gate = home / "gate"  # new members are healthy once it exists: the update waits
    ok(home, "manager", "commit", write_commit(home, size=2, note="v2",
                                               probe=f"test -e {gate}"))
    await until(lambda: len(set(members(home).values()) - old) == 1, timeout=10,
                what="the update's first new member")
    await stop(up)
    before = members(home)
    (new,) = set(before.values()) - old

    again = await start(home, config, running)
    await reconciled(home, ROUNDS)
    assert len(decided(again)) == 1 and re.fullmatch(
        rf"workers: the store has v2 \(commit at {WHEN}\); the file's v1 was not re-applied; "
        "use --apply to apply the file", decided(again)[0]), again.lines
    assert members(home) == before  # the update neither reverted nor went on unhealthy
    state = json.loads((home / "configs" / "state.json").read_text())
    assert state[GID]["Target"] == new
    gate.touch()
    await until(lambda: set(members(home).values()) == {new} and len(members(home)) == 2,
                timeout=20, what="the update finished on the new config")
    assert stored_spec(home)["Instance"]["Properties"] == {"Note": "v2"}
    await stop(again)


# -- infrakit apply without a running up -------------------------------------------------------


def _no_socket(plugins: pathlib.Path) -> socket.socket | None:
    return None


def _dead_socket(plugins: pathlib.Path) -> socket.socket | None:
    plugins.mkdir(parents=True, exist_ok=True)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(plugins / "group"))  # bound, never listening: a dead `up` left it
    return dead


@pytest.mark.parametrize(("leave", "code"), [(_no_socket, 3), (_dead_socket, 6)],
                         ids=["no-socket", "dead-socket"])
def test_infrakit_apply_without_a_running_up_is_one_clear_line(
        home: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
        leave: Callable[[pathlib.Path], socket.socket | None], code: int) -> None:
    monkeypatch.setenv("INFRAKIT_HOME", str(home))
    monkeypatch.delenv("INFRAKIT_PLUGINS_DIR", raising=False)
    config = write_config(home, size=2)
    held = leave(home / "plugins")
    try:
        result = CliRunner().invoke(main.cli, ["apply", str(config)], prog_name="infrakit")
    finally:
        if held is not None:
            held.close()
    assert result.exit_code == code, result.output
    assert result.stderr.startswith(f"infrakit: no `infrakit up` answers as 'group' at "
                                    f"{home / 'plugins' / 'group'} (")
    assert result.stderr.endswith(f"start it with `infrakit up {config}`\n")
    assert result.stderr.count("\n") == 1
