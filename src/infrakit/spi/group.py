"""The Group interface (v0.1.0, and 0.1.1 with DestroyInstances/Size/SetSize).

A group plugin keeps groups at their declared state. ``Spec.properties`` is the group
plugin's own schema (for the default plugin: Instance, Flavor, Allocation and our policies).
"""

from __future__ import annotations

from typing import Any, NewType, Protocol

from pydantic import Field

from infrakit.spi import instance
from infrakit.spi.handshake import Interface
from infrakit.spi.wire import Wire, omit_if_none

INTERFACE = Interface(name="Group", version="0.1.0")
INTERFACE_1_1 = Interface(name="Group", version="0.1.1")
"""Adds DestroyInstances, Size and SetSize; advertised beside 0.1.0."""

ID = NewType("ID", str)
"""A group's identifier."""


class Spec(Wire):
    """A group as committed: its ID and the group plugin's properties."""

    id: ID
    """The group's identifier."""
    properties: Any = None
    """Raw JSON for the group plugin."""


class Description(Wire):
    """A group's members now, and whether it has reached its declared state."""

    instances: list[instance.Description] = Field(default_factory=list)
    """The members."""
    converged: bool = False
    """True when nothing is in flight and the members match the spec."""
    status: Any = omit_if_none()
    """(ext) The controller's status and the reasons for its recent actions; v0.5 peers
    ignore it."""


class Plugin(Protocol):
    """What every group plugin implements."""

    async def commit_group(self, spec: Spec, pretend: bool) -> str:
        """Start (or plan, when ``pretend``) managing the group; return the plan's text."""

    async def free_group(self, gid: ID) -> None:
        """Stop managing the group and leave its instances."""

    async def describe_group(self, gid: ID) -> Description:
        """The group's members now."""

    async def destroy_group(self, gid: ID) -> None:
        """Destroy every member, then forget the group."""

    async def inspect_groups(self) -> list[Spec]:
        """The specs of every managed group."""

    async def destroy_instances(self, gid: ID, instances: list[instance.ID]) -> None:
        """Destroy these members (0.1.1); the group does not replace them."""

    async def size(self, gid: ID) -> int:
        """The group's target size (0.1.1)."""

    async def set_size(self, gid: ID, size: int) -> None:
        """Change the group's target size (0.1.1)."""


class CommitRequest(Wire):
    spec: Spec
    """The group to commit."""
    pretend: bool = False
    """Only say what would happen."""
    resume: Any = omit_if_none()
    """(ext) A rolling update's saved state for the controller to continue (failover)."""
    version: str | None = omit_if_none()
    """(ext) The spec's version label, e.g. the manager's history number ``"3"``: named in
    the group's action reasons (``v1 → v2``). Left out when unset; v0.5 peers ignore it."""


class CommitResponse(Wire):
    details: str = ""
    """The plan's text, e.g. ``Managing 3 instances``."""


class IDRequest(Wire):
    """Params of FreeGroup, DestroyGroup, DescribeGroup and Size."""

    id: ID
    """Which group."""


class OKResponse(Wire):
    ok: bool = True
    """Always true on success."""


class DescribeResponse(Wire):
    description: Description
    """The group's members."""


class InspectResponse(Wire):
    groups: list[Spec] | None = None
    """Every managed group's spec; ``null`` when there are none (as v0.5 sends it)."""


class DestroyInstancesRequest(Wire):
    id: ID
    """Which group."""
    instances: list[instance.ID] = Field(default_factory=list)
    """The members to destroy."""


class SizeResponse(Wire):
    id: ID
    """Which group."""
    size: int = Field(0, ge=0)
    """Its target size."""


class SetSizeRequest(Wire):
    id: ID
    """Which group."""
    size: int = Field(ge=0)
    """The new target size."""


class Empty(Wire):
    """Params of calls that take none (``{}``)."""


class WakeRequest(Wire):
    """(ext) Params of Group.Wake: reconcile one group now (``""``: every group)."""

    id: str = ""
    """Which group; empty for all."""
