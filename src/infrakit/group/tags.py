"""The tags the group controller owns on every member, and reading them.

``infrakit.group=<id>`` is membership (every listing is DescribeInstances by it);
``infrakit.config_sha=<hash>`` says which config made the member; ``bootstrap`` there
means "adopt me". These names are the v0.5 wire contract.
"""

from __future__ import annotations

from infrakit.spi import instance

GROUP = "infrakit.group"
"""Membership: the group's ID."""
CONFIG_SHA = "infrakit.config_sha"
"""The hash of the config that made the member (see :mod:`infrakit.group.hashing`)."""
BOOTSTRAP = "bootstrap"
"""A ``config_sha`` value asking the controller to adopt the instance with its current hash."""


def owned_by(member: instance.Description, gid: str) -> bool:
    """True when the member carries the group's tag: nothing else is ever destroyed."""
    return member.tags.get(GROUP) == gid


def config_sha(member: instance.Description) -> str:
    """The member's config hash (``""`` when untagged)."""
    return member.tags.get(CONFIG_SHA, "")


def is_current(member: instance.Description, sha: str) -> bool:
    """True when the member runs config ``sha`` (a bootstrap member counts as current)."""
    return member.tags.get(CONFIG_SHA, "") in (sha, BOOTSTRAP)


def protected(member: instance.Description, tag: str) -> bool:
    """True when the member's protection tag is ``"true"``."""
    return bool(tag) and member.tags.get(tag, "").lower() == "true"
