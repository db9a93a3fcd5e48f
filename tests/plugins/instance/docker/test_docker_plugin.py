"""instance-docker against a real, private dockerd: provision, describe, destroy, Init, the
original's layout, and bad input (each leaves nothing behind)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import privatedocker
import pytest

from infrakit import errors, testing
from infrakit.plugins.instance.docker import engine, plugin
from infrakit.spi import instance

IMAGE = privatedocker.IMAGE

pytestmark = pytest.mark.docker

HTTPD = ["httpd", "-f", "-p", "80", "-h", "/www"]


def spec(properties: dict[str, Any], *, tags: dict[str, str] | None = None, init: str = "",
         logical_id: str | None = None) -> instance.Spec:
    return instance.Spec(properties=properties, tags=tags or {"infrakit.group": "g"},
                         init=init, logical_id=logical_id)


def inspect(dockerd: privatedocker.Dockerd, container: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(dockerd.docker("inspect", container).stdout)[0]
    return found


class Counting(engine.Engine):
    """The real engine client, counting calls by method and path."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls: list[str] = []

    async def call(self, method: str, path: str, **kwargs: Any) -> engine.Answer:
        self.calls.append(f"{method} {path}")
        return await super().call(method, path, **kwargs)


async def test_provisioned_container_runs_with_the_tags_as_labels(
        docker: plugin.Plugin, dockerd: privatedocker.Dockerd) -> None:
    iid = await docker.provision(spec({"Image": IMAGE, "Command": HTTPD},
                                      tags={"infrakit.group": "web", "tier": "front"}))
    found = inspect(dockerd, iid)
    assert found["State"]["Running"]
    assert found["Config"]["Labels"]["tier"] == "front"
    assert found["Config"]["Hostname"] == iid  # the ID is the container's hostname
    assert found["Name"].startswith("/web-")
    listed = await docker.describe_instances({"infrakit.group": "web"})
    assert [(d.id, d.logical_id, d.tags["tier"]) for d in listed] == [(iid, None, "front")]


async def test_describe_is_one_list_call_however_many_containers(
        dockerd: privatedocker.Dockerd, docker: plugin.Plugin) -> None:
    counting = plugin.Plugin(Counting(dockerd.url))
    ids = await asyncio.gather(*(counting.provision(spec({"Image": IMAGE, "Command": HTTPD},
                                                         tags={"infrakit.group": "many"}))
                                 for _ in range(4)))
    assert isinstance(counting.engine, Counting)
    counting.engine.calls.clear()
    listed = await counting.describe_instances({"infrakit.group": "many"}, True)
    assert sorted(d.id for d in listed) == sorted(ids)
    assert counting.engine.calls == ["GET /containers/json"]
    assert {d.properties["State"] for d in listed} == {"running"}


async def test_a_pet_is_named_by_its_logical_id(docker: plugin.Plugin,
                                                dockerd: privatedocker.Dockerd) -> None:
    iid = await docker.provision(spec({"Image": IMAGE, "Command": HTTPD}, logical_id="db-1"))
    assert inspect(dockerd, "db-1")["Id"].startswith(iid)
    listed = await docker.describe_instances({"infrakit.group": "g"})
    assert [(d.id, d.logical_id) for d in listed] == [(iid, "db-1")]


@pytest.mark.parametrize("logical_id", ["has space", "-dash", "x", "a/b"])
async def test_an_invalid_logical_id_is_refused_naming_the_field(
        docker: plugin.Plugin, dockerd: privatedocker.Dockerd, logical_id: str) -> None:
    with pytest.raises(errors.InvalidError, match=r"Spec\.LogicalID: .* not a valid container"):
        await docker.provision(spec({"Image": IMAGE}, logical_id=logical_id))
    assert dockerd.containers(f"label={plugin.MANAGED}") == []


async def test_init_runs_before_the_command(docker: plugin.Plugin,
                                            dockerd: privatedocker.Dockerd) -> None:
    iid = await docker.provision(spec({"Image": IMAGE, "Command": HTTPD},
                                      init="echo ready > /www/init.txt\necho $INFRAKIT_TAG_TIER "
                                           ">> /www/init.txt",
                                      tags={"infrakit.group": "g", "tier": "a"}))
    found = inspect(dockerd, iid)
    assert found["Config"]["Cmd"] == HTTPD  # the command still runs, after Init
    assert dockerd.docker("exec", iid, "cat", "/www/init.txt").stdout == "ready\na\n"
    assert dockerd.docker("exec", iid, "ps").stdout.count("httpd -f") == 1


async def test_init_alone_is_the_process_and_the_image_command_runs_after_init(
        docker: plugin.Plugin, dockerd: privatedocker.Dockerd) -> None:
    alone = await docker.provision(spec({"Image": IMAGE, "Entrypoint": []},
                                        init="touch /tmp/x; exec sleep 600"))
    assert "sleep 600" in dockerd.docker("exec", alone, "ps").stdout
    # The image's CMD is /bin/sh: with Init it runs after it (and exits: no stdin).
    after = await docker.provision(spec({"Image": IMAGE}, init="touch /tmp/y"))
    assert inspect(dockerd, after)["Config"]["Cmd"] == ["/bin/sh"]


async def test_our_layout_reaches_the_engine(docker: plugin.Plugin,
                                             dockerd: privatedocker.Dockerd) -> None:
    port = testing.free_port()
    iid = await docker.provision(spec({
        "Image": IMAGE, "Command": HTTPD, "Env": {"MODE": "web"},
        "Ports": [f"{port}:80"], "Mounts": [{"Type": "tmpfs", "Target": "/scratch"}],
        "Resources": {"Memory": "64m", "CPUs": 0.5, "PidsLimit": 50},
        "RestartPolicy": "on-failure:2", "StopTimeout": "3s", "User": "0",
        "WorkingDir": "/www"}))
    found = inspect(dockerd, iid)
    host = found["HostConfig"]
    assert "MODE=web" in found["Config"]["Env"]
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert host["Memory"] == 64 << 20 and host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 50
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert found["Config"]["StopTimeout"] == 3 and found["Config"]["WorkingDir"] == "/www"
    assert host["Mounts"][0]["Target"] == "/scratch"
    assert dockerd.http_get(port) == "hello from busybox\n"


async def test_the_original_layout_is_accepted_and_its_network_is_cleaned_up(
        docker: plugin.Plugin, dockerd: privatedocker.Dockerd) -> None:
    properties = {"Tags": {"Name": "web"},
                  "Config": {"Image": IMAGE, "Cmd": HTTPD, "Labels": {"dropped": "yes"}},
                  "HostConfig": {"Memory": 32 << 20},
                  "NetworkAttachments": [{"Name": "ik-test-net", "Driver": "bridge"}]}
    await docker.validate(properties)
    iid = await docker.provision(spec(properties))
    found = inspect(dockerd, iid)
    assert found["Config"]["Labels"]["Name"] == "web"
    assert "dropped" not in found["Config"]["Labels"]  # the tags replace Config.Labels
    assert found["HostConfig"]["Memory"] == 32 << 20
    assert "ik-test-net" in found["NetworkSettings"]["Networks"]
    await docker.destroy(iid)
    assert dockerd.docker("network", "ls", "-q", "--filter", "name=ik-test-net").stdout == ""


@pytest.mark.parametrize(("properties", "expected"), [
    ({"Image": IMAGE, "Comand": ["x"]}, "Properties.Comand: unknown field; did you mean "
                                        "Command?"),
    ({"Config": {"Image": IMAGE}, "HostConfig": {"Memroy": 1}},
     "Properties.HostConfig.Memroy: unknown field; did you mean Memory?"),
    ({"Image": IMAGE, "Config": {"Image": IMAGE}}, "Properties.Image: not with Config"),
    ({"Image": IMAGE, "Ports": ["eighty"]}, r"Properties.Ports\[0\]: expected"),
    ({"Command": ["x"]}, "Properties.Image: required"),
])
async def test_bad_properties_are_refused_with_the_path(
        docker: plugin.Plugin, properties: dict[str, Any], expected: str) -> None:
    with pytest.raises(errors.InvalidError, match=expected):
        await docker.validate(properties)
    with pytest.raises(errors.InvalidError, match=expected):
        await docker.provision(spec(properties))


async def test_destroy_stops_then_removes_and_a_missing_container_is_fine(
        docker: plugin.Plugin, dockerd: privatedocker.Dockerd) -> None:
    iid = await docker.provision(spec({"Image": IMAGE, "Command": HTTPD, "StopTimeout": "1s"}))
    await docker.destroy(iid)
    assert dockerd.containers(f"label={plugin.MANAGED}") == []
    await docker.destroy(iid)  # gone already: not an error
    await docker.destroy(instance.ID("0123456789ab"))


async def test_a_stubborn_container_is_killed_after_its_stop_timeout(
        docker: plugin.Plugin, dockerd: privatedocker.Dockerd) -> None:
    # sh ignores SIGTERM as PID 1 without a handler: only the KILL after 1 s ends it.
    iid = await docker.provision(spec({"Image": IMAGE, "Command": "trap '' TERM; "
                                       "while true; do sleep 0.1; done", "StopTimeout": "1s"}))
    await docker.destroy(iid)
    assert dockerd.containers(f"label={plugin.MANAGED}") == []


async def test_containers_infrakit_did_not_make_are_never_destroyed(
        docker: plugin.Plugin, dockerd: privatedocker.Dockerd) -> None:
    foreign = dockerd.docker("run", "-d", "--name", "ik-foreign", IMAGE, "sleep", "60").stdout
    try:
        with pytest.raises(errors.PermanentError, match="not made by InfraKit"):
            await docker.destroy(instance.ID(foreign.strip()[:12]))
        assert inspect(dockerd, "ik-foreign")["State"]["Running"]
    finally:
        dockerd.docker("rm", "-f", "ik-foreign")


async def test_a_dead_container_is_left_out_and_removed(docker: plugin.Plugin,
                                                        dockerd: privatedocker.Dockerd) -> None:
    dead = await docker.provision(spec({"Image": IMAGE, "Command": HTTPD}))
    alive = await docker.provision(spec({"Image": IMAGE, "Command": HTTPD}))
    dockerd.docker("kill", dead)
    listed = await docker.describe_instances({"infrakit.group": "g"})
    assert [d.id for d in listed] == [alive]
    assert [c[:12] for c in dockerd.containers(f"label={plugin.MANAGED}")] == [alive]


async def test_a_container_docker_restarts_is_still_a_member(
        docker: plugin.Plugin, dockerd: privatedocker.Dockerd) -> None:
    iid = await docker.provision(spec({"Image": IMAGE, "Command": "sleep 0.2; exit 3",
                                       "RestartPolicy": "always"}))
    for _ in range(10):  # across several exits and restarts
        assert [d.id for d in await docker.describe_instances({"infrakit.group": "g"})] == [iid]
        await asyncio.sleep(0.1)
    assert int(inspect(dockerd, iid)["RestartCount"]) >= 1


async def test_label_is_refused_clearly(docker: plugin.Plugin) -> None:
    iid = await docker.provision(spec({"Image": IMAGE, "Command": HTTPD}))
    with pytest.raises(errors.PermanentError, match="cannot change a container's labels"):
        await docker.label(iid, {"a": "b"})
    with pytest.raises(errors.NotFoundError):
        await docker.label(instance.ID("0123456789ab"), {"a": "b"})


async def test_namespace_tags_are_put_on_and_required(dockerd: privatedocker.Dockerd,
                                                      docker: plugin.Plugin) -> None:
    spaced = plugin.Plugin(engine.Engine(dockerd.url), namespace={"team": "blue"})
    mine = await spaced.provision(spec({"Image": IMAGE, "Command": HTTPD}))
    await docker.provision(spec({"Image": IMAGE, "Command": HTTPD}))  # no namespace
    assert [d.id for d in await spaced.describe_instances({"infrakit.group": "g"})] == [mine]


# -- bad input: a clear error naming the container, and nothing left -------------------

async def test_an_unknown_image_names_the_container_and_leaves_nothing(
        docker: plugin.Plugin, dockerd: privatedocker.Dockerd) -> None:
    for init in ("", "echo hi"):  # with Init, the image is inspected first
        with pytest.raises(errors.PermanentError,
                           match="container web-1: no image ik-nope:1 on the engine"):
            await docker.provision(spec({"Image": "ik-nope:1"}, logical_id="web-1", init=init))
    assert dockerd.containers(f"label={plugin.MANAGED}") == []


async def test_a_port_in_use_is_temporary_and_leaves_nothing(
        docker: plugin.Plugin, dockerd: privatedocker.Dockerd) -> None:
    port = testing.free_port()
    first = await docker.provision(spec({"Image": IMAGE, "Command": HTTPD,
                                         "Ports": [f"{port}:80"]}))
    with pytest.raises(errors.TemporaryError, match=r"container web-2: cannot start: .*"
                                                    f"{port}"):
        await docker.provision(spec({"Image": IMAGE, "Command": HTTPD,
                                     "Ports": [f"{port}:80"]}, logical_id="web-2"))
    assert [c[:12] for c in dockerd.containers(f"label={plugin.MANAGED}")] == [first]


async def test_an_engine_that_is_down_is_unavailable_naming_the_container(
        tmp_path: Any) -> None:
    down = plugin.Plugin(engine.Engine(f"unix://{tmp_path}/docker.sock"))
    with pytest.raises(errors.Unavailable, match=r"container web-3: Docker engine at .* is "
                                                 r"unreachable"):
        await down.provision(spec({"Image": IMAGE}, logical_id="web-3"))
    with pytest.raises(errors.Unavailable):
        await down.describe_instances({})
    with pytest.raises(errors.Unavailable):
        await down.destroy(instance.ID("0123456789ab"))


async def test_a_restarting_engine_fails_provisions_then_recovers_with_nothing_leaked(
        docker: plugin.Plugin, dockerd: privatedocker.Dockerd) -> None:
    dockerd.stop()
    try:
        with pytest.raises(errors.TemporaryError, match="container web-4: Docker engine"):
            await docker.provision(spec({"Image": IMAGE, "Command": HTTPD},
                                        logical_id="web-4"))
    finally:
        dockerd.start()
    assert dockerd.containers(f"label={plugin.MANAGED}") == []
    iid = await docker.provision(spec({"Image": IMAGE, "Command": HTTPD}, logical_id="web-4"))
    assert [d.id for d in await docker.describe_instances({"infrakit.group": "g"})] == [iid]
