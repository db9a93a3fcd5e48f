"""Environment variables that tell a process which instance it runs for.

Set for ``instance-process`` instances and for health probe commands:
``INFRAKIT_INSTANCE_ID``, ``INFRAKIT_LOGICAL_ID`` (pets only) and one ``INFRAKIT_TAG_<KEY>`` per
tag, the key upper-cased with every character other than a letter or digit made ``_``
(``infrakit.group`` → ``INFRAKIT_TAG_INFRAKIT_GROUP``, ``port`` → ``INFRAKIT_TAG_PORT``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NOT_NAME = re.compile(r"[^A-Za-z0-9]")


def for_instance(iid: str, *, logical_id: str | None, tags: Mapping[str, str]) -> dict[str, str]:
    """The variables describing instance ``iid``."""
    variables = {f"INFRAKIT_TAG_{tag_name(key)}": value for key, value in sorted(tags.items())}
    variables["INFRAKIT_INSTANCE_ID"] = iid
    if logical_id:
        variables["INFRAKIT_LOGICAL_ID"] = logical_id
    return variables


def tag_name(key: str) -> str:
    """``infrakit.group`` → ``INFRAKIT_GROUP``."""
    return _NOT_NAME.sub("_", key).upper()
