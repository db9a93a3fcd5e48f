"""Event-driven wake-up end to end: instance-file tells the group plugin (Group.Wake) that
someone deleted an instance file, so the group heals long before its next poll."""

from __future__ import annotations

import os
import time

from stack import Stack, cattle, settled


def test_a_deleted_file_wakes_the_group_before_its_next_poll(notifying: Stack) -> None:
    notifying.commit(cattle("woken", 3))
    before = settled(notifying, "woken", 3)
    gone = sorted(before)[0]
    deleted = time.monotonic()
    os.unlink(notifying.work / "files" / gone)
    after = settled(notifying, "woken", 3, timeout=10)  # the poll is a minute away
    assert time.monotonic() - deleted < 10
    assert gone not in after and set(before) - {gone} < set(after)
