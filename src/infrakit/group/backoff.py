"""The provisioning circuit breaker of one group: exponential backoff with jitter, then a
capped retry rate once provisions keep failing.

After a failure the group provisions nothing until the backoff has passed, then tries one
member (a probe) before resuming at full speed. After ``FailureThreshold`` failures in a
row the group is ``ProvisionFailing`` and tries once per ``BackoffCap``. A success, or a
new spec, closes the breaker. Concurrent failures of one batch count once. The
supervisor asks :meth:`Breaker.allowance` before creating.
"""

from __future__ import annotations

import random

from infrakit.group import config

JITTER = 0.2
"""Each wait is shortened by up to this fraction, so that groups do not retry in step."""


class Breaker:
    """Counts consecutive provisioning failures and says when to try again."""

    def __init__(self, policy: config.ProvisionPolicy, *, rng: random.Random) -> None:
        self.policy = policy
        self.rng = rng
        self.failures = 0
        """Failures in a row."""
        self.retry_at = 0.0
        """No provision before this (monotonic seconds)."""
        self.last_error = ""
        """The latest failure's message."""
        self._epoch = 0

    @property
    def failing(self) -> bool:
        """True once ``FailureThreshold`` provisions failed in a row."""
        return self.failures >= self.policy.failure_threshold

    def allowance(self, now: float) -> int | None:
        """How many provisions may start now: any (``None``), none, or one probe."""
        if self.failures == 0:
            return None
        return 0 if now < self.retry_at else 1

    def ticket(self) -> int:
        """Taken when a provision starts; failures with the same ticket count once."""
        return self._epoch

    def failed(self, ticket: int, now: float, error: str) -> float:
        """Record a failure; return the wait before the next attempt."""
        self.last_error = error
        if ticket == self._epoch:
            self._epoch += 1
            self.failures += 1
            base = self.policy.backoff_base * 2 ** min(self.failures - 1, 62)
            wait = self.policy.backoff_cap if self.failing else min(self.policy.backoff_cap, base)
            self.retry_at = now + wait * (1 - JITTER * self.rng.random())
        return max(0.0, self.retry_at - now)

    def succeeded(self) -> None:
        """A provision worked: close the breaker."""
        self.failures = 0
        self.retry_at = 0.0
        self.last_error = ""
        self._epoch += 1

    def reset(self, policy: config.ProvisionPolicy) -> None:
        """A new spec: start afresh with its policy."""
        self.policy = policy
        self.succeeded()
