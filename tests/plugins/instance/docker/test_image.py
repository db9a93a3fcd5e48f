"""`make image`: the project as an image built on the engine from Debian packages and our
wheel (nothing pulled), its plugins run from it as containers with the plugins directory
mounted, and driven from the host's CLI through their sockets."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import privatedocker
import pytest

from infrakit import testing

pytestmark = pytest.mark.docker

PROJECT = pathlib.Path(__file__).resolve().parents[4]
IMAGE = "ik-image:test"
CLI = pathlib.Path(sys.executable).parent / "infrakit"


@pytest.fixture(scope="module")
def image(dockerd: privatedocker.Dockerd) -> Iterator[str]:
    """The project's image, made by `make image` on the private engine."""
    if shutil.which("make") is None:
        testing.missing_engine("image test: make not found")
    built = subprocess.run(
        ["make", "--no-print-directory", "image", f"IMAGE={IMAGE}"],
        cwd=PROJECT, env={**os.environ, "DOCKER_HOST": dockerd.url}, capture_output=True,
        text=True, timeout=900, check=False)
    assert built.returncode == 0, f"make image failed:\n{built.stdout}\n{built.stderr}"
    assert built.stdout.strip().splitlines()[-1] == IMAGE
    try:
        yield IMAGE
    finally:
        dockerd.docker("rmi", "-f", IMAGE, IMAGE.split(":")[0] + ":latest", check=False)


@pytest.fixture
def containers(dockerd: privatedocker.Dockerd) -> Iterator[list[str]]:
    """Names of the containers a test starts; all removed after it."""
    names: list[str] = []
    try:
        yield names
    finally:
        if names:
            dockerd.docker("rm", "-f", *names, check=False)


def cli(*args: str, plugins: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "INFRAKIT_PLUGINS_DIR": str(plugins)},
                          check=False)


def start_plugin(dockerd: privatedocker.Dockerd, containers: list[str], *command: str,
                 plugins: pathlib.Path, volumes: tuple[str, ...] = ()) -> None:
    """One plugin from the image, as the README runs it: no network (plugins speak on unix
    sockets), the host's pid namespace (so the pid file names a host pid and `infrakit
    plugin stop` works from the host), the plugins directory mounted."""
    name = f"ik-{command[0].removeprefix('infrakit-')}"
    mounts = [arg for volume in (f"{plugins}:/run/infrakit/plugins", *volumes)
              for arg in ("-v", volume)]
    dockerd.docker("run", "-d", "--name", name, "--network", "none", "--pid", "host",
                   *mounts, IMAGE, *command)
    containers.append(name)


def exit_state(dockerd: privatedocker.Dockerd, name: str) -> list[str]:
    return dockerd.docker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                          name).stdout.split()


def test_image_has_the_project_and_no_network_needs(
        dockerd: privatedocker.Dockerd, image: str) -> None:
    done = dockerd.docker("run", "--rm", "--network", "none", image, "infrakit", "--version")
    assert done.stdout.startswith("infrakit 0.1.0")
    labels = json.loads(dockerd.docker("image", "inspect", "--format",
                                       "{{json .Config.Labels}}", image).stdout)
    assert labels["org.opencontainers.image.version"] == "0.1.0"


def test_plugins_from_the_image_keep_a_group_driven_from_the_host(
        dockerd: privatedocker.Dockerd, image: str, containers: list[str]) -> None:
    plugins = pathlib.Path(tempfile.mkdtemp(prefix="ik-img-"))
    data = pathlib.Path(tempfile.mkdtemp(prefix="ik-img-data-"))
    try:
        start_plugin(dockerd, containers, "infrakit-instance-file", "--dir", "/data",
                     plugins=plugins, volumes=(f"{data}:/data",))
        start_plugin(dockerd, containers, "infrakit-flavor-vanilla", plugins=plugins)
        start_plugin(dockerd, containers, "infrakit-group-default", plugins=plugins)
        testing.wait_for(
            lambda: all((plugins / name).exists()
                        for name in ("instance-file", "flavor-vanilla", "group")) or None,
            what="the plugins' sockets", timeout=60)
        listed = cli("plugin", "ls", plugins=plugins)
        assert listed.returncode == 0, listed.stderr
        assert "Group/0.1.1" in listed.stdout and "Instance/0.5.0" in listed.stdout

        spec = plugins.parent / f"{plugins.name}.json"
        spec.write_text(json.dumps({"ID": "boxed", "Properties": {
            "Allocation": {"Size": 3},
            "Instance": {"Plugin": "instance-file", "Properties": {"Note": "v1"}},
            "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Tags": {"tier": "web"}}},
        }}))
        try:
            committed = cli("group", "commit", "--wait", "--timeout", "90s", str(spec),
                            plugins=plugins)
        finally:
            spec.unlink()
        assert committed.returncode == 0, committed.stdout + committed.stderr
        assert len(list(data.iterdir())) == 3  # the container's files, seen on the host

        victim = sorted(data.iterdir())[0]
        victim.unlink()  # an instance lost outside: the group in the container replaces it

        def replaced() -> bool | None:
            names = {path.name for path in data.iterdir()}
            return (len(names) == 3 and victim.name not in names) or None

        testing.wait_for(replaced, what="the lost instance replaced", timeout=90)

        destroyed = cli("group", "destroy", "boxed", plugins=plugins)
        assert destroyed.returncode == 0, destroyed.stderr
        testing.wait_for(lambda: not list(data.iterdir()) or None,
                         what="every instance destroyed", timeout=60)

        stopped = cli("plugin", "stop", "group", "flavor-vanilla", "instance-file",
                      plugins=plugins)
        assert stopped.returncode == 0, stopped.stderr
        for name in containers:
            testing.wait_for(lambda name=name: exit_state(dockerd, name) == ["exited", "0"]
                             or None, what=f"{name} exited 0", timeout=30)
        assert not list(plugins.iterdir())  # sockets and pid files removed on SIGTERM
    finally:
        shutil.rmtree(plugins, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
