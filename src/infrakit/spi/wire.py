"""The base of every wire type: frozen, Go field names on the wire, unknown keys kept."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# Words Go spells in capitals inside field names.
_INITIALISMS = {"id": "ID", "ids": "IDs", "apis": "APIs", "api": "API", "sha": "SHA",
                "url": "URL", "http": "HTTP", "tcp": "TCP", "ok": "OK"}


def go_name(name: str) -> str:
    """``logical_ids`` → ``LogicalIDs``: the JSON name Go's encoder gives our field."""
    return "".join(_INITIALISMS.get(part, part.capitalize()) for part in name.split("_"))


def _none_to_empty(value: Any) -> Any:
    # Go marshals a nil map as null; we read it as an empty one.
    return {} if value is None else value


Tags = Annotated[dict[str, str], BeforeValidator(_none_to_empty)]
"""Key/value labels; ``null`` from a Go peer reads as ``{}``."""

Any_ = Any
"""Raw JSON passed through untouched (``Properties`` everywhere)."""


class Wire(BaseModel):
    """A frozen message with Go names on the wire; unknown fields survive a round trip."""

    model_config = ConfigDict(
        frozen=True,
        populate_by_name=True,
        extra="allow",
        alias_generator=go_name,
        use_attribute_docstrings=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON object exactly as a v0.5 peer sends it."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        """Parse a JSON object; a bad one raises ``pydantic.ValidationError``."""
        return cls.model_validate(data)


def omit_if_none() -> Any:
    """A field Go tags ``omitempty``: left out of the JSON when ``None``."""
    return Field(None, exclude_if=_is_none)


def _is_none(value: Any) -> bool:
    return value is None
