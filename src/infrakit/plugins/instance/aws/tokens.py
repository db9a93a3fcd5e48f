"""Idempotency tokens: a retried Provision must not launch a second instance.

Each Provision gets a token, sent as RunInstances' ``ClientToken`` (EC2 answers a repeat
with the first launch) *and* as the tag :data:`TAG` on the instance, set atomically at
launch. EC2-compatible APIs may ignore ``ClientToken`` (moto does), so we never rely on
it alone: when an attempt failed in a way that may have launched the instance anyway (a
5xx, a timeout after sending), the next attempt first looks for the tag (:mod:`.plugin`).

A Provision that gives up after such a failure leaves its token in the :class:`Ledger`,
under a fingerprint of its request. The group then asks again with the same spec, and that
Provision takes the token over and looks first: the instance the lost request launched is
returned instead of a second one. Two Provisions of identical specs in flight together
still get different tokens (a group of cattle asks for several identical instances).
"""

from __future__ import annotations

import collections
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

TAG = "infrakit.provision_token"
"""The instance tag holding the token of the Provision that launched it."""
KEEP = 3600.0
"""Seconds a token of an unsettled Provision is kept: by then whatever it launched has long
been listed by the group (it carries the group's tags)."""
LIMIT = 10_000
"""Tokens kept at most; the oldest go first."""


def new() -> str:
    """A fresh token (32 hex digits: within ``ClientToken``'s 64 ASCII characters)."""
    return secrets.token_hex(16)


def fingerprint(request: dict[str, Any]) -> str:
    """What identifies a request across retries by the group: its whole content."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def stamp(request: dict[str, Any], token: str) -> dict[str, Any]:
    """``request`` carrying ``token``: as ``ClientToken`` and as the instance's :data:`TAG`."""
    specs = []
    for entry in request["TagSpecifications"]:
        if entry.get("ResourceType") == "instance":
            entry = {**entry, "Tags": [*entry.get("Tags", []), {"Key": TAG, "Value": token}]}
        specs.append(entry)
    return {**request, "ClientToken": token, "TagSpecifications": specs}


class Ledger:
    """Tokens of Provisions that gave up not knowing whether EC2 launched, by fingerprint."""

    def __init__(self, *, keep: float = KEEP, limit: int = LIMIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.keep_for = keep
        self.limit = limit
        self.clock = clock
        self._tokens: collections.OrderedDict[str, tuple[str, float]] = \
            collections.OrderedDict()
        """Token → (fingerprint, when kept), oldest first."""

    def __len__(self) -> int:
        return len(self._tokens)

    def keep(self, key: str, token: str) -> None:
        """``token``'s Provision of the request ``key`` may have launched an instance."""
        self._tokens.pop(token, None)
        self._tokens[token] = (key, self.clock())
        while len(self._tokens) > self.limit:
            self._tokens.popitem(last=False)

    def take(self, key: str) -> str | None:
        """The oldest token kept for the request ``key`` (no longer kept), if any."""
        now = self.clock()
        for token, (kept_for, since) in list(self._tokens.items()):
            if now - since > self.keep_for:
                del self._tokens[token]
            elif kept_for == key:
                del self._tokens[token]
                return token
        return None
