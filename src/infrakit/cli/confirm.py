"""``--yes`` past a limit: one command may not create or destroy more than ``--limit`` members
(default 1,000; ``$INFRAKIT_CONFIRM_ABOVE``) unless it says ``--yes``.

Used by ``group commit`` (the size change against the committed spec), ``group set-size``,
``group destroy`` and ``instance destroy`` of many. A refusal is a usage error (exit 2) that
names the number and the flag; nothing has been changed when it is raised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from infrakit import errors

F = TypeVar("F", bound=Callable[..., Any])

ENV = "INFRAKIT_CONFIRM_ABOVE"
DEFAULT_LIMIT = 1000


def options(function: F) -> F:
    """``--yes`` and ``--limit N`` (env ``INFRAKIT_CONFIRM_ABOVE``)."""
    function = click.option("--yes", is_flag=True,
                            help="Go ahead even when more members than --limit change.")(function)
    return click.option("--limit", type=click.IntRange(min=0), default=DEFAULT_LIMIT,
                        envvar=ENV, show_envvar=True, show_default=True, metavar="N",
                        help="Members one command may change without --yes.")(function)


def check(changed: int, *, limit: int, yes: bool, what: str) -> None:
    """Refuse ``what`` (``"committing workers"``) when it changes more than ``limit``
    members and ``yes`` was not given."""
    if changed > limit and not yes:
        raise errors.UsageError(
            f"{what} would change {changed:,} members, more than the limit of {limit:,}: "
            f"add --yes to go ahead (the limit: --limit or ${ENV})", changed=changed)


def allocation_size(properties: Any) -> int:
    """The size a group Spec's Properties declare: ``Allocation.Size`` or the number of
    ``Allocation.LogicalIDs`` (0 when it says neither)."""
    allocation = properties.get("Allocation") if isinstance(properties, dict) else None
    if not isinstance(allocation, dict):
        return 0
    ids = allocation.get("LogicalIDs")
    if isinstance(ids, list) and ids:
        return len(ids)
    size = allocation.get("Size")
    return size if isinstance(size, int) and not isinstance(size, bool) else 0
