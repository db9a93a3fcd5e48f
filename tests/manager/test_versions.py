"""The store's versions reach the group's reasons: a rolling update committed through a
real manager (processes: two managers, their fenced backends, instance-file,
flavor-vanilla) says ``replaced X (v1 → v2, rolling update)``, the members' rows name their
version, and so they do under the next leader (its take-over passes the version too)."""

from __future__ import annotations

from typing import Any

from local_cluster import until
from pair_cluster import Pair

from infrakit.spi import group

GID = group.ID("web")


def spec(note: str) -> group.Spec:
    return group.Spec.from_wire({"ID": GID, "Properties": {
        "Allocation": {"Size": 2},
        "Instance": {"Plugin": "instance-file", "Properties": {"Note": note}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Init": [f"echo {note}"]}}}})


async def test_a_rolling_update_through_a_manager_names_the_store_versions(
        pair: Pair) -> None:
    pair.start("instance-file")
    manager = pair.plugins.group("mgr-1")
    await manager.commit_group(spec("first"), False)

    async def converged(manager: str = "mgr-1") -> dict[str, Any] | None:
        found = await pair.describe(manager, GID)
        return found if found["Phase"] == "Converged" else None

    first = await until(converged, timeout=30, what="v1 converged")
    old = sorted(m["ID"] for m in first["Instances"])
    assert [m["Version"] for m in first["Instances"]] == ["1", "1"]

    await manager.commit_group(spec("second"), False)

    async def rolled() -> dict[str, Any] | None:
        found = await converged()
        return found if found and not set(old) & {m["ID"] for m in found["Instances"]} \
            else None

    second = await until(rolled, timeout=30, what="v2 rolled out")
    replaced = sorted(a["Message"] for a in second["Actions"] if a["Kind"] == "replaced")
    assert replaced == [f"replaced {iid} (v1 → v2, rolling update)" for iid in old]
    assert [m["Version"] for m in second["Instances"]] == ["2", "2"]

    pair.processes.kill9("mgr-1")
    pair.lead("mgr-2")

    def rows(found: dict[str, Any]) -> list[tuple[str, str | None]]:
        return [(m["ID"], m["Version"]) for m in found["Instances"]]

    under_next = await until(lambda: converged("mgr-2"), timeout=30, what="v2 under mgr-2")
    assert rows(under_next) == rows(second)  # the same members, still named v2
