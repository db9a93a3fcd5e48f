"""Fixtures of the zookeeper flavor's tests: one plugin stack per module, and a fresh
3-member ensemble per test (freed and killed after it, also when the test fails)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
import zkstack

from infrakit import testing


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zkstack.Stack]:
    reason = zkstack.missing()
    if reason is not None:
        testing.missing_engine(f"zookeeper tests: {reason}")
    with zkstack.running(tmp_path_factory.mktemp("zk")) as started:
        yield started


@pytest.fixture
def three(stack: zkstack.Stack, request: pytest.FixtureRequest,
          tmp_path: pathlib.Path) -> Iterator[zkstack.Ensemble]:
    """A 3-member ensemble (127.0.0.11-13) committed and serving with a quorum; freed and
    its members killed at the end. Parametrized indirectly, the flavor properties to add."""
    gid = f"zk-{request.node.name.removeprefix('test_')[:30]}"
    made = zkstack.Ensemble(stack, gid, zkstack.ADDRESSES[:3], testing.free_ports(3), tmp_path,
                            getattr(request, "param", {}))
    try:
        assert stack.commit(made.spec()) == f"Committed {gid}: Managing 3 instances"
        testing.wait_for(lambda: zkstack.quorum(made.lids, made.client_port),
                         what="a quorum of 3", timeout=60)
        yield made
    finally:
        stack.free(gid)
