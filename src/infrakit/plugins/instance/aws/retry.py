"""How long to wait between attempts of one EC2 call: exponential backoff with jitter.

botocore's own retries are off (:mod:`.session`), so every request EC2 receives is one we
chose to send: the benchmark counts them, and a Provision decides itself whether a retry
must first look for what the failed attempt may have launched (:mod:`.plugin`). The
plugin's calls share one :class:`Policy`; each call keeps its own attempt count and deadline.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

BASE = 0.25
"""Seconds before the first retry (before jitter)."""
CAP = 4.0
"""The longest wait between two attempts (before jitter)."""
BUDGET = 25.0
"""Seconds one operation may spend retrying: under the group's 30 s RPC timeout, so that the
caller hears our ``TemporaryError`` rather than its own timeout."""


@dataclass(frozen=True)
class Policy:
    """How often and how patiently to retry."""

    retries: int = 5
    """Retries after the first attempt (``--retries``)."""
    base: float = BASE
    """Seconds before the first retry."""
    cap: float = CAP
    """The longest wait."""
    budget: float = BUDGET
    """Seconds from the first attempt after which no retry starts."""
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (0 is the first): half of the
        exponential step for sure, the other half at random, so that plugins throttled
        together do not come back together, yet none comes back at once."""
        step = min(self.cap, self.base * 2 ** min(attempt, 30))
        wait: float = step / 2 + self.rng.uniform(0, step / 2)
        return wait

    def attempts(self) -> Attempts:
        """A fresh count for one operation, starting now."""
        return Attempts(self, started=time.monotonic())


@dataclass
class Attempts:
    """The attempts of one operation so far."""

    policy: Policy
    started: float
    done: int = 0
    """Attempts that failed."""

    def next_delay(self) -> float | None:
        """After a failed attempt: the wait before the next one, or ``None`` when the
        retries or the time budget are spent."""
        self.done += 1
        if self.done > self.policy.retries:
            return None
        wait = self.policy.delay(self.done - 1)
        if time.monotonic() + wait - self.started > self.policy.budget:
            return None
        return wait
