"""Fixtures of the swarm flavor's tests: a stack of instance-host, flavor-swarm and the group
plugin as processes, hosts each running their own dockerd; everything removed afterwards."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Iterator

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parents[3] / "e2e"))
sys.path.insert(0, str(pathlib.Path(__file__).parent))
import swarmstack  # found through the line above

from infrakit import testing


@pytest.fixture
def swarm_stack(tmp_path: pathlib.Path) -> Iterator[swarmstack.SwarmStack]:
    reason = swarmstack.missing()
    if reason is not None:
        testing.missing_engine(f"swarm tests: {reason}")
    with swarmstack.running(tmp_path) as started:
        yield started
