"""A group of local web servers end to end: infrakit-instance-process runs each member,
flavor-vanilla probes it over HTTP, the group replaces the dead and the unhealthy."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys
import time
from typing import Any

from stack import Stack, free_ports, wait_for


def web(stack: Stack, gid: str, size: int, *, base_port: int) -> dict[str, Any]:
    """Members serve ``<work>/www/<port>/`` on their own port; healthy while ``ok`` is there."""
    www = stack.work / "www"
    serve = f"{www}/{{{{ spec.Tags.port }}}}"
    return {"ID": gid, "Properties": {
        "Instance": {"Plugin": "instance-process", "Properties": {"StopTimeout": "2s"}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {
            "Tags": {"port": f"{{{{ {base_port} + index.Sequence }}}}"},
            "Init": [f"mkdir -p {serve} && touch {serve}/ok",
                     f"exec {sys.executable} -m http.server {{{{ spec.Tags.port }}}} "
                     f"--bind 127.0.0.1 --directory {serve}"],
            "Health": {"HTTP": "http://127.0.0.1:{{ instance.Tags['port'] }}/ok",
                       "Timeout": "1s"}}},
        "Allocation": {"Size": size},
        "Health": {"Interval": "200ms", "StartupGrace": "2s", "UnhealthyAfter": "1s",
                   "MaxUnhealthy": 1}}}


def records(stack: Stack) -> dict[str, dict[str, Any]]:
    """instance-process's state records, by instance ID."""
    found = {}
    for path in (stack.work / "procs").glob("*.json"):
        try:
            found[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return found


def healthy_members(stack: Stack, gid: str, size: int) -> list[dict[str, Any]]:
    """Wait until ``gid`` has ``size`` members, converged; return them."""
    def check() -> list[dict[str, Any]] | None:
        described = stack.describe(gid)
        members = described["Instances"] or []
        return members if described["Converged"] and len(members) == size else None
    return wait_for(check, what=f"{size} members of {gid}", timeout=30)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return pathlib.Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def test_a_killed_member_is_replaced(processes: Stack) -> None:
    processes.commit(web(processes, "killed", 2, base_port=free_ports(8)))
    members = healthy_members(processes, "killed", 2)
    victim = members[0]["ID"]
    os.kill(records(processes)[victim]["Pid"], signal.SIGKILL)
    after = wait_for(lambda: (found := {m["ID"] for m in processes.members("killed")})
                     and victim not in found and len(found) == 2 and found,
                     what="the killed member replaced")
    assert members[1]["ID"] in after
    processes.cli("group", "destroy", "killed")


def test_an_unhealthy_member_is_replaced_after_unhealthy_after(processes: Stack) -> None:
    processes.commit(web(processes, "sick", 2, base_port=free_ports(8)))
    members = healthy_members(processes, "sick", 2)
    victim = members[0]
    (processes.work / "www" / victim["Tags"]["port"] / "ok").unlink()  # now answers 404
    turned = time.monotonic()
    wait_for(lambda: victim["ID"] not in {m["ID"] for m in processes.members("sick")},
             what="the unhealthy member replaced", timeout=30)
    assert time.monotonic() - turned >= 1.0  # UnhealthyAfter
    members = healthy_members(processes, "sick", 2)
    assert victim["ID"] not in {m["ID"] for m in members}
    messages = [a["Message"] for a in processes.describe("sick")["Status"]["Actions"]]
    assert any(m.startswith(f"replaced {victim['ID']} because unhealthy for ")
               for m in messages), messages
    processes.cli("group", "destroy", "sick")


def test_destroy_stops_every_member_process(processes: Stack) -> None:
    processes.commit(web(processes, "gone", 3, base_port=free_ports(8)))
    members = healthy_members(processes, "gone", 3)
    pids = [records(processes)[m["ID"]]["Pid"] for m in members]
    assert all(alive(pid) for pid in pids)
    assert processes.cli("group", "destroy", "gone").stdout.strip() == "Destroy gone initiated"
    wait_for(lambda: not any(alive(pid) for pid in pids), what="every member stopped", timeout=5)
    assert not {m["ID"] for m in members} & set(records(processes))
