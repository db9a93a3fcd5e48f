"""Times in the documents the CLI prints: ISO 8601 (:func:`render.iso`), not epoch seconds.

The group plugin sends epoch seconds in its (ext) Status (``Actions[].Time``,
``Instances[].Created``/``Since``, the crash ledger's ``Deaths`` and ``RetryAt``);
:func:`iso_times` rewrites those in a document before ``group describe`` prints it as JSON
or YAML (the tables use :func:`render.iso` too).
"""

from __future__ import annotations

import math
from typing import Any

from infrakit.cli import render

TIME_KEYS = frozenset({"Time", "Created", "Since", "RetryAt"})
"""Keys of a Status whose number is a time (seconds since the epoch)."""
TIME_LIST_KEYS = frozenset({"Deaths"})
"""Keys of a Status whose list holds times."""


def iso_times(data: Any) -> Any:
    """A copy of ``data`` (plain JSON values) with the times of :data:`TIME_KEYS` and
    :data:`TIME_LIST_KEYS` as ISO strings; anything else as it was."""
    if isinstance(data, list):
        return [iso_times(each) for each in data]
    if not isinstance(data, dict):
        return data
    converted: dict[str, Any] = {}
    for key, value in data.items():
        if key in TIME_KEYS and _is_time(value):
            converted[key] = render.iso(value)
        elif key in TIME_LIST_KEYS and isinstance(value, list):
            converted[key] = [render.iso(each) if _is_time(each) else each for each in value]
        else:
            converted[key] = iso_times(value)
    return converted


def _is_time(value: Any) -> bool:
    # 0 is "never" in some fields (RetryAt); it still prints as the epoch, which reads as such.
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and 0 <= value < 1e11)
