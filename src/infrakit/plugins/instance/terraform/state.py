"""Terraform's state as ``show -json`` gives it, read for what the plugin asks of it (pure).

Describe reports an instance with the attributes its resource has here (the provider's
view, not the file's promise); a batch (:mod:`.apply`) decides from here whether each
provision or destroy took effect; and the metadata here restores instance files a host
does not have (:func:`.document.restore`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infrakit.plugins.instance.terraform import document, workdir
from infrakit.spi import instance


@dataclass(frozen=True, slots=True)
class Resource:
    """One managed resource of the root module (one per ``count``/``for_each`` key)."""

    address: str
    """``type.name`` (without the key)."""
    values: dict[str, Any]
    tainted: bool


class State:
    """The resources in one ``show -json`` answer (``{}``: no state yet)."""

    def __init__(self, shown: dict[str, Any] | None = None) -> None:
        module = ((shown or {}).get("values") or {}).get("root_module") or {}
        self.resources: dict[str, list[Resource]] = {}
        for item in module.get("resources") or []:
            if item.get("mode") != "managed":
                continue
            address = f"{item.get('type')}.{item.get('name')}"
            self.resources.setdefault(address, []).append(Resource(
                address=address, values=dict(item.get("values") or {}),
                tainted=bool(item.get("tainted"))))

    def created(self, address: str) -> bool:
        """Whether ``address`` exists and is not tainted (a create that failed half-way)."""
        found = self.resources.get(address)
        return bool(found) and not any(resource.tainted for resource in found or [])

    def values(self, address: str) -> dict[str, Any] | None:
        found = self.resources.get(address)
        return found[0].values if found else None

    def of(self, iid: str) -> list[str]:
        """The addresses of instance ``iid``'s resources: named ``iid``, ``iid-*`` or our
        metadata's ``infrakit-iid``."""
        return sorted(address for address in self.resources
                      if _owner(address.split(".", 1)[1]) == iid)

    def instances(self) -> set[instance.ID]:
        """The instances with any resource here."""
        owners = {_owner(address.split(".", 1)[1]) for address in self.resources}
        return {instance.ID(owner) for owner in owners if owner}

    def metadata(self) -> dict[instance.ID, document.Metadata]:
        """Our metadata resources, by instance."""
        found = {}
        for address, resources in self.resources.items():
            kind, name = address.split(".", 1)
            if kind != document.META_TYPE or not name.startswith(document.META_PREFIX):
                continue
            iid = name[len(document.META_PREFIX):]
            meta = document.from_input(resources[0].values.get("input"))
            if meta is not None and workdir.ID.match(iid):
                found[instance.ID(iid)] = meta
        return found


def _owner(name: str) -> str:
    """The instance a resource name belongs to (``""``: none)."""
    if name.startswith(document.META_PREFIX):
        name = name[len(document.META_PREFIX):]
    head = name.split("-", 2)
    if len(head) >= 2 and head[0] == "instance" and head[1].isdigit():
        return f"instance-{head[1]}"
    return ""
