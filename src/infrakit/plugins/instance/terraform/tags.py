"""Where a resource type keeps its tags, and putting them there or reading them back (pure).

A :data:`Style` says how: ``map`` (``tags = {k = v}``: AWS, Azure, DigitalOcean…), ``list``
(``tags = ["k:v"]``: SoftLayer, lower-cased as v0.5 did), ``none`` (the type has no tags
attribute, e.g. ``terraform_data``: the tags live only in the plugin's metadata). The plugin
learns it from the provider's schema (:func:`from_schema`); without one, :func:`guess`
uses v0.5's table of VM types, then the shape of a ``tags`` argument in the block.
"""

from __future__ import annotations

from typing import Any, Literal

from infrakit.spi import instance

Style = Literal["map", "list", "none"]
SOFTLAYER = "softlayer_virtual_guest"
_V05_MAP = frozenset({"aws_instance", "azurerm_virtual_machine", "digitalocean_droplet",
                      "google_compute_instance"})


def from_schema(block: Any) -> Style:
    """The style of a resource type from its schema (``providers schema -json``)."""
    attributes = (block or {}).get("block", {}).get("attributes") or {}
    kind = (attributes.get("tags") or {}).get("type")
    if isinstance(kind, list) and len(kind) == 2 and kind[1] == "string":
        if kind[0] == "map":
            return "map"
        if kind[0] in ("list", "set"):
            return "list"
    return "none"


def guess(kind: str, body: dict[str, Any]) -> Style:
    """The style without a schema: v0.5's VM types, else what ``body`` already has."""
    if kind == SOFTLAYER:
        return "list"
    if kind in _V05_MAP:
        return "map"
    present = body.get("tags")
    if isinstance(present, dict):
        return "map"
    if isinstance(present, list):
        return "list"
    return "none"


def put(kind: str, body: dict[str, Any], tags: dict[str, str], *, style: Style) -> None:
    """Merge ``tags`` into the ``tags`` argument of ``body``, a ``kind`` resource (the given
    ones win)."""
    literal = {key: _literal(value) for key, value in tags.items()}
    if style == "map":
        present = body.get("tags")
        body["tags"] = {**(present if isinstance(present, dict) else {}), **literal}
    elif style == "list":
        present = body.get("tags")
        merged = {**_pairs(present if isinstance(present, list) else []), **literal}
        items = [f"{key}:{value}" if value else key for key, value in merged.items()]
        body["tags"] = [item.lower() for item in items] if kind == SOFTLAYER else items


def read(body: Any) -> dict[str, str]:
    """The tags in a resource block: a map, or a list of ``key:value`` (v0.5's reading)."""
    present = body.get("tags") if isinstance(body, dict) else None
    if isinstance(present, dict):
        return {str(key): _plain(str(value)) for key, value in present.items()}
    if isinstance(present, list):
        return {key: _plain(value) for key, value in _pairs(present).items()}
    return {}


def logical_id(tags: dict[str, str]) -> instance.LogicalID | None:
    """v0.5 kept a pet's logical ID in the tag ``LogicalID`` (any case)."""
    for key, value in tags.items():
        if key.lower() == "logicalid":
            return instance.LogicalID(value)
    return None


def _pairs(items: list[Any]) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, _, value = str(item).partition(":")
        pairs[key] = value
    return pairs


def _literal(text: str) -> str:
    return text.replace("${", "$${").replace("%{", "%%{")


def _plain(text: str) -> str:
    return text.replace("$${", "${").replace("%%{", "%{")
