"""Health probes against real local servers and real commands."""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from infrakit import testing
from infrakit.plugins.flavor import health
from infrakit.spi import flavor, instance

HEALTHY, UNHEALTHY, UNKNOWN = flavor.Health.HEALTHY, flavor.Health.UNHEALTHY, flavor.Health.UNKNOWN


def member(**tags: str) -> instance.Description:
    return instance.Description(id=instance.ID("instance-1"), logical_id=instance.LogicalID("db-1"),
                                tags=tags)


async def judge(properties: dict[str, Any], inst: instance.Description | None = None) -> Any:
    return await health.check(health.Probe.model_validate(properties), inst or member())


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: this container's init may never reap it)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


@pytest.fixture
async def site(http_site: Callable[[list[web.RouteDef]], Awaitable[int]]
               ) -> AsyncIterator[int]:
    """An aiohttp server on 127.0.0.1: /ok 200, /moved 302, /bad 500, /slow never in time."""
    released = asyncio.Event()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    async def bad(request: web.Request) -> web.Response:
        return web.Response(status=500)

    async def slow(request: web.Request) -> web.Response:
        await released.wait()
        return web.Response(text="late")

    try:
        yield await http_site([web.get("/ok", ok), web.get("/moved", moved),
                               web.get("/bad", bad), web.get("/slow", slow)])
    finally:
        released.set()  # before the server's cleanup: it waits for the slow handler


@pytest.mark.parametrize(
    ("path", "expect", "verdict"),
    [
        ("ok", None, HEALTHY),
        ("moved", None, HEALTHY),
        ("bad", None, UNHEALTHY),
        ("missing", None, UNHEALTHY),
        ("bad", 500, HEALTHY),
        ("ok", [201, 204], UNHEALTHY),
        ("ok", [200, 204], HEALTHY),
    ],
)
async def test_http_probe_judges_the_status(
    site: int, path: str, expect: int | list[int] | None, verdict: flavor.Health
) -> None:
    url = "http://127.0.0.1:{{ instance.Tags['port'] }}/" + path
    check: Any = url if expect is None else {"URL": url, "ExpectStatus": expect}

    assert await judge({"HTTP": check}, member(port=str(site))) == verdict


async def test_http_probe_without_an_answer_in_time_is_unhealthy(site: int) -> None:
    started = time.monotonic()

    verdict = await judge({"HTTP": f"http://127.0.0.1:{site}/slow", "Timeout": "200ms"})

    assert verdict == UNHEALTHY
    assert time.monotonic() - started < 2


async def test_http_probe_of_a_closed_port_is_unhealthy() -> None:
    assert await judge({"HTTP": f"http://127.0.0.1:{testing.free_port()}/"}) == UNHEALTHY


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/x", "http://"])
async def test_http_probe_of_an_unusable_url_is_unknown(url: str) -> None:
    assert await judge({"HTTP": url}) == UNKNOWN


async def test_tcp_probe_of_a_listening_port_is_healthy(listening: int) -> None:
    assert await judge({"TCP": "127.0.0.1:{{ instance.Tags.port }}"},
                       member(port=str(listening))) == HEALTHY


@pytest.mark.parametrize(
    ("target", "address"),
    [("127.0.0.1:80", ("127.0.0.1", 80)), ("[::1]:8080", ("::1", 8080)),
     (" localhost:1 ", ("localhost", 1)), ("127.0.0.1", None), ("h:0", None)],
)
def test_tcp_targets_are_host_and_port(target: str, address: tuple[str, int] | None) -> None:
    assert health._host_port(target) == address


async def test_tcp_probe_of_a_closed_port_is_unhealthy() -> None:
    assert await judge({"TCP": f"127.0.0.1:{testing.free_port()}"}) == UNHEALTHY


@pytest.mark.parametrize("target", ["127.0.0.1", "127.0.0.1:http", ":80", "127.0.0.1:70000"])
async def test_tcp_probe_of_a_target_that_is_not_host_port_is_unknown(target: str) -> None:
    assert await judge({"TCP": target}) == UNKNOWN


@pytest.mark.parametrize(
    ("command", "verdict"),
    [
        ("true", HEALTHY),
        ("exit 3", UNHEALTHY),
        ('test "$INFRAKIT_INSTANCE_ID" = instance-1', HEALTHY),
        ('test "$INFRAKIT_LOGICAL_ID" = db-1', HEALTHY),
        ('test "$INFRAKIT_TAG_PORT" = 8080 && test "$INFRAKIT_TAG_INFRAKIT_GROUP" = g', HEALTHY),
        ("test {{ instance.ID }} = instance-1 && test {{ instance.Tags.port }} = 8080", HEALTHY),
        ("test {{ instance.LogicalID }} = db-2", UNHEALTHY),
        ("/nonexistent/binary", UNHEALTHY),
    ],
)
async def test_command_probe_judges_the_exit_status(command: str, verdict: flavor.Health) -> None:
    inst = member(port="8080", **{"infrakit.group": "g"})

    assert await judge({"Command": command}, inst) == verdict


async def test_command_that_outlives_its_timeout_is_unhealthy_and_killed(
    tmp_path: pathlib.Path,
) -> None:
    pids = tmp_path / "pids"
    started = time.monotonic()

    verdict = await judge({"Command": f"sleep 30 & echo $! > {pids}; wait", "Timeout": "300ms"})

    assert verdict == UNHEALTHY
    assert time.monotonic() - started < 2
    child = int(pids.read_text())
    await asyncio.sleep(0.05)
    assert not alive(child)


@pytest.mark.parametrize(
    "probe",
    [
        {"Command": "test {{ instance.Tags['port'] }}"},
        {"HTTP": "http://127.0.0.1:{{ instance.Tags['port'] }}/"},
        {"TCP": "127.0.0.1:{{ instance.Properties.Port }}"},
    ],
)
async def test_a_value_missing_from_the_instance_makes_the_verdict_unknown(
    probe: dict[str, Any],
) -> None:
    assert await judge(probe) == UNKNOWN


async def test_properties_of_the_instance_are_available_when_sent(listening: int) -> None:
    inst = member().model_copy(update={"properties": {"Port": listening}})

    assert await judge({"TCP": "127.0.0.1:{{ instance.Properties.Port }}"}, inst) == HEALTHY


async def test_a_probe_stuck_beyond_its_timeout_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    async def stuck(probe: health.Probe, inst: instance.Description) -> flavor.Health:
        await asyncio.sleep(60)
        return HEALTHY

    monkeypatch.setattr(health, "_run", stuck)
    monkeypatch.setattr(health, "_GRACE", 0.05)

    assert await judge({"TCP": "127.0.0.1:1", "Timeout": "50ms"}) == UNKNOWN


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2s", 2.0), ("500ms", 0.5), ("1m30s", 90.0), ("1.5h", 5400.0), (3, 3.0), ("250us", 0.00025)],
)
def test_timeouts_are_go_durations(value: Any, seconds: float) -> None:
    assert health.Probe.model_validate({"TCP": "h:1", "Timeout": value}).timeout == seconds


async def said(properties: dict[str, Any], inst: instance.Description | None = None
               ) -> flavor.Verdict:
    return await health.judge(health.Probe.model_validate(properties), inst or member())


async def test_an_http_probe_says_the_status_it_got(site: int) -> None:
    url = f"http://127.0.0.1:{site}/bad"
    assert await said({"HTTP": url}) == flavor.Verdict(
        UNHEALTHY, f"GET {url}: 500 Internal Server Error")
    ok = f"http://127.0.0.1:{site}/ok"
    assert await said({"HTTP": ok}) == flavor.Verdict(HEALTHY, f"GET {ok}: 200 OK")


async def test_an_http_probe_of_a_closed_port_says_connection_refused() -> None:
    url = f"http://127.0.0.1:{testing.free_port()}/health"
    assert await said({"HTTP": url}) == flavor.Verdict(
        UNHEALTHY, f"GET {url}: connection refused")


async def test_an_http_probe_without_an_answer_says_how_long_it_waited(site: int) -> None:
    url = f"http://127.0.0.1:{site}/slow"
    assert await said({"HTTP": url, "Timeout": "200ms"}) == flavor.Verdict(
        UNHEALTHY, f"GET {url}: no answer within 200ms")


async def test_a_tcp_probe_of_a_closed_port_says_connection_refused() -> None:
    target = f"127.0.0.1:{testing.free_port()}"
    assert await said({"TCP": target}) == flavor.Verdict(
        UNHEALTHY, f"connect {target}: connection refused")


async def test_a_command_probe_says_its_exit_status_and_last_line_of_output() -> None:
    script = "echo starting; echo 'db: no such table' >&2; exit 1"
    assert await said({"Command": script}) == flavor.Verdict(
        UNHEALTHY, f"exec {script!r} exited 1: db: no such table")


async def test_a_long_command_is_shortened_in_the_reason() -> None:
    script = "test " + "x" * 100 + " = y"
    verdict = await said({"Command": script})
    assert verdict.health == UNHEALTHY
    assert verdict.reason == f"exec {script[:health.SHOWN - 1] + '…'!r} exited 1"


async def test_a_probe_that_cannot_be_evaluated_says_why() -> None:
    verdict = await said({"TCP": "127.0.0.1:{{ instance.Properties.Port }}"})
    assert verdict.health == UNKNOWN
    assert verdict.reason == ("the probe cannot be evaluated: undefined value: 'dict object' "
                              "has no attribute 'Properties'")
