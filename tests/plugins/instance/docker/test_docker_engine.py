"""The Engine API client and the event watcher: against the private dockerd where they talk
to an engine, with a counting fake only for the waker's coalescing."""

from __future__ import annotations

import asyncio
import pathlib
import threading

import privatedocker
import pytest

from infrakit import errors
from infrakit.plugins import launch
from infrakit.plugins.instance.docker import engine, events


@pytest.mark.docker
async def test_calls_and_the_event_stream_reach_the_engine(
        dockerd: privatedocker.Dockerd) -> None:
    docker = engine.Engine(dockerd.url)
    version = await docker.call("GET", "/version")
    assert version.ok and version.json()["ApiVersion"]
    missing = await docker.call("GET", "/containers/ik-none/json")
    assert missing.status == 404 and "ik-none" in missing.message
    seen: list[str] = []
    opened = asyncio.Event()

    async def read() -> None:
        async for event in docker.events({"type": ["container"], "event": ["die"]},
                                         on_open=opened.set):
            seen.append(event["Action"])
            return

    reader = asyncio.create_task(read())
    await asyncio.wait_for(opened.wait(), 10)
    await asyncio.to_thread(dockerd.docker, "run", "--rm", privatedocker.IMAGE, "true")
    await asyncio.wait_for(reader, 20)
    assert seen == ["die"]


@pytest.mark.docker
async def test_watch_reconnects_after_an_engine_restart_and_wakes_once_back(
        dockerd: privatedocker.Dockerd) -> None:
    woken = threading.Event()
    waker = events.Waker(woken.set)
    watcher = asyncio.create_task(events.watch(engine.Engine(dockerd.url), waker, namespace={}))
    try:
        await asyncio.to_thread(dockerd.restart)
        assert await asyncio.to_thread(woken.wait, 20)  # the wake on reconnecting
        woken.clear()
        await asyncio.to_thread(dockerd.docker, "run", "--rm", "--label", "infrakit.group=x",
                                privatedocker.IMAGE, "true")
        assert await asyncio.to_thread(woken.wait, 20)  # a death after the restart
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await waker.close()


@pytest.mark.docker
async def test_a_woken_group_already_sees_the_dead_container_stopped(
        dockerd: privatedocker.Dockerd) -> None:
    # dockerd sends "die" before its listing shows the container stopped: a group woken at
    # once would list it running and heal only at its next poll.
    seen: list[str] = []
    woken = threading.Event()

    def wake() -> None:  # what the group does when woken: list the containers
        listed = dockerd.docker("ps", "-a", "--filter", "label=infrakit.group=early",
                                "--format", "{{.State}}").stdout.split()
        seen.extend(listed)
        woken.set()

    waker = events.Waker(wake)
    docker = engine.Engine(dockerd.url)
    watcher = asyncio.create_task(events.watch(docker, waker, namespace={}))
    try:
        for _ in range(3):
            cid = dockerd.docker("run", "-d", "--label", "infrakit.group=early",
                                 privatedocker.IMAGE, "httpd", "-f", "-p", "80").stdout.strip()
            await asyncio.sleep(0.2)  # the stream is open (it opened before the run)
            woken.clear()
            seen.clear()
            await asyncio.to_thread(dockerd.docker, "kill", cid)
            assert await asyncio.to_thread(woken.wait, 20)
            assert seen == ["exited"]
            dockerd.docker("rm", "-f", cid)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await waker.close()


async def test_an_engine_that_is_not_there_is_unavailable(tmp_path: pathlib.Path) -> None:
    docker = engine.Engine(f"unix://{tmp_path}/none.sock")
    with pytest.raises(errors.Unavailable, match="unreachable"):
        await docker.call("GET", "/_ping")
    with pytest.raises(errors.Unavailable):
        async for _ in docker.events({}):
            pass


@pytest.mark.parametrize("url", ["http://x", "unix://", "tcp://host", "/var/run/docker.sock"])
def test_a_bad_url_is_a_usage_error(url: str) -> None:
    with pytest.raises(errors.UsageError, match="--url: expected"):
        engine.Engine(url)


def test_namespace_tags_parse_like_the_original() -> None:
    assert launch.namespace_tags(["a=b,c=d", "e="]) == {"a": "b", "c": "d", "e": ""}
    with pytest.raises(errors.UsageError, match="--namespace-tags: expected key=value"):
        launch.namespace_tags(["novalue"])


def test_events_are_filtered_to_group_members_in_the_namespace() -> None:
    assert events.filters({"team": "blue"}) == {
        "type": ["container"], "event": ["die", "destroy"],
        "label": ["infrakit.group", "team=blue"]}


async def test_pokes_during_a_wake_make_exactly_one_more() -> None:
    release = threading.Event()
    calls = []

    def wake() -> None:
        calls.append(1)
        release.wait(5)

    waker = events.Waker(wake)
    waker.poke()
    await asyncio.sleep(0.05)
    for _ in range(5):
        waker.poke()
    release.set()
    await waker.close()
    assert len(calls) == 2 and waker.wakes == 2
