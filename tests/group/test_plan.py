from typing import Any

import pytest

from infrakit.group import config, plan

from .conftest import member

CATTLE = {"Instance": {"Plugin": "i"}, "Flavor": {"Plugin": "f"}}


def props(size: int | None = None, ids: list[str] | None = None, **extra: Any) -> config.Properties:
    allocation = {"Size": size} if size is not None else {"LogicalIDs": ids}
    return config.parse({**CATTLE, "Allocation": allocation, **extra})


@pytest.mark.parametrize(("fields", "text"), [
    ({"size": 3, "new_group": True}, "Managing 3 instances"),
    ({"size": 3}, "Noop"),
    ({"size": 3, "adjust": True}, "Adjusting the instance configuration, no restarts necessary"),
    ({"size": 3, "roll": 3}, "Performing a rolling update on 3 instances"),
    ({"size": 2, "size_change": -1}, "Terminating 1 instances to reduce the group size to 2"),
    ({"size": 2, "size_change": -2, "roll": 2},
     "Terminating 2 instances to reduce the group size to 2, then performing a rolling update "
     "on 2 instances"),
    ({"size": 5, "size_change": 2}, "Adding 2 instances to increase the group size to 5"),
    ({"size": 5, "size_change": 2, "roll": 3},
     "Performing a rolling update on 3 instances, then adding 2 instances to increase the "
     "group size to 5"),
    ({"size": 4, "added_ids": 1}, "Adding 1 instances to increase the group size to 4"),
    ({"size": 2, "removed_ids": 1, "roll": 2},
     "Terminating 1 instances to reduce the group size to 2, then performing a rolling update "
     "on 2 instances"),
    ({"size": 3, "added_ids": 1, "removed_ids": 1},
     "Adding 1 instances for new logical IDs, then terminating 1 instances whose logical IDs "
     "were removed"),
])
def test_every_plan_explains_itself_in_the_v05_words(fields: dict[str, Any], text: str) -> None:
    assert plan.Plan(**fields).explain() == text


def test_a_new_group_is_managed_whatever_exists() -> None:
    assert plan.plan(None, props(4), members=[member("a")], sha="s").explain() == \
        "Managing 4 instances"


def test_members_on_another_config_are_rolled_up_to_the_new_size() -> None:
    found = plan.plan(props(3), props(2), members=[member(i, sha="old") for i in "abc"], sha="new")
    assert (found.roll, found.size_change) == (2, -1)


def test_bootstrap_and_protected_members_are_not_rolled() -> None:
    now = [member("a", sha="bootstrap"), member("b", sha="old", **{"infrakit.protect": "true"}),
           member("c", sha="new")]
    assert plan.plan(props(3), props(3), members=now, sha="new").explain() == "Noop"


def test_a_policy_only_change_restarts_nothing() -> None:
    old, new = {"Allocation": {"Size": 3}}, {"Allocation": {"Size": 3}, "Update": {"MaxSurge": 1}}
    found = plan.plan(props(3), props(3, Update={"MaxSurge": 1}), members=[], sha="s",
                      previous_raw=old, desired_raw=new)
    assert found.explain() == "Adjusting the instance configuration, no restarts necessary"


def test_pets_count_added_and_removed_logical_ids() -> None:
    found = plan.plan(props(ids=["a", "b", "c"]), props(ids=["a", "b", "d", "e"]),
                      members=[member("1", lid="a", sha="s")], sha="s")
    assert (found.added_ids, found.removed_ids, found.size) == (2, 1, 4)


def test_pets_roll_only_members_whose_logical_id_stays() -> None:
    now = [member("1", lid="a", sha="old"), member("2", lid="c", sha="old")]
    found = plan.plan(props(ids=["a", "c"]), props(ids=["a", "b"]), members=now, sha="new")
    assert found.explain() == ("Adding 1 instances for new logical IDs, then terminating 1 "
                               "instances whose logical IDs were removed, then performing a "
                               "rolling update on 1 instances")
