"""The schema of the default group plugin's ``group.Spec.Properties``, and its validation.

``{Instance: {Plugin, Properties}, Flavor: {Plugin, Properties}, Allocation: {Size} |
{LogicalIDs}}`` as in InfraKit v0.5, plus our optional policy sections (``Health``,
``Update``, ``Scale``, ``Provision``) whose defaults reproduce the original's behaviour.
Unknown keys from a peer are kept. The controller parses every commit with :func:`parse`.
"""

from __future__ import annotations

import enum
import math
from typing import Annotated, Any

import pydantic
from pydantic import BeforeValidator, Field

from infrakit import durations, errors
from infrakit.spi import flavor, group, plugin
from infrakit.spi.wire import Wire


def _amount(value: Any) -> int | str:
    if isinstance(value, bool):
        raise ValueError(f"expected a count (2) or a percentage (\"25%\"), got {value!r}")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip()
        number = text[:-1] if text.endswith("%") else text
        if number.isdigit() and (not text.endswith("%") or int(number) <= 100):
            return f"{int(number)}%" if text.endswith("%") else int(number)
    raise ValueError(f"expected a count (2) or a percentage (\"25%\"), got {value!r}")


Amount = Annotated[int | str, BeforeValidator(_amount)]
"""A count of members (``2``) or a percentage of the group's size (``"25%"``)."""


def resolve(amount: int | str, total: int, *, round_up: bool) -> int:
    """The count ``amount`` stands for in a group of ``total`` members."""
    if isinstance(amount, int):
        return amount
    share = int(amount.rstrip("%")) * total / 100
    return math.ceil(share) if round_up else math.floor(share)


class HealthPolicy(Wire):
    """``Health``: how members are probed (Flavor.Healthy) and when unhealthy ones are replaced.

    Without a ``Health`` section members are not probed between updates and only vanished
    ones are replaced, as in the original; with one, ``Interval`` defaults to 10s.
    """

    interval: durations.Seconds = 10.0
    """How often each member is probed; ``0s`` turns steady-state probing off."""
    startup_grace: durations.Seconds = 30.0
    """A new member is not judged before it has existed this long."""
    unhealthy_after: durations.Seconds = 30.0
    """How long a member must stay Unhealthy (after its grace) before it is replaced."""
    max_unhealthy: Amount = "40%"
    """Remediation budget: when more members than this are Unhealthy at once, none is
    replaced (a broken check or a partition must not destroy the fleet)."""
    drain_timeout: durations.Seconds = 300.0
    """How long Flavor.Drain may take before the removal counts as failed (and is retried)."""


class UpdatePolicy(Wire):
    """``Update``: how a rolling update replaces members whose config hash differs."""

    max_surge: Amount = 0
    """How many members may exist above the group's size during an update (original: 0)."""
    max_unavailable: Amount = 1
    """How many members may be missing or not yet Healthy during an update (original: 1)."""
    health_timeout: durations.Seconds = 600.0
    """A new member that is not Healthy this long after it appeared pauses the update."""


class ScaleOrder(enum.StrEnum):
    """Which members go first when the group shrinks or rolls."""

    LOWEST_ID = "LowestID"
    """Lowest instance ID first (the original's order)."""
    OLDEST = "Oldest"
    """The members seen first go first."""
    NEWEST = "Newest"
    """The members seen last go first."""
    UNHEALTHY_FIRST = "UnhealthyFirst"
    """Unhealthy members, then Unknown, then Healthy; lowest ID within each."""


class ScalePolicy(Wire):
    """``Scale``: the order of removal and the members exempt from it."""

    policy: ScaleOrder = ScaleOrder.LOWEST_ID
    """Which members go first on scale-down and in a rolling update."""
    protect_tag: str = "infrakit.protect"
    """A member whose tag of this name is ``"true"`` is never destroyed by the controller
    (scale-down, remediation, rolling update, DestroyGroup); only DestroyInstances may."""


class ProvisionPolicy(Wire):
    """``Provision``: the circuit breaker that keeps failing provisions from becoming a storm."""

    backoff_base: durations.Seconds = 1.0
    """The wait after the first failed provision; it doubles with each further failure."""
    backoff_cap: durations.Seconds = 60.0
    """The longest wait between attempts; a failing group retries at this rate."""
    failure_threshold: int = Field(5, ge=1)
    """After this many failures in a row the group's status is ``ProvisionFailing``."""


Allocation = flavor.AllocationMethod
"""``{Size}`` or ``{LogicalIDs}`` (a name outside ``Properties``, whose ``flavor`` field
would shadow the module)."""


def _no_probing() -> HealthPolicy:
    return HealthPolicy(interval=0.0)


class Properties(Wire):
    """The default group plugin's ``group.Spec.Properties``."""

    instance: plugin.Spec
    """``{Plugin, Properties}``: the instance plugin and what it provisions."""
    flavor: plugin.Spec
    """``{Plugin, Properties}``: the flavor plugin and what it prepares."""
    allocation: Allocation = Field(default_factory=Allocation)
    """``{Size}`` for cattle or ``{LogicalIDs}`` for pets; exactly one."""
    health: HealthPolicy = Field(default_factory=_no_probing)
    """(ext) Health probing and remediation."""
    update: UpdatePolicy = Field(default_factory=UpdatePolicy)
    """(ext) Rolling-update pace and health gate."""
    scale: ScalePolicy = Field(default_factory=ScalePolicy)
    """(ext) Scale-down order and protection."""
    provision: ProvisionPolicy = Field(default_factory=ProvisionPolicy)
    """(ext) Provisioning backoff and circuit breaker."""

    @property
    def logical_ids(self) -> list[str] | None:
        """The pets' logical IDs, or ``None`` for a scaled group."""
        ids = self.allocation.logical_ids
        return list(ids) if ids else None

    @property
    def size(self) -> int:
        """The declared number of members."""
        ids = self.logical_ids
        return len(ids) if ids is not None else self.allocation.size


def check_id(gid: str) -> group.ID:
    """The first check of CommitGroup."""
    if not gid or not gid.strip():
        raise errors.InvalidError("Group ID must not be blank", field="ID")
    return group.ID(gid)


def parse(properties: Any) -> Properties:
    """Parse and check a group's Properties; ``InvalidError`` names every bad field."""
    try:
        parsed = Properties.model_validate(properties)
    except pydantic.ValidationError as err:
        raise errors.InvalidError(_explain(err), field="Properties") from None
    alloc = parsed.allocation
    # Unlike Go we can tell an explicit {"Size": 0} (scaled to zero) from no allocation.
    if "size" not in alloc.model_fields_set and not alloc.logical_ids:
        raise errors.InvalidError("Allocation must not be blank", field="Properties.Allocation")
    if alloc.size > 0 and alloc.logical_ids:
        raise errors.InvalidError("Only one Allocation method may be used",
                                  field="Properties.Allocation")
    ids = alloc.logical_ids or []
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise errors.InvalidError(
            f"Properties.Allocation.LogicalIDs: each logical ID may appear once, got {dup} twice",
            field="Properties.Allocation.LogicalIDs")
    return parsed


def _explain(err: pydantic.ValidationError) -> str:
    problems = []
    for item in err.errors():
        where = ".".join(["Properties", *(str(part) for part in item["loc"])])
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)
