"""What a manager does on failover, by hand: CommitGroup with the saved state as Resume."""

from __future__ import annotations

from typing import Any

from stack import Stack

from infrakit.rpc import sync


def commit_with_resume(stack: Stack, spec: dict[str, Any], resume: dict[str, Any]) -> str:
    """Group.CommitGroup of ``spec`` with ``resume`` (a Status.Update a manager saved)."""
    client = sync.Client(stack.sockets / "group", timeout=10.0)
    answer = client.call("Group.CommitGroup", {"Spec": spec, "Pretend": False,
                                               "Resume": resume})
    return str(answer["Details"])
