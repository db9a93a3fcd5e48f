"""A group of Terraform-managed instances end to end: infrakit-group-default,
infrakit-flavor-vanilla and infrakit-instance-terraform as their own processes. Each member
is a ``terraform_data`` resource whose create-time local-exec starts a real process and
whose destroy-time local-exec kills it; vanilla's health probe checks that process. The
group converges, heals a member whose process died (replaced as unhealthy) and one whose
resource vanished from Terraform's state (recreated by the plugin's repair), rolls an
update, and DestroyGroup leaves no process, no resource and no file."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from terraform_case import alive, kill_all, properties, terraform_or_skip

from infrakit import testing
from infrakit.rpc import sockets, sync

BIN = pathlib.Path(sys.executable).parent


class Stack:
    def __init__(self, work: pathlib.Path) -> None:
        self.work = work
        self.sockets = pathlib.Path(tempfile.mkdtemp(prefix="iktf-"))
        self.env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(self.sockets),
                    "INFRAKIT_HOME": str(work)}
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for name, argv in (
                ("instance-terraform", ["infrakit-instance-terraform", "--dir",
                                        str(self.work / "tf"), "--batch-window", "300ms",
                                        "--log", "4"]),
                ("flavor-vanilla", ["infrakit-flavor-vanilla", "--log", "2"]),
                ("group", ["infrakit-group-default", "--poll-interval", "500ms", "--log", "3"])):
            with (self.work / f"{name}.log").open("ab") as log:
                self.processes.append(subprocess.Popen(
                    [str(BIN / argv[0]), *argv[1:]], env=self.env, stdout=log, stderr=log,
                    stdin=subprocess.DEVNULL))
            testing.wait_for(lambda n=name: sockets.is_live(self.sockets / n),  # type: ignore[misc]
                             what=f"{name} listening", timeout=30)

    def close(self) -> None:
        testing.stop_processes(self.processes, timeout=10)
        shutil.rmtree(self.sockets, ignore_errors=True)

    def call(self, method: str, params: dict[str, Any]) -> Any:
        return sync.Client(self.sockets / "group", timeout=60.0).call(method, params)

    def members(self, gid: str) -> tuple[bool, dict[str, dict[str, Any]]]:
        found = self.call("Group.DescribeGroup", {"ID": gid})["Description"]
        return bool(found["Converged"]), {m["ID"]: m for m in found["Instances"] or []}

    def terraform(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["terraform", f"-chdir={self.work / 'tf'}", *args],
                              env={**self.env, "TF_CLI_CONFIG_FILE":
                                   str(self.work / "tf" / ".infrakit" / "terraformrc")},
                              capture_output=True, text=True, check=False, timeout=120)

    def log(self) -> str:
        return "\n".join((self.work / f"{name}.log").read_text(errors="replace")[-1500:]
                         for name in ("instance-terraform", "group"))


@pytest.fixture
def stack(tmp_path: pathlib.Path, pids: pathlib.Path) -> Iterator[Stack]:
    terraform_or_skip()
    made = Stack(tmp_path)
    try:
        made.start()
        yield made
    finally:
        made.close()
        kill_all(pids)


def group_spec(gid: str, pids: pathlib.Path, *, value: str) -> dict[str, Any]:
    probe = f"kill -0 $(cat {pids}/$INFRAKIT_INSTANCE_ID.pid)"
    return {"ID": gid, "Properties": {
        "Allocation": {"Size": 3},
        "Instance": {"Plugin": "instance-terraform", "Properties": properties(pids, value=value)},
        "Flavor": {"Plugin": "flavor-vanilla",
                   "Properties": {"Init": ["echo hello"], "Health": {"Command": probe}}},
        "Health": {"Interval": "500ms", "StartupGrace": "2s", "UnhealthyAfter": "1s"}}}


def test_a_terraform_group_converges_heals_rolls_and_is_destroyed(
        stack: Stack, pids: pathlib.Path) -> None:
    stack.call("Group.CommitGroup", {"Spec": group_spec("tf", pids, value="v1"),
                                     "Pretend": False})

    def settled(avoid: set[str] = frozenset()) -> dict[str, dict[str, Any]] | None:  # type: ignore[assignment]
        converged, members = stack.members("tf")
        running = alive(pids)
        if converged and len(members) == 3 and set(members) == set(running) \
                and not set(members) & avoid:
            return members
        return None
    first = testing.wait_for(settled, what="3 converged members with processes", timeout=120)

    # A member's process dies: the health probe fails and the group replaces the member.
    victim = sorted(first)[0]
    os.kill(alive(pids)[victim], signal.SIGKILL)
    healed = testing.wait_for(lambda: settled({victim}), what="the dead member replaced",
                              timeout=120)
    assert len(set(healed) & set(first)) == 2

    # A member's resource vanishes from Terraform's view (and its process with it): the
    # plugin reports it still and its next apply creates it again, with a new process.
    drifted = sorted(healed)[0]
    before = alive(pids)[drifted]
    os.kill(before, signal.SIGKILL)
    removed = stack.terraform("state", "rm", f"terraform_data.{drifted}")
    assert removed.returncode == 0, removed.stderr
    testing.wait_for(lambda: alive(pids).get(drifted, before) != before or None,
                     what="the drifted member re-created", timeout=120)
    assert set(testing.wait_for(settled, what="converged again", timeout=120)) == set(healed)

    # A rolling update replaces every member with one on the new properties.
    stack.call("Group.CommitGroup", {"Spec": group_spec("tf", pids, value="v2"),
                                     "Pretend": False})
    rolled = testing.wait_for(lambda: settled(set(healed)), what="the rolling update done",
                              timeout=180)
    shown = json.loads(stack.terraform("show", "-json").stdout)
    inputs = {r["name"]: r["values"]["input"]
              for r in shown["values"]["root_module"]["resources"] if r["name"] in rolled}
    assert inputs == dict.fromkeys(rolled, "v2")

    assert stack.call("Group.DestroyGroup", {"ID": "tf"})["OK"] is True
    testing.wait_for(lambda: (not alive(pids) and not list((stack.work / "tf").glob(
        "instance-*.tf.json"))) or None, what="every member destroyed", timeout=120)
    left = json.loads(stack.terraform("show", "-json").stdout)
    assert not (left.get("values") or {}).get("root_module", {}).get("resources"), stack.log()
