"""The crash-loop ledger, pure: young deaths counted per slot within a window, an
exponential backoff past the threshold, capped; recovery and pruning."""

from __future__ import annotations

import pytest

from infrakit.group import config, crashloop

POLICY = config.CrashLoopPolicy(threshold=3, window=600, young_age=60, backoff_base=10,
                                max_backoff=40)


def deaths(times: list[float], slot: str = "db-b") -> crashloop.Ledger:
    ledger = crashloop.Ledger(config="sha")
    for when in times:
        ledger = crashloop.died(ledger, slot, now=when, reason=f"died at {when}", policy=POLICY)
    return ledger


@pytest.mark.parametrize(("count", "backoff"), [
    (1, 0.0), (2, 0.0), (3, 10.0), (4, 20.0), (5, 40.0), (6, 40.0), (9, 40.0)])
def test_the_backoff_starts_at_the_threshold_doubles_and_is_capped(count: int,
                                                                   backoff: float) -> None:
    ledger = deaths([100.0 + n for n in range(count)])
    slot = ledger.slots["db-b"]
    assert slot.backoff == backoff
    assert slot.retry_at == (100.0 + count - 1 + backoff if backoff else 0.0)
    assert crashloop.looping(ledger, now=100.0 + count, policy=POLICY) == (
        ["db-b"] if count >= 3 else [])


def test_deaths_older_than_the_window_do_not_count() -> None:
    ledger = deaths([0.0, 1.0, 700.0])
    assert ledger.slots["db-b"].backoff == 0.0 and len(ledger.slots["db-b"].deaths) == 1
    assert crashloop.looping(ledger, now=701.0, policy=POLICY) == []
    assert crashloop.pruned(ledger, now=1400.0, policy=POLICY).slots == {}


def test_slots_are_counted_apart_and_waiting_says_the_time_left() -> None:
    ledger = deaths([0.0, 1.0, 2.0], slot="db-b")
    ledger = crashloop.died(ledger, "db-a", now=2.0, reason="x", policy=POLICY)
    assert crashloop.looping(ledger, now=3.0, policy=POLICY) == ["db-b"]
    assert crashloop.waiting(ledger, now=3.0) == {"db-b": 9.0}
    assert crashloop.waiting(ledger, now=12.0) == {}
    assert crashloop.recovered(ledger, "db-b").slots.keys() == {"db-a"}


def test_a_new_config_starts_a_new_ledger_and_the_ledger_survives_the_wire() -> None:
    ledger = deaths([0.0, 1.0, 2.0])
    assert crashloop.for_config(ledger, "sha") is ledger
    assert crashloop.for_config(ledger, "other") == crashloop.Ledger(config="other")
    assert crashloop.Ledger.from_wire(ledger.to_wire()) == ledger
    assert crashloop.explain(ledger, ["db-b"], now=5.0, policy=POLICY) == (
        "logical ID db-b died young 3 times within 600s (last: died at 2.0); next attempt "
        "in 7s")
