"""A real EC2 stand-in for tests and benchmarks: ``moto_server`` on loopback, and a fault
proxy of our own in front of it.

- :class:`MotoServer` starts ``moto_server`` (PyPI ``moto[server]``, from the running
  Python's bin dir) on 127.0.0.1 and a free port, and stops it by its pid.
- :class:`FaultProxy` forwards EC2's query API to it and counts the requests by ``Action``;
  told to, it answers the next requests (of one action, or any) with a fault instead:
  ``throttle`` (400 ``RequestLimitExceeded``), ``unavailable`` (503), ``auth`` (401
  ``AuthFailure``), or, after forwarding, ``lost`` (EC2 did it; the caller hears a 503) and
  ``late`` (EC2 did it; the answer comes after ``delay`` seconds).

Credentials in tests are dummies (:data:`ENV`), set only in the tests' own environment.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import importlib.util
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from infrakit import processes
from infrakit.testing import free_port

REGION = "us-east-1"
ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
"""Dummy credentials and the region, for the environment of a test's plugin."""
UNSET = ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL",
         "AWS_ENDPOINT_URL_EC2")
"""Variables that would point boto3 elsewhere than the test wants."""
BIN = pathlib.Path(sys.executable).parent


def environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) with :data:`ENV` set and :data:`UNSET` removed."""
    env = {key: value for key, value in (base or dict(os.environ)).items() if key not in UNSET}
    return {**env, **ENV}


def missing() -> str | None:
    """Why EC2 tests cannot run here, or ``None``."""
    if not (BIN / "moto_server").exists():
        return f"moto_server not in {BIN}: pip install 'moto[server]'"
    if importlib.util.find_spec("boto3") is None:
        return "boto3 is not installed: pip install 'infrakit[aws]'"
    return None


def client(url: str) -> Any:
    """A boto3 EC2 client of the test's own on ``url``, with the dummy credentials."""
    boto3 = importlib.import_module("boto3")
    return boto3.client("ec2", region_name=REGION, endpoint_url=url,
                        aws_access_key_id=ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=ENV["AWS_SECRET_ACCESS_KEY"])


def image(ec2: Any) -> str:
    """An AMI moto knows (any of its default images launches)."""
    images = ec2.describe_images(Owners=["amazon"])["Images"] or ec2.describe_images()["Images"]
    return str(sorted(each["ImageId"] for each in images)[0])


class MotoServer:
    """``moto_server`` on 127.0.0.1 (a free port), as a process of ours."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = pathlib.Path(tempfile.mkstemp(prefix="moto-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60.0) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=environment())
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"moto_server did not start: {self.tail()}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):
                return True
        except (OSError, urllib.error.URLError):
            return False

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=30):
            pass

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def close(self) -> None:
        if self.process is not None:
            processes.stop_popens([self.process], timeout=10)
            self.process = None
        self.log.unlink(missing_ok=True)


@dataclass
class Fault:
    """What to answer instead of EC2, how many more times, and to which action."""

    kind: str
    count: int
    action: str | None = None
    delay: float = 0.0


_ERRORS = {
    "throttle": (400, "RequestLimitExceeded", "Request limit exceeded."),
    "unavailable": (503, "Unavailable", "The service is unavailable. Please try again."),
    "lost": (503, "Unavailable", "The service is unavailable. Please try again."),
    "auth": (401, "AuthFailure", "AWS was not able to validate the provided access "
                                 "credentials"),
}
KINDS = (*_ERRORS, "late")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length",
               "content-encoding", "host", "server", "date"}


class FaultProxy:
    """A reverse proxy on 127.0.0.1 that forwards to ``upstream`` (moto), counts requests by
    action, and injects faults. It runs its own event loop in a thread, so that synchronous
    tests and benchmarks can use it as well as async ones."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.calls: collections.Counter[str] = collections.Counter()
        """Requests received, by action."""
        self.injected: collections.Counter[str] = collections.Counter()
        """Faults answered, by action."""
        self.answered: collections.Counter[str] = collections.Counter()
        """Requests answered (forwarded or faulted), by action."""
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def start(self) -> None:
        ready = threading.Event()
        failed: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, failed), daemon=True,
                                        name="fault-proxy")
        self._thread.start()
        if not ready.wait(30) or failed:
            raise RuntimeError(f"the fault proxy did not start: {failed}")

    def close(self) -> None:
        if self._thread is None:
            return
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
        self._thread = None

    def inject(self, kind: str, *, count: int = 1, action: str | None = None,
               delay: float = 0.0) -> None:
        """Answer the next ``count`` requests (of ``action``, else any) with ``kind``."""
        if kind not in KINDS:
            raise ValueError(f"fault kind: expected one of {', '.join(KINDS)}, got {kind!r}")
        with self._lock:
            self._faults.append(Fault(kind, count, action, delay))

    def clear(self) -> None:
        """No more faults; counts start again from zero."""
        with self._lock:
            self._faults.clear()
            self.calls.clear()
            self.injected.clear()
            self.answered.clear()

    def counts(self) -> dict[str, int]:
        """A copy of :attr:`calls`."""
        with self._lock:
            return dict(self.calls)

    def answers(self) -> dict[str, int]:
        """A copy of :attr:`answered`."""
        with self._lock:
            return dict(self.answered)

    def pending(self) -> int:
        """Faults still to be answered."""
        with self._lock:
            return sum(fault.count for fault in self._faults)

    # -- the server ----------------------------------------------------------------------

    def _run(self, ready: threading.Event, failed: list[BaseException]) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve(ready))
        except BaseException as exc:  # reported to start() when it happens before ready
            failed.append(exc)
            ready.set()
        finally:
            self._loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        async with ClientSession(timeout=ClientTimeout(total=120)) as self._session:
            try:
                await web.TCPSite(runner, "127.0.0.1", self.port).start()
                ready.set()
                await self._stop.wait()
            finally:
                await runner.cleanup()

    def _take(self, action: str) -> Fault | None:
        with self._lock:
            self.calls[action] += 1
            for fault in self._faults:
                if fault.count > 0 and fault.action in (None, action):
                    fault.count -= 1
                    self.injected[action] += 1
                    self._faults = [f for f in self._faults if f.count > 0]
                    return fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        action = _action(request, body)
        try:
            return await self._answer(request, body, action)
        finally:
            with self._lock:
                self.answered[action] += 1

    async def _answer(self, request: web.Request, body: bytes,
                      action: str) -> web.StreamResponse:
        fault = self._take(action)
        if fault is not None and fault.kind not in ("lost", "late"):
            return _error(fault.kind)
        answer = await self._forward(request, body)
        if fault is None:
            return answer
        if fault.kind == "late":
            await asyncio.sleep(fault.delay)
            return answer
        return _error(fault.kind)  # lost: EC2 did it, the caller never hears

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._session.request(request.method, f"{self.upstream}{request.path_qs}",
                                         headers=headers, data=body) as answer:
            payload = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
            return web.Response(status=answer.status, body=payload, headers=kept)


def _action(request: web.Request, body: bytes) -> str:
    """The EC2 action of a query-API request (form body, else the query string)."""
    with contextlib.suppress(UnicodeDecodeError):
        form = urllib.parse.parse_qs(body.decode())
        if form.get("Action"):
            return form["Action"][0]
    return request.query.get("Action", f"{request.method} {request.path}")


def _error(kind: str) -> web.Response:
    status, code, message = _ERRORS[kind]
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
           f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
           f"<RequestID>{uuid.uuid4()}</RequestID></Response>")
    return web.Response(status=status, text=xml, content_type="text/xml")
