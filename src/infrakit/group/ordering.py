"""Who goes first when members must go: the ``Scale.Policy`` orders, pure.

Used for scale-down, for choosing which old members a rolling update replaces next, and
for unknown logical IDs. Protected members never reach these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from infrakit.group import config, health
from infrakit.spi import flavor, instance

_RANK = {flavor.Health.UNHEALTHY: 0, flavor.Health.UNKNOWN: 1, flavor.Health.HEALTHY: 2}


def removal_order(members: Iterable[instance.Description], policy: config.ScaleOrder, *,
                  first_seen: Mapping[str, float],
                  book: health.Book) -> list[instance.Description]:
    """``members`` sorted so that the first ones are removed first; ties go by lowest ID."""
    keys: dict[config.ScaleOrder, Callable[[instance.Description], Any]] = {
        config.ScaleOrder.LOWEST_ID: lambda m: m.id,
        config.ScaleOrder.OLDEST: lambda m: (first_seen.get(m.id, 0.0), m.id),
        config.ScaleOrder.NEWEST: lambda m: (-first_seen.get(m.id, 0.0), m.id),
        config.ScaleOrder.UNHEALTHY_FIRST: lambda m: (_RANK[book.verdict(m.id)], m.id),
    }
    return sorted(members, key=keys[policy])
