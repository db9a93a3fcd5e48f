from typing import Any

import pytest

from infrakit.group import config, health, remediation
from infrakit.spi import flavor

from .conftest import member

POLICY = config.HealthPolicy(interval=5.0, startup_grace=30.0, unhealthy_after=20.0)


def judge(verdicts: dict[str, flavor.Health], *, now: float, since: float = 0.0,
          policy: config.HealthPolicy = POLICY, **extra: Any) -> remediation.Verdict:
    book = health.Book()
    for iid, verdict in verdicts.items():
        book.record(iid, verdict, since)
    group = [member(i, **extra.get(i, {})) for i in sorted(verdicts)]
    return remediation.judge(group, policy=policy, protect_tag="infrakit.protect", book=book,
                             first_seen={i: 0.0 for i in verdicts}, now=now)


U, H, K = flavor.Health.UNHEALTHY, flavor.Health.HEALTHY, flavor.Health.UNKNOWN


@pytest.mark.parametrize(("now", "replaced"), [(29.0, []), (49.0, []), (50.0, ["a"])])
def test_unhealthy_counts_only_after_the_startup_grace(now: float, replaced: list[str]) -> None:
    found = judge({"a": U, "b": H, "c": H}, now=now)
    assert [m.id for m, _ in found.replace] == replaced


def test_the_spell_is_reported_in_the_reason() -> None:
    (_, spell), = judge({"a": U, "b": H, "c": H}, now=50.0).replace
    assert remediation.reason(spell) == "unhealthy for 20s"


def test_unknown_is_never_a_reason_to_replace() -> None:
    found = judge({"a": K, "b": H, "c": H, "d": H, "e": H}, now=1e6)
    assert (found.replace, found.unhealthy, found.hold) == ([], 0, None)


def test_above_the_budget_nothing_is_replaced_and_the_hold_says_why() -> None:
    found = judge({"a": U, "b": U, "c": U, "d": H, "e": H}, now=100.0)
    assert found.replace == []
    assert found.hold == "holding because 3/5 unhealthy exceeds budget 40%"


def test_within_the_budget_every_due_member_is_replaced() -> None:
    found = judge({"a": U, "b": U, "c": H, "d": H, "e": H}, now=100.0)
    assert [m.id for m, _ in found.replace] == ["a", "b"]


def test_protected_members_are_never_replaced() -> None:
    found = judge({"a": U, "b": H, "c": H}, now=100.0, a={"infrakit.protect": "true"})
    assert found.replace == [] and found.unhealthy == 1


def test_without_probing_nothing_is_judged() -> None:
    off = config.HealthPolicy(interval=0.0)
    assert judge({"a": U, "b": H}, now=1e6, policy=off).replace == []
