import pytest

from infrakit.group import config, health, ordering
from infrakit.spi import flavor

from .conftest import member

SEEN = {"i-1": 30.0, "i-2": 10.0, "i-3": 20.0}


@pytest.mark.parametrize(("policy", "first"), [
    (config.ScaleOrder.LOWEST_ID, ["i-1", "i-2", "i-3"]),
    (config.ScaleOrder.OLDEST, ["i-2", "i-3", "i-1"]),
    (config.ScaleOrder.NEWEST, ["i-1", "i-3", "i-2"]),
    (config.ScaleOrder.UNHEALTHY_FIRST, ["i-3", "i-2", "i-1"]),
])
def test_scale_down_order_follows_the_policy(policy: config.ScaleOrder, first: list[str]) -> None:
    book = health.Book()
    book.record("i-1", flavor.Health.HEALTHY, 0)
    book.record("i-3", flavor.Health.UNHEALTHY, 0)  # i-2 never probed: Unknown
    found = ordering.removal_order([member(i) for i in ("i-3", "i-1", "i-2")], policy,
                                   first_seen=SEEN, book=book)
    assert [m.id for m in found] == first
