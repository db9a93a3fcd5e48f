"""Health probes any flavor can use: a shell command, an HTTP GET or a TCP connect per instance.

A flavor parses its ``Health`` property into a :class:`Probe` (``Properties.Health`` errors name
the field) and answers ``Flavor.Healthy`` with :func:`check`. Properties::

    {"Command": "curl -fs http://127.0.0.1:{{ instance.Tags['port'] }}/"}
    {"HTTP": "http://127.0.0.1:{{ instance.Tags['port'] }}/health"}
    {"HTTP": {"URL": "...", "ExpectStatus": [200, 204]}}       default: any 2xx or 3xx
    {"TCP": "127.0.0.1:{{ instance.Tags['port'] }}", "Timeout": "2s"}

Exactly one of Command, HTTP, TCP. Each string is a Jinja2 template rendered with ``instance``,
the instance's Description (``instance.ID``, ``instance.LogicalID``, ``instance.Tags``, and
``instance.Properties`` when the caller sent them). A command runs as ``/bin/sh -c`` in its own
session with ``INFRAKIT_INSTANCE_ID`` etc. (:mod:`infrakit.plugins.environment`).

Each verdict comes with what the probe said (:func:`judge`; Flavor.Healthy's ``Reason``):
``GET http://127.0.0.1:8080/health: 500 Internal Server Error``, ``connect 127.0.0.1:6379:
connection refused``, ``exec 'check.sh' exited 1: <its last line of output>``.

Verdicts: HEALTHY when the check passes; UNHEALTHY when the target answers wrong or not at all
(non-zero exit, connection refused, unexpected status, no answer within ``Timeout``); UNKNOWN
when the probe cannot be evaluated (a template value missing from this instance, a host name
that does not resolve, a command that cannot be started, the probe itself stuck). UNKNOWN is
never a reason for the group to destroy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import urllib.parse
from typing import Any

from pydantic import Field, field_validator, model_validator

from infrakit import durations, errors, template
from infrakit.plugins import environment
from infrakit.spi import flavor, instance
from infrakit.spi.wire import Wire

log = logging.getLogger(__name__)

HEALTHY, UNHEALTHY, UNKNOWN = flavor.Health.HEALTHY, flavor.Health.UNHEALTHY, flavor.Health.UNKNOWN

_GRACE = 1.0
"""Beyond its Timeout, how long a probe may take to clean up before we call it stuck."""


def _well_formed(value: str) -> str:
    try:
        template.check(value)
    except errors.UsageError as exc:
        raise ValueError(exc.message.removeprefix("<string>:")) from None
    return value


class HTTPCheck(Wire):
    """``{URL, ExpectStatus}``: a GET that must answer one of the expected statuses."""

    url: str
    """The URL, a template."""
    expect_status: int | list[int] | None = None
    """The statuses that mean healthy; any 2xx or 3xx when unset."""

    @field_validator("url")
    @classmethod
    def _template(cls, value: str) -> str:
        return _well_formed(value)

    def healthy_status(self, status: int) -> bool:
        if self.expect_status is None:
            return 200 <= status < 400
        if isinstance(self.expect_status, int):
            return status == self.expect_status
        return status in self.expect_status


class Probe(Wire):
    """One way to judge an instance; exactly one of ``command``, ``http``, ``tcp`` is set."""

    command: str | None = None
    """A shell command (template); exit status 0 means healthy."""
    http: HTTPCheck | str | None = None
    """A URL (template) or ``{URL, ExpectStatus}``."""
    tcp: str | None = None
    """``host:port`` (template) that must accept a connection."""
    timeout: durations.Seconds = Field(2.0, gt=0)
    """How long the target has to answer, e.g. ``"2s"``."""

    @field_validator("command", "http", "tcp")
    @classmethod
    def _templates(cls, value: Any) -> Any:
        return _well_formed(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _exactly_one(self) -> Probe:
        kinds = [kind for kind in (self.command, self.http, self.tcp) if kind is not None]
        if len(kinds) != 1:
            raise ValueError("expected exactly one of Command, HTTP, TCP")
        return self


async def check(probe: Probe, inst: instance.Description) -> flavor.Health:
    """The verdict of ``probe`` on ``inst``; never raises for a failed or broken check."""
    return (await judge(probe, inst)).health


async def judge(probe: Probe, inst: instance.Description) -> flavor.Verdict:
    """The verdict of ``probe`` on ``inst`` with what the probe said (``GET <url>: 500
    Internal Server Error``); never raises for a failed or broken check."""
    try:
        async with asyncio.timeout(probe.timeout + _GRACE):
            return await _run(probe, inst)
    except TimeoutError:
        log.warning("health probe of %s is stuck past its timeout", inst.id)
        return _said(UNKNOWN, f"the probe is stuck past its {_seconds(probe.timeout)} "
                              "timeout")


async def _run(probe: Probe, inst: instance.Description) -> flavor.Verdict:
    context = {"instance": inst.to_wire()}
    try:
        if probe.command is not None:
            script = template.render(probe.command, variables=context)
            return await _command(script, inst, timeout=probe.timeout)
        if probe.tcp is not None:
            return await _tcp(template.render(probe.tcp, variables=context), probe.timeout)
        http = probe.http if isinstance(probe.http, HTTPCheck) else HTTPCheck(url=str(probe.http))
        url = template.render(http.url, variables=context)
        return await _http(url, http, timeout=probe.timeout)
    except errors.UsageError as exc:
        log.warning("health probe of %s cannot be evaluated: %s", inst.id, exc.message)
        why = exc.message.removeprefix("<string>:1: ")
        return _said(UNKNOWN, f"the probe cannot be evaluated: {why}")


async def _command(script: str, inst: instance.Description, *,
                   timeout: float) -> flavor.Verdict:
    variables = environment.for_instance(inst.id, logical_id=inst.logical_id, tags=inst.tags)
    what = f"exec {_shortened(script)!r}"
    try:
        process = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", script, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **variables}, start_new_session=True,
        )
    except OSError as exc:
        log.warning("health command of %s cannot start: %s", inst.id, exc)
        return _said(UNKNOWN, f"{what} cannot start: {exc.strerror or exc}")
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        log.info("health command of %s: no exit within %.1fs", inst.id, timeout)
        return _said(UNHEALTHY, f"{what}: no exit within {_seconds(timeout)}")
    finally:
        if process.returncode is None:  # timed out or cancelled: end the whole session
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    if process.returncode == 0:
        return _said(HEALTHY, f"{what} exited 0")
    tail = output[-200:].decode(errors="replace").strip()
    log.info("health command of %s exited %s: %s", inst.id, process.returncode, tail)
    last = tail.splitlines()[-1].strip() if tail else ""
    return _said(UNHEALTHY, f"{what} exited {process.returncode}" + (f": {last}" if last
                                                                       else ""))


async def _http(url: str, http: HTTPCheck, *, timeout: float) -> flavor.Verdict:
    what = f"GET {url}"
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        log.warning("health URL %r is not http:// or https://", url)
        return _said(UNKNOWN, f"{what}: not an http:// or https:// URL")
    import aiohttp  # here: only HTTP probes need it (~8 MB of RSS in every flavor process)

    limit = aiohttp.ClientTimeout(total=timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=limit) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            status, phrase = response.status, response.reason or ""
    except (aiohttp.InvalidURL, ValueError) as exc:
        log.warning("health URL %r cannot be used: %s", url, exc)
        return _said(UNKNOWN, f"{what}: the URL cannot be used: {exc}")
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, socket.gaierror):
            log.warning("health URL %r: host does not resolve", url)
            return _said(UNKNOWN, f"{what}: the host does not resolve")
        return _said(UNHEALTHY, f"{what}: {_os_error(exc.os_error)}")
    except TimeoutError:
        return _said(UNHEALTHY, f"{what}: no answer within {_seconds(timeout)}")
    except aiohttp.ClientError as exc:
        return _said(UNHEALTHY, f"{what}: {exc or type(exc).__name__}")
    verdict = HEALTHY if http.healthy_status(status) else UNHEALTHY
    return _said(verdict, f"{what}: {status} {phrase}".rstrip())


async def _tcp(target: str, timeout: float) -> flavor.Verdict:
    what = f"connect {target.strip()}"
    address = _host_port(target)
    if address is None:
        log.warning("health TCP target %r is not host:port", target)
        return _said(UNKNOWN, f"{what}: not host:port")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(*address), timeout)
    except socket.gaierror:
        log.warning("health TCP target %r: host does not resolve", target)
        return _said(UNKNOWN, f"{what}: the host does not resolve")
    except TimeoutError:
        return _said(UNHEALTHY, f"{what}: no answer within {_seconds(timeout)}")
    except OSError as exc:
        return _said(UNHEALTHY, f"{what}: {_os_error(exc)}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return _said(HEALTHY, f"{what}: accepted")


def _said(health: flavor.Health, reason: str) -> flavor.Verdict:
    return flavor.Verdict(health=health, reason=reason)


def _os_error(error: OSError) -> str:
    """``connection refused``: the OS's words, as people write them."""
    # asyncio says "Connect call failed ('127.0.0.1', 80)"; the errno's words are clearer.
    words = (os.strerror(error.errno) if error.errno else None) or str(error) \
        or type(error).__name__
    return words[:1].lower() + words[1:]


def _seconds(value: float) -> str:
    return durations.format_duration(value)


SHOWN = 60
"""The most characters of a health command a reason quotes."""


def _shortened(script: str) -> str:
    line = " ".join(script.split())
    return line if len(line) <= SHOWN else line[:SHOWN - 1] + "…"


def _host_port(target: str) -> tuple[str, int] | None:
    host, _, port = target.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)
