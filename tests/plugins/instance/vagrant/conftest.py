"""Fixtures of instance-vagrant's tests: a fake ``vagrant`` for the logic, and the real one on
a private dockerd (``privatedocker``, the docker tests' engine: own network namespace,
images built locally, nothing pulled) for the proof."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "docker"))

import fakevagrant  # beside this file
import privatedocker  # the docker tests' private engine, from their directory
import realvagrant

from infrakit import testing
from infrakit.plugins.instance.vagrant import commands, plugin


@pytest.fixture
def fake(tmp_path: pathlib.Path) -> fakevagrant.Fake:
    """A fake ``vagrant`` (a Python script) and its controls."""
    return fakevagrant.Fake(tmp_path / "fake")


@pytest.fixture
async def faked(tmp_path: pathlib.Path, fake: fakevagrant.Fake) -> AsyncIterator[plugin.Plugin]:
    """instance-vagrant on the fake ``vagrant``, with short timeouts."""
    vagrant = commands.Vagrant(str(fake.binary), parallel=4, environ=fake.environ(),
                               timeouts=commands.Timeouts(up=3.0, destroy=3.0, status=3.0))
    subject = plugin.Plugin(tmp_path / "machines", vagrant=vagrant)
    try:
        yield subject
    finally:
        await subject.close()


@pytest.fixture(scope="session")
def dockerd() -> Iterator[privatedocker.Dockerd]:
    """A private dockerd in its own network namespace, with ``privatedocker.IMAGE``."""
    reason = realvagrant.missing()
    if reason is not None:
        testing.missing_engine(f"vagrant tests: {reason}")  # make test fails, a developer skips
    engine = privatedocker.Dockerd()
    try:
        engine.start()
        privatedocker.build_busybox_image(engine, privatedocker.IMAGE)
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="session")
def vagrant_env(dockerd: privatedocker.Dockerd) -> Iterator[dict[str, str]]:
    """The environment real ``vagrant`` runs in: the private engine, a temp ``VAGRANT_HOME``
    (set up once here, so that no test's first call pays for it), no version checks."""
    home = tempfile.mkdtemp(prefix="ikv-home-")
    environ = {**os.environ, "DOCKER_HOST": dockerd.url, "VAGRANT_HOME": home,
               "VAGRANT_CHECKPOINT_DISABLE": "1"}
    try:
        subprocess.run(["vagrant", "global-status"], env=environ, capture_output=True,
                       timeout=120, check=True)
        yield environ
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
async def real(tmp_path: pathlib.Path, dockerd: privatedocker.Dockerd,
               vagrant_env: dict[str, str]) -> AsyncIterator[plugin.Plugin]:
    """instance-vagrant on real Vagrant and the private engine; every container it made is
    removed after the test."""
    subject = plugin.Plugin(tmp_path / "machines",
                            vagrant=commands.Vagrant(parallel=3, environ=vagrant_env))
    try:
        yield subject
    finally:
        await subject.close()
        realvagrant.remove_containers(dockerd)
