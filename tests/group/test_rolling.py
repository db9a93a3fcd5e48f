import pytest

from infrakit.group import config, rolling

from .conftest import member


@pytest.mark.parametrize(("surge", "unavailable", "size", "pace"), [
    (0, 1, 10, (0, 1)), ("25%", 1, 10, (3, 1)), ("0%", "0%", 4, (0, 1)), (2, "50%", 5, (2, 2)),
])
def test_pace_resolves_surge_up_and_unavailable_down(surge: int | str, unavailable: int | str,
                                                     size: int, pace: tuple[int, int]) -> None:
    policy = config.UpdatePolicy(max_surge=surge, max_unavailable=unavailable)
    found = rolling.pace(policy, size)
    assert (found.surge, found.unavailable) == pace


OLD = [member(f"o{n}") for n in range(3)]


@pytest.mark.parametrize(("old", "keepers", "total", "available", "creates", "destroys"), [
    (3, 0, 3, 3, 0, 1),   # the original: destroy one...
    (2, 0, 2, 2, 1, 0),   # ...then add its replacement...
    (2, 1, 3, 2, 0, 0),   # ...and wait while it is not healthy...
    (2, 1, 3, 3, 0, 1),   # ...then the next.
])
def test_the_default_pace_replaces_one_at_a_time_behind_the_health_gate(
        old: int, keepers: int, total: int, available: int, creates: int, destroys: int) -> None:
    step = rolling.step(size=3, pace=rolling.Pace(surge=0, unavailable=1), old=OLD[:old],
                        keepers=keepers, total=total, available=available, paused=False)
    assert (step.creates, len(step.destroy)) == (creates, destroys)


def test_a_surge_adds_before_it_destroys() -> None:
    old = [member(f"o{n}") for n in range(8)]
    step = rolling.step(size=8, pace=rolling.Pace(surge=2, unavailable=0), old=old, keepers=0,
                        total=8, available=8, paused=False)
    assert (step.creates, step.destroy) == (2, [])


def test_a_paused_update_destroys_nothing_and_only_heals() -> None:
    step = rolling.step(size=3, pace=rolling.Pace(surge=1, unavailable=1), old=OLD[:2],
                        keepers=0, total=2, available=2, paused=True)
    assert (step.creates, step.destroy) == (1, [])
