"""Calling EC2 from the event loop: boto3 is blocking, so each request runs in a bounded
thread pool, with a timeout, retried by :mod:`.retry` and counted.

One boto3 client serves every call (boto3's clients are thread-safe); ``workers`` requests
are in flight at most, and a call waits at most :data:`QUEUE_WAIT` for its turn. A call
that times out is not abandoned blindly: its thread may still get EC2's answer, and
:class:`.failures.Failure` carries it (``pending``) so that a Provision can use what it
launched. :attr:`Client.calls` counts the requests sent, by action (botocore's
``before-send`` event fires once per HTTP request; its own retries are off).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import importlib
import logging
import threading
from typing import Any

from infrakit import validation
from infrakit.plugins.instance.aws import failures, retry

log = logging.getLogger(__name__)

QUEUE_WAIT = 10.0
"""Seconds a call waits for a free worker before it is refused as busy (nothing sent)."""
MARGIN = 5.0
"""Seconds beyond botocore's own connect and read timeouts before we stop waiting."""


class Client:
    """EC2 for async code: :meth:`call` (retried), :meth:`once`, :meth:`check`."""

    def __init__(self, boto: Any, *, policy: retry.Policy | None = None, timeout: float = 15.0,
                 workers: int = 16) -> None:
        self.boto = boto
        self.policy = policy or retry.Policy()
        self.timeout = timeout + MARGIN
        """Seconds we wait for one request (botocore gives up before, unless it hangs)."""
        self.workers = workers
        self.calls: collections.Counter[str] = collections.Counter()
        """Requests sent to EC2, by action."""
        self._counting = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                           thread_name_prefix="ec2")
        self._slots = asyncio.Semaphore(workers)
        boto.meta.events.register("before-send.ec2", self._count)

    def close(self) -> None:
        """Stop the workers (a request in flight finishes in its thread) and the counting."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.boto.meta.events.unregister("before-send.ec2", self._count)

    async def call(self, operation: str, params: dict[str, Any], *,
                   root: str = "") -> dict[str, Any]:
        """``operation`` (``DescribeInstances``) with ``params``, retried while retrying may
        help (only for requests that may be repeated: reads and idempotent writes); our
        error naming the cause when it fails."""
        attempts = self.policy.attempts()
        while True:
            try:
                return await self.once(operation, params, root=root)
            except failures.Failure as failure:
                wait = attempts.next_delay() if failure.retryable else None
                if wait is None:
                    raise failure.error(attempts=attempts.done) from None
                log.info("%s; retrying in %.2fs", failure, wait)
                await asyncio.sleep(wait)

    async def once(self, operation: str, params: dict[str, Any], *,
                   root: str = "") -> dict[str, Any]:
        """One request; :class:`.failures.Failure` when it fails."""
        method = getattr(self.boto, _method_name(operation))
        try:
            async with asyncio.timeout(QUEUE_WAIT):
                await self._slots.acquire()
        except TimeoutError:
            raise failures.Failure(
                failures.Kind.THROTTLED, operation, "Busy",
                f"{self.workers} requests to EC2 already in flight (--workers)") from None
        try:
            future = self._pool.submit(functools.partial(method, **params))
            try:
                answer: dict[str, Any] = await asyncio.wait_for(
                    asyncio.shield(asyncio.wrap_future(future)), self.timeout)
            except TimeoutError:
                raise failures.timed_out(operation, future) from None
            except Exception as exc:
                raise failures.classify(exc, operation=operation, root=root) from None
            return answer
        finally:
            self._slots.release()

    async def settle(self, pending: concurrent.futures.Future[Any]) -> dict[str, Any] | None:
        """The answer of a request we stopped waiting for, once its thread is done: its
        result, or ``None`` when it failed; ``TimeoutError`` when it is still running."""
        try:
            result: dict[str, Any] = await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(pending)), self.timeout)
        except TimeoutError:
            raise
        except Exception:
            return None
        return result

    def check(self, operation: str, params: dict[str, Any], *, root: str) -> None:
        """Validate ``params`` against EC2's model of ``operation`` without sending anything;
        ``InvalidError`` naming each bad field under ``root``."""
        validate = importlib.import_module("botocore.validate")
        shape = self.boto.meta.service_model.operation_model(operation).input_shape
        report = validate.ParamValidator().validate(params, shape)
        if report.has_errors():
            raise validation.invalid(failures.param_problems(report.generate_report(),
                                                             root=root))

    def _count(self, event_name: str = "", **_: Any) -> None:
        action = event_name.rsplit(".", 1)[-1]
        with self._counting:
            self.calls[action] += 1


@functools.cache
def _method_name(operation: str) -> str:
    """``DescribeInstances`` → ``describe_instances`` (boto3's method)."""
    name: str = importlib.import_module("botocore").xform_name(operation)
    return name
