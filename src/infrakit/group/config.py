"""The schema of the default group plugin's ``group.Spec.Properties``, and its validation.

``{Instance: {Plugin, Properties}, Flavor: {Plugin, Properties}, Allocation: {Size} |
{LogicalIDs}}`` as in InfraKit v0.5, plus our optional sections (``MaxSize``, ``Health``,
``Update``, ``Scale``, ``Provision``) whose defaults reproduce the original's behaviour.

Strict: a key that neither v0.5 nor we define, at the top of the spec or in any section, is
refused naming its path and the closest known key (``Properties.Helth: unknown field; did
you mean Health?``), because a typo silently ignored is a policy silently not applied. The
``Instance.Properties`` and ``Flavor.Properties`` blobs are not looked into: they belong to
their plugin, whose Validate judges them. The controller parses every commit with
:func:`parse_spec`; SetSize and the CLI check a new size with :func:`check_size`.
"""

from __future__ import annotations

import enum
import math
from typing import Annotated, Any

import pydantic
from pydantic import BeforeValidator, Field

from infrakit import durations, errors, validation
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


class CrashLoopPolicy(Wire):
    """``Health.CrashLoop``: when members that die young make a crash loop, and its backoff.

    A member dies young when it vanishes or is replaced as unhealthy before it was ever
    Healthy (when probed) or within ``YoungAge`` of its creation. Past ``Threshold`` such
    deaths within ``Window`` (per logical ID for pets, per group for cattle) the slot
    waits ``BackoffBase``, doubling with each further death up to ``MaxBackoff``, before
    it is re-created, and the group is ``CrashLooping``.
    """

    threshold: int = Field(3, ge=1)
    """Young deaths within ``Window`` that make a crash loop."""
    window: durations.Seconds = 600.0
    """How far back young deaths count."""
    young_age: durations.Seconds = 60.0
    """A member that dies before it is this old died young."""
    backoff_base: durations.Seconds = 10.0
    """The wait before re-creating once the threshold is reached; doubles with each death."""
    max_backoff: durations.Seconds = 300.0
    """The longest wait."""


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
    crash_loop: CrashLoopPolicy = Field(default_factory=CrashLoopPolicy)
    """(ext) When members that die young make a crash loop, and how it backs off."""


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
    max_size: int | None = Field(None, ge=0)
    """(ext) The most members this group may ever have: a spec whose Size or number of
    LogicalIDs is larger is refused, and so is a SetSize past it. No limit when unset."""
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


SPEC_KEYS = ("ID", "Properties")
"""The keys of a group spec (v0.5's ``group.Spec``); any other is refused."""

MAX_LOGICAL_ID = 253
"""The longest logical ID (a DNS name's limit): it becomes a tag value and a file name."""


def check_id(gid: str) -> group.ID:
    """The first check of CommitGroup."""
    if not gid or not gid.strip():
        raise errors.InvalidError("Group ID must not be blank", field="ID")
    return group.ID(gid)


def parse_spec(spec: group.Spec) -> tuple[group.ID, Properties]:
    """Check a committed spec as the controller does, in the original's order: the ID, then
    the keys and Properties; ``InvalidError`` names every bad field."""
    gid = check_id(spec.id)
    extra = [validation.unknown_field(str(key), SPEC_KEYS, path=str(key))
             for key in spec.model_extra or {}]
    return gid, _checked(spec.properties, found=extra)


def parse(properties: Any) -> Properties:
    """Parse and check a group's Properties; ``InvalidError`` names every bad field."""
    return _checked(properties, found=[])


def _checked(properties: Any, *, found: list[validation.Problem]) -> Properties:
    found = [*found, *validation.unknown_fields(Properties, properties, root="Properties")]
    try:
        parsed = Properties.model_validate(properties)
    except pydantic.ValidationError as err:
        raise validation.invalid(
            validation.merge(found, validation.problems(err, root="Properties"))) from None
    if found:
        raise validation.invalid(found)
    alloc = parsed.allocation
    # Unlike Go we can tell an explicit {"Size": 0} (scaled to zero) from no allocation.
    if "size" not in alloc.model_fields_set and not alloc.logical_ids:
        raise errors.InvalidError("Allocation must not be blank", field="Properties.Allocation")
    if alloc.size > 0 and alloc.logical_ids:
        raise errors.InvalidError("Only one Allocation method may be used",
                                  field="Properties.Allocation")
    found = _logical_id_problems(list(alloc.logical_ids or []))
    if found:
        raise validation.invalid(found)
    check_size(parsed, parsed.size)
    return parsed


def _logical_id_problems(ids: list[str]) -> list[validation.Problem]:
    where = "Properties.Allocation.LogicalIDs"
    found = [validation.Problem(f"{where}[{index}]", f"{lid!r} {reason}")
             for index, lid in enumerate(ids)
             if (reason := logical_id_problem(lid)) is not None]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        found.append(validation.Problem(where, f"each logical ID may appear once, got {dup} "
                                               "twice"))
    return found


def logical_id_problem(lid: str) -> str | None:
    """Why ``lid`` cannot be a logical ID (it names a member: a tag value, a file, a host),
    or ``None`` when it can."""
    if not lid:
        return "is empty"
    if any(char.isspace() for char in lid):
        return "contains whitespace"
    if "/" in lid:
        return "contains '/'"
    if lid.startswith("."):
        return "starts with '.'"
    if len(lid) > MAX_LOGICAL_ID:
        return f"is {len(lid)} characters long; at most {MAX_LOGICAL_ID} are allowed"
    return None


def check_size(spec: group.Spec | Properties, size: int) -> None:
    """Refuse ``size`` members for the group of ``spec`` (a spec as committed or its parsed
    Properties) when it is over the group's ``MaxSize``. Called by :func:`parse` and by
    SetSize, and usable by the CLI before it asks for a big change."""
    props = spec if isinstance(spec, Properties) else parse(spec.properties)
    if props.max_size is not None and size > props.max_size:
        what = "LogicalIDs" if props.logical_ids is not None else "Size"
        raise errors.InvalidError(
            f"Properties.Allocation.{what}: {size} members is more than this group's MaxSize "
            f"of {props.max_size}; raise Properties.MaxSize to allow it",
            field=f"Properties.Allocation.{what}")
