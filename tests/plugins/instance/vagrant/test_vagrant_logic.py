"""instance-vagrant's logic on a fake ``vagrant`` (:mod:`fakevagrant`): what happens when
``up`` fails or hangs, when ``status`` cannot be read or reports a machine gone, and what a
restarted plugin finds. The real thing is proven in ``test_vagrant_docker.py``."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib

import fakevagrant
import pytest

from infrakit import errors, processes
from infrakit.plugins.instance.vagrant import commands, machines, plugin
from infrakit.spi import instance
from infrakit.testing import wait_until

BOX = {"Box": "debian/bookworm64"}


def spec(**tags: str) -> instance.Spec:
    return instance.Spec(properties=BOX, tags=tags, init="echo hello")


async def test_a_machine_is_a_directory_with_its_vagrantfile_init_and_record(
        faked: plugin.Plugin) -> None:
    iid = await faked.provision(instance.Spec(properties=BOX, tags={"group": "a"},
                                              init="echo hello", logical_id="10.1.2.3"))
    path = faked.dirs.root / iid
    assert iid.startswith("infrakit-") and path.is_dir()
    assert 'config.vm.box = "debian/bookworm64"' in (path / "Vagrantfile").read_text()
    assert (path / "boot.sh").read_text() == "echo hello"
    record = json.loads((path / "infrakit.json").read_text())
    assert record["Tags"] == {"group": "a"} and record["LogicalID"] == "10.1.2.3"
    assert record["Provisioned"] is True
    [found] = await faked.describe_instances({"group": "a"}, properties=True)
    assert found.id == iid and found.logical_id == "10.1.2.3" and found.tags == {"group": "a"}
    assert found.properties == {"State": "running", "Provider": "fake",
                                "Directory": str(path)}


async def test_describe_matches_every_tag_and_label_merges(faked: plugin.Plugin,
                                                           fake: fakevagrant.Fake) -> None:
    one = await faked.provision(spec(group="a", tier="web"))
    two = await faked.provision(spec(group="a", tier="db"))
    await faked.provision(spec(group="b"))
    assert {d.id for d in await faked.describe_instances({"group": "a"})} == {one, two}
    assert [d.id for d in await faked.describe_instances({"group": "a", "tier": "db"})] == [two]
    await faked.label(instance.ID(two), {"tier": "cache", "new": "1"})
    [found] = await faked.describe_instances({"tier": "cache"})
    assert found.tags == {"group": "a", "tier": "cache", "new": "1"}
    with pytest.raises(errors.NotFoundError):
        await faked.label(instance.ID("infrakit-1"), {"a": "b"})


async def test_a_failed_up_leaves_nothing_and_says_why(faked: plugin.Plugin,
                                                       fake: fakevagrant.Fake) -> None:
    fake.mode("up", "fail")
    with pytest.raises(errors.TemporaryError, match="the fake was told to fail"):
        await faked.provision(spec(group="a"))
    assert list(faked.dirs.root.iterdir()) == []
    fake.mode("up", "fail-made")
    with pytest.raises(errors.TemporaryError, match="made the machine, then failed"):
        await faked.provision(spec(group="a"))
    assert list(faked.dirs.root.iterdir()) == []
    assert [call.split()[0] for call in fake.calls()] == ["up", "destroy", "up", "destroy"]


async def test_a_hung_up_is_stopped_at_its_timeout_and_undone(faked: plugin.Plugin,
                                                              fake: fakevagrant.Fake) -> None:
    fake.mode("up", "hang")
    call = asyncio.ensure_future(faked.provision(spec(group="a")))
    pid = int((await _appears(faked.dirs.root, ".fake-pid")).read_text())
    with pytest.raises(errors.CallTimeout,
                       match=r"vagrant up --provider virtualbox in infrakit-\d+: no result "
                             r"within 3s; stopped it"):
        await call
    assert not processes.alive(pid)
    assert list(faked.dirs.root.iterdir()) == []


async def test_a_cancelled_provision_stops_vagrant_and_leaves_nothing(
        faked: plugin.Plugin, fake: fakevagrant.Fake) -> None:
    fake.mode("up", "hang")
    call = asyncio.ensure_future(faked.provision(spec(group="a")))
    pidfile = await _appears(faked.dirs.root, ".fake-pid")
    pid = int(pidfile.read_text())
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert wait_until(lambda: not processes.alive(pid), timeout=10)
    assert list(faked.dirs.root.iterdir()) == []


@pytest.mark.parametrize("parallel", [1, 2])
async def test_ups_run_in_parallel_up_to_the_bound(tmp_path: pathlib.Path,
                                                   fake: fakevagrant.Fake, parallel: int) -> None:
    fake.mode("up", f"slow{parallel}")
    bounded = plugin.Plugin(tmp_path / "bounded", vagrant=commands.Vagrant(
        str(fake.binary), parallel=parallel, environ=fake.environ()))
    await asyncio.gather(*(bounded.provision(spec(group="a")) for _ in range(4)))
    assert fake.most_at_once() == parallel


async def test_a_directory_removed_meanwhile_is_not_taken_for_a_missing_vagrant(
        faked: plugin.Plugin) -> None:
    with pytest.raises(errors.NotFoundError, match="no directory"):
        await faked.vagrant.status(faked.dirs.root / "infrakit-7")


async def test_a_machine_gone_or_down_is_left_out_and_cleaned_up(faked: plugin.Plugin,
                                                                 fake: fakevagrant.Fake) -> None:
    gone, down, up = [await faked.provision(spec(group="a")) for _ in range(3)]
    root = faked.dirs.root
    (root / gone / ".fake-state").unlink()  # destroyed behind the plugin's back
    fake.state(root / down, "stopped")
    assert [d.id for d in await faked.describe_instances({"group": "a"})] == [up]
    await faked.close()  # the clean-ups started by Describe
    assert sorted(p.name for p in root.iterdir()) == [up]
    assert f"destroy {down}" in fake.calls() and f"destroy {gone}" not in fake.calls()


async def test_an_unfinished_young_machine_is_not_cleaned_up(faked: plugin.Plugin) -> None:
    """What a plugin that died mid-``up`` left: maybe its ``up`` still runs."""
    iid = "infrakit-000000001"
    faked.dirs.create(iid, vagrantfile="", init="",
                      record=machines.new_record(tags={"group": "a"}, logical_id=None))
    assert await faked.describe_instances({"group": "a"}) == []
    await faked.close()
    assert (faked.dirs.root / iid).is_dir()


async def test_a_machine_whose_state_cannot_be_read_is_kept_as_unknown(
        faked: plugin.Plugin, fake: fakevagrant.Fake) -> None:
    iid = await faked.provision(spec(group="a"))
    fake.mode("status", "fail")
    [found] = await faked.describe_instances({"group": "a"}, properties=True)
    assert found.id == iid
    assert found.properties["State"] == "unknown"
    assert "the fake was told to fail" in found.properties["Error"]


async def test_concurrent_describes_share_one_status_per_machine(
        faked: plugin.Plugin, fake: fakevagrant.Fake) -> None:
    iid = await faked.provision(spec(group="a"))
    seen = await asyncio.gather(*(faked.describe_instances({}) for _ in range(5)))
    assert all([d.id for d in found] == [iid] for found in seen)
    assert fake.calls().count(f"status {iid}") == 1


async def test_destroy_removes_the_directory_and_is_idempotent(faked: plugin.Plugin,
                                                               fake: fakevagrant.Fake) -> None:
    iid = await faked.provision(spec(group="a"))
    await faked.destroy(iid)
    assert not (faked.dirs.root / iid).exists()
    await faked.destroy(iid)  # done already
    assert fake.calls().count(f"destroy {iid}") == 1


async def test_a_failed_destroy_keeps_the_directory(faked: plugin.Plugin,
                                                    fake: fakevagrant.Fake) -> None:
    iid = await faked.provision(spec(group="a"))
    fake.mode("destroy", "fail")
    with pytest.raises(errors.TemporaryError, match="vagrant destroy -f in infrakit-"):
        await faked.destroy(iid)
    assert (faked.dirs.root / iid).is_dir()
    assert [d.id for d in await faked.describe_instances({})] == [iid]


@pytest.mark.parametrize("iid", ["../etc", ".hidden", "a/b", ""])
async def test_ids_that_could_name_another_path_are_refused(faked: plugin.Plugin,
                                                            iid: str) -> None:
    with pytest.raises(errors.InvalidError, match=r"Instance: .* is not an instance-vagrant ID"):
        await faked.destroy(instance.ID(iid))


async def test_a_directory_without_a_record_is_not_ours_to_destroy(
        faked: plugin.Plugin) -> None:
    (faked.dirs.root / "infrakit-5").mkdir()
    with pytest.raises(errors.PermanentError, match="not a machine made by instance-vagrant"):
        await faked.destroy(instance.ID("infrakit-5"))


async def test_bad_input_is_refused_before_anything_is_made(faked: plugin.Plugin,
                                                            fake: fakevagrant.Fake) -> None:
    with pytest.raises(errors.InvalidError, match=r"Properties\.Bx: unknown field"):
        await faked.validate({"Bx": "debian"})
    with pytest.raises(errors.InvalidError, match=r"Spec\.LogicalID: expected an IP address"):
        await faked.provision(instance.Spec(properties=BOX, logical_id="web-1"))
    assert fake.calls() == [] and list(faked.dirs.root.iterdir()) == []


async def test_a_restarted_plugin_finds_its_machines_and_v05s(
        faked: plugin.Plugin, fake: fakevagrant.Fake, tmp_path: pathlib.Path) -> None:
    iid = await faked.provision(spec(group="a"))
    old = faked.dirs.root / "infrakit-240440289"  # as v0.5's plugin left it
    old.mkdir()
    (old / "tags").write_text(json.dumps({"group": "a"}))
    (old / "ip").write_text("10.0.0.9")
    fake.state(old, "running")
    (old / ".vagrant" / "machines" / "default" / "fake").mkdir(parents=True)
    (old / ".vagrant" / "machines" / "default" / "fake" / "id").write_text("x")
    again = plugin.Plugin(faked.dirs.root, vagrant=commands.Vagrant(
        str(fake.binary), environ=dict(os.environ)))
    found = {d.id: d for d in await again.describe_instances({"group": "a"})}
    assert set(found) == {iid, "infrakit-240440289"}
    assert found["infrakit-240440289"].logical_id == "10.0.0.9"
    await again.destroy(instance.ID("infrakit-240440289"))
    assert not old.exists()


async def _appears(root: pathlib.Path, name: str) -> pathlib.Path:
    for _ in range(400):
        found = list(root.glob(f"*/{name}"))
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {name} under {root}")
