"""A committed group as the controller holds it: the spec as committed, parsed, hashed.

The controller makes one per commit (:func:`make`); DestroyInstances shrinks one by the
members it removed (:func:`resized`). ``spec`` is what InspectGroups returns, unknown
keys included.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from infrakit.group import config, hashing
from infrakit.spi import group


@dataclass(frozen=True, slots=True)
class Target:
    """A group as committed."""

    gid: group.ID
    spec: group.Spec
    """As committed (returned by InspectGroups)."""
    props: config.Properties
    """Parsed and checked."""
    sha: str
    """The config hash of its members."""


def make(spec: group.Spec) -> Target:
    """Check and parse a spec (``InvalidError`` with the original's messages)."""
    gid, props = config.parse_spec(spec)
    return Target(gid=gid, spec=spec, props=props, sha=hashing.config_sha(props))


def resized(target: Target, size: int) -> Target:
    """The same group with ``Allocation.Size`` set to ``size`` (cattle only)."""
    raw = copy.deepcopy(target.spec.properties) if isinstance(target.spec.properties, dict) else {}
    raw["Allocation"] = {**(raw.get("Allocation") or {}), "Size": size}
    allocation = target.props.allocation.model_copy(update={"size": size})
    return Target(gid=target.gid, spec=target.spec.model_copy(update={"properties": raw}),
                  props=target.props.model_copy(update={"allocation": allocation}),
                  sha=target.sha)
