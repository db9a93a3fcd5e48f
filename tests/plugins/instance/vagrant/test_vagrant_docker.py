"""instance-vagrant with real Vagrant and its docker provider, on the tests' private dockerd
(own network namespace; no port is published, nothing is reached from outside it; the image
is built locally and never pulled)."""

from __future__ import annotations

import asyncio
import json
import subprocess

import privatedocker
import pytest

from infrakit import errors
from infrakit.plugins.instance.vagrant import commands, plugin, template
from infrakit.spi import instance

pytestmark = pytest.mark.docker

SLEEPER = {"Image": privatedocker.IMAGE, "Cmd": ["sleep", "100000"]}


def container(dockerd: privatedocker.Dockerd, iid: str) -> dict[str, object] | None:
    """The container Vagrant made for ``iid`` (any state), inspected."""
    ids = dockerd.containers(f"label={template.INSTANCE}={iid}")
    if not ids:
        return None
    found: dict[str, object] = json.loads(dockerd.docker("inspect", *ids).stdout)[0]
    return found


async def test_machines_are_made_listed_reconciled_and_destroyed(
        real: plugin.Plugin, dockerd: privatedocker.Dockerd,
        vagrant_env: dict[str, str]) -> None:
    specs = [instance.Spec(properties=SLEEPER, tags={"group": "vg", "n": str(n)},
                           init='echo "up as $INFRAKIT_LOGICAL_ID" > /tmp/init',
                           logical_id=f"db-{n}") for n in range(3)]
    ids = await asyncio.gather(*(real.provision(spec) for spec in specs))
    assert len(set(ids)) == 3

    found = {d.id: d for d in await real.describe_instances({"group": "vg"}, properties=True)}
    assert set(found) == set(ids)
    for n, iid in enumerate(ids):
        described = found[iid]
        assert described.logical_id == f"db-{n}"
        assert described.tags == {"group": "vg", "n": str(n)}
        assert described.properties["State"] == "running"
        assert described.properties["Provider"] == "docker"
        made = container(dockerd, iid)
        assert made is not None and made["State"]["Running"]  # type: ignore[index]
        assert made["Config"]["Hostname"] == f"db-{n}"  # type: ignore[index]
        assert dockerd.docker("exec", iid, "cat", "/tmp/init").stdout == f"up as db-{n}\n"

    # A restarted plugin (a new object on the same directory) finds what it made.
    again = plugin.Plugin(real.dirs.root, vagrant=commands.Vagrant(environ=vagrant_env))
    [pet] = await again.describe_instances({"group": "vg", "n": "2"})
    assert pet.id == ids[2] and pet.logical_id == "db-2"

    # Destroyed behind the plugin's back: the container removed, or vagrant destroy by hand.
    dockerd.docker("rm", "-f", ids[0])
    subprocess.run(["vagrant", "destroy", "-f"], cwd=real.dirs.root / ids[1],
                   env={**vagrant_env, "VAGRANT_CWD": str(real.dirs.root / ids[1])},
                   capture_output=True, timeout=120, check=True)
    assert [d.id for d in await real.describe_instances({"group": "vg"})] == [ids[2]]
    await real.close()  # the clean-ups Describe started
    assert not (real.dirs.root / ids[0]).exists() and not (real.dirs.root / ids[1]).exists()

    await real.destroy(ids[2])
    assert not (real.dirs.root / ids[2]).exists()
    assert container(dockerd, ids[2]) is None
    assert await real.describe_instances({}) == []
    assert dockerd.containers(f"label={template.MARK}") == []


async def test_a_stopped_container_is_gone_and_its_machine_destroyed(
        real: plugin.Plugin, dockerd: privatedocker.Dockerd) -> None:
    iid = await real.provision(instance.Spec(properties=SLEEPER, tags={"group": "stop"}))
    dockerd.docker("kill", iid)
    assert await real.describe_instances({"group": "stop"}) == []
    await real.close()
    assert container(dockerd, iid) is None and not (real.dirs.root / iid).exists()


async def test_an_image_that_is_not_there_is_not_pulled_and_nothing_is_left(
        real: plugin.Plugin, dockerd: privatedocker.Dockerd) -> None:
    with pytest.raises(errors.TemporaryError, match="No such image: ik-nothing:1"):
        await real.provision(instance.Spec(properties={"Image": "ik-nothing:1"},
                                           tags={"group": "bad"}))
    assert list(real.dirs.root.iterdir()) == []
    assert dockerd.containers(f"label={template.MARK}") == []
