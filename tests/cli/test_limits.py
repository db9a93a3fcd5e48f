"""``--yes`` past ``--limit`` (default 1,000, ``$INFRAKIT_CONFIRM_ABOVE``): against a real group
plugin, instance-file and flavor-vanilla as processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infrakit import errors

from .procs import Stack, cattle, stack


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("limits")) as running:
        yield running


def test_a_huge_commit_without_yes_is_refused_and_nothing_is_created(live: Stack) -> None:
    done = live.infrakit("group", "commit", live.spec_file(cattle("huge", 100_000)))
    assert done.returncode == errors.UsageError.exit_code == 2
    assert done.stderr == ("infrakit: committing huge would change 100,000 members, more than "
                           "the limit of 1,000: add --yes to go ahead (the limit: --limit or "
                           "$INFRAKIT_CONFIRM_ABOVE)\n")
    assert "huge" not in live.groups()
    assert live.files() == []


def test_the_limit_counts_the_change_against_the_committed_size(live: Stack) -> None:
    env = {"INFRAKIT_CONFIRM_ABOVE": "3"}
    assert live.infrakit("group", "commit", live.spec_file(cattle("grow", 3)), "--wait",
                         "--interval", "100ms", env=env).returncode == 0
    bigger = live.spec_file(cattle("grow", 7))
    refused = live.infrakit("group", "commit", bigger, env=env)
    assert refused.returncode == 2 and "would change 4 members" in refused.stderr
    assert live.infrakit("group", "commit", bigger, "--limit", "4").returncode == 0
    assert live.infrakit("group", "commit", "--pretend", bigger, env=env).returncode == 0


def test_set_size_and_destroy_past_the_limit_need_yes(live: Stack) -> None:
    assert live.infrakit("group", "commit", live.spec_file(cattle("sized", 2)), "--wait",
                         "--interval", "100ms").returncode == 0
    refused = live.infrakit("group", "set-size", "sized", "5000")
    assert refused.returncode == 2
    assert "setting the size of sized to 5000 would change 4,998 members" in refused.stderr
    assert "--yes" in refused.stderr
    assert live.describe("sized")["Status"]["Size"] == 2
    destroy = live.infrakit("group", "destroy", "sized", "--limit", "1")
    assert destroy.returncode == 2 and "destroying sized would change 2 members" in destroy.stderr
    assert "sized" in live.groups()
    done = live.infrakit("group", "destroy", "sized", "--limit", "1", "--yes")
    assert (done.returncode, done.stdout) == (0, "Destroy sized initiated\n")
    assert "sized" not in live.groups()


def test_instance_destroy_of_many_needs_yes(live: Stack) -> None:
    live.infrakit("group", "commit", live.spec_file(cattle("many", 3)), "--wait",
                  "--interval", "100ms")
    live.infrakit("group", "free", "many")
    ids = [member["ID"] for member in live.describe_instances("many")]
    refused = live.infrakit("instance", "--name", "instance-file", "destroy", *ids,
                            env={"INFRAKIT_CONFIRM_ABOVE": "2"})
    assert refused.returncode == 2 and "destroying 3 instances would change 3" in refused.stderr
    assert set(ids) <= set(live.files())
    done = live.infrakit("instance", "--name", "instance-file", "destroy", *ids, "--yes",
                         env={"INFRAKIT_CONFIRM_ABOVE": "2"})
    assert done.stdout.splitlines() == [f"destroyed {each}" for each in ids]
    assert not set(ids) & set(live.files())
