import random

import pytest

from infrakit.group import backoff, config

from .conftest import NoJitter

POLICY = config.ProvisionPolicy(backoff_base=1.0, backoff_cap=8.0, failure_threshold=4)


def test_waits_double_up_to_the_cap_and_the_group_then_fails() -> None:
    breaker = backoff.Breaker(POLICY, rng=NoJitter())
    waits = [breaker.failed(breaker.ticket(), 0.0, "boom") for _ in range(6)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert breaker.failing and breaker.last_error == "boom"


def test_after_a_failure_one_probe_goes_once_the_wait_is_over() -> None:
    breaker = backoff.Breaker(POLICY, rng=NoJitter())
    assert breaker.allowance(0.0) is None
    breaker.failed(breaker.ticket(), 0.0, "boom")
    assert (breaker.allowance(0.5), breaker.allowance(1.0)) == (0, 1)


def test_failures_of_one_batch_count_once() -> None:
    breaker = backoff.Breaker(POLICY, rng=NoJitter())
    ticket = breaker.ticket()
    for _ in range(3):
        breaker.failed(ticket, 0.0, "boom")
    assert breaker.failures == 1


def test_a_success_or_a_new_spec_closes_the_breaker() -> None:
    breaker = backoff.Breaker(POLICY, rng=NoJitter())
    breaker.failed(breaker.ticket(), 0.0, "boom")
    breaker.succeeded()
    assert (breaker.failures, breaker.allowance(0.0)) == (0, None)
    breaker.failed(breaker.ticket(), 0.0, "boom")
    breaker.reset(config.ProvisionPolicy())
    assert breaker.allowance(0.0) is None


@pytest.mark.parametrize("seed", range(5))
def test_jitter_only_shortens_a_wait(seed: int) -> None:
    breaker = backoff.Breaker(POLICY, rng=random.Random(seed))
    wait = breaker.failed(breaker.ticket(), 0.0, "boom")
    assert 1.0 * (1 - backoff.JITTER) <= wait <= 1.0
