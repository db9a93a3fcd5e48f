"""``plugin.Spec``: a reference to a plugin and the properties meant for it."""

from __future__ import annotations

from typing import Any

from infrakit.spi.wire import Wire


class Spec(Wire):
    """``{Plugin, Properties}``: as in the manager's store and a group's Instance/Flavor."""

    plugin: str
    """A plugin name, possibly with a sub-type: ``instance-file/us-east``."""
    properties: Any = None
    """Raw JSON for that plugin."""
