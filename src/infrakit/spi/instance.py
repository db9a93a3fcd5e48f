"""The Instance interface (v0.5.0): provision, label, destroy and list one kind of resource.

Instance plugins know nothing of groups; the group controller finds its members by tags.
"""

from __future__ import annotations

from typing import Any, NewType, Protocol

from pydantic import Field

from infrakit.spi.handshake import Interface
from infrakit.spi.wire import Tags, Wire, omit_if_none

INTERFACE = Interface(name="Instance", version="0.5.0")

ID = NewType("ID", str)
"""An instance's identifier, chosen by the instance plugin."""

LogicalID = NewType("LogicalID", str)
"""A stable name for a pet (a fixed IP, a hostname), chosen by the user."""


class Attachment(Wire):
    """Something attached to an instance at provision time (a volume, a network card)."""

    id: str
    """The attached resource's identifier."""
    type: str = ""
    """What kind of resource it is."""


class Spec(Wire):
    """What to provision: the plugin's own properties plus what the flavor prepared."""

    properties: Any = None
    """Raw plugin-specific JSON, passed through."""
    tags: Tags = Field(default_factory=dict)
    """Labels to put on the instance; the group controller finds its members by these."""
    init: str = ""
    """The boot script the flavor prepared."""
    logical_id: LogicalID | None = None
    """The pet's identity, when the group allocates by logical IDs."""
    attachments: list[Attachment] | None = None
    """Resources to attach."""


class Description(Wire):
    """One instance as the plugin sees it now."""

    id: ID
    """The instance's identifier."""
    logical_id: LogicalID | None = None
    """Its pet identity, if any."""
    tags: Tags = Field(default_factory=dict)
    """Its labels."""
    properties: Any = omit_if_none()
    """Plugin-specific detail, sent only when the caller asked for it."""


class Plugin(Protocol):
    """What every instance plugin implements (methods may be sync or async)."""

    async def validate(self, properties: Any) -> None:
        """Raise ``InvalidError`` naming the field when ``properties`` cannot be provisioned."""

    async def provision(self, spec: Spec) -> ID | None:
        """Create one instance; return its ID."""

    async def label(self, instance: ID, labels: dict[str, str]) -> None:
        """Merge ``labels`` into the instance's tags."""

    async def destroy(self, instance: ID) -> None:
        """Destroy the instance."""

    async def describe_instances(
        self, tags: dict[str, str], properties: bool = False
    ) -> list[Description]:
        """The instances carrying every one of ``tags``."""


# Messages: the params and results of each method, exactly as on the wire.

class ValidateRequest(Wire):
    type: str = ""
    """The sub-object addressed (``""``: the default one)."""
    properties: Any = None
    """The properties to check."""


class OKResponse(Wire):
    type: str = ""
    """Echo of the request's type."""
    ok: bool = True
    """Always true on success; errors travel as JSON-RPC errors."""


class ProvisionRequest(Wire):
    type: str = ""
    """The sub-object addressed."""
    spec: Spec
    """What to provision."""


class ProvisionResponse(Wire):
    type: str = ""
    """Echo of the request's type."""
    id: ID | None = None
    """The new instance."""


class LabelRequest(Wire):
    type: str = ""
    """The sub-object addressed."""
    instance: ID
    """Which instance."""
    labels: Tags = Field(default_factory=dict)
    """Tags to merge in."""


class DestroyRequest(Wire):
    type: str = ""
    """The sub-object addressed."""
    instance: ID
    """Which instance."""


class DescribeRequest(Wire):
    type: str = ""
    """The sub-object addressed."""
    tags: Tags = Field(default_factory=dict)
    """Only instances with all of these tags."""
    properties: bool = False
    """Whether to include each instance's properties."""


class DescribeResponse(Wire):
    type: str = ""
    """Echo of the request's type."""
    descriptions: list[Description] = Field(default_factory=list)
    """The matching instances."""
