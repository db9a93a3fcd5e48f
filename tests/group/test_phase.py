"""The phase, pure: from the facts of one moment to the phase, its reason and counts."""

from __future__ import annotations

from typing import Any

import pytest

from infrakit.group import crashloop, decide, health, inflight, phase, rolling, target
from infrakit.spi import flavor

from .conftest import member, spec

SIZE2 = target.make(spec(size=2, Health={"Interval": "5s"}))
SHA = SIZE2.sha


def facts(*, verdicts: tuple[flavor.Health, ...] = (flavor.Health.HEALTHY,) * 2,
          **changes: Any) -> phase.Facts:
    book = health.Book()
    members = {}
    for n, verdict in enumerate(verdicts):
        found = member(f"i-{n}", sha=SHA)
        members[found.id] = found
        book.record(found.id, verdict, 0.0)
    base: dict[str, Any] = {"target": SIZE2, "decision": decide.Decision(converged=True),
                            "members": members, "book": book, "probed": True, "now": 100.0}
    return phase.Facts(**{**base, **changes})


LOOPING = crashloop.Ledger(config=SHA, slots={"*": crashloop.Slot(
    deaths=[90.0, 95.0, 99.0], reason="exited or vanished 1s after it appeared",
    retry_at=109.0, backoff=10.0)})


@pytest.mark.parametrize(("given", "expected"), [
    (facts(), ("Converged", "2 members match the spec, all Healthy")),
    (facts(probed=False, verdicts=(flavor.Health.UNKNOWN,) * 2),
     ("Converged", "2 members match the spec")),
    (facts(verdicts=(flavor.Health.HEALTHY, flavor.Health.UNHEALTHY)),
     ("Unhealthy", "i-1 is Unhealthy (Flavor.Healthy of flavor-fake); replaced once "
                   "Unhealthy for 30s after a 30s grace")),
    (facts(verdicts=(flavor.Health.HEALTHY, flavor.Health.UNKNOWN)),
     ("Converging", "waiting for 1 member to be probed Healthy (their health is Unknown)")),
    (facts(verdicts=(flavor.Health.HEALTHY,), decision=decide.Decision(),
           ledger=inflight.Snapshot(creating=(None,))),
     ("Converging", "1 of 2 members exist; creating 1, removing 0")),
    (facts(crashes=LOOPING, decision=decide.Decision(backing_off=1)),
     ("CrashLooping", "members died young 3 times within 600s (last: exited or vanished 1s "
                      "after it appeared); next attempt in 9s")),
    (facts(crashes=LOOPING, provisioning=phase.Provisioning(
        failures=5, failing=True, last_error="quota", cap=60.0)),
     ("ProvisionFailing", "5 provision attempts failed in a row (quota); retrying every 60s")),
    (facts(decision=None), ("Converging", "planning the committed spec")),
    (facts(update=rolling.UpdateState(target=SHA, paused=True, reason="paused by request")),
     ("Paused", "paused by request")),
    (facts(error="could not reconcile: boom"), ("Converging", "could not reconcile: boom")),
    (facts(destroying=True), ("Destroying", "DestroyGroup is removing every member")),
    (facts(busy=True), ("Converging", "2 of 2 members exist; creating 0, removing 0")),
])
def test_the_phase_says_what_is_true(given: phase.Facts, expected: tuple[str, str]) -> None:
    verdict = phase.judge(given)
    assert (verdict.phase, verdict.reason) == expected
    counts = verdict.counts
    assert counts.healthy + counts.unhealthy + counts.unknown == counts.existing
    assert phase.converged(given) == (expected[0] == "Converged")


def said(reasons: dict[str, str]) -> phase.Facts:
    """Two Unhealthy members (the budget allows both), each probe with its reason."""
    found = facts(verdicts=(flavor.Health.UNHEALTHY,) * 2,
                  target=target.make(spec(size=2, Health={"Interval": "5s",
                                                          "MaxUnhealthy": 2})))
    for iid, reason in reasons.items():
        found.book.record(iid, flavor.Health.UNHEALTHY, 1.0, reason=reason)
    return found


@pytest.mark.parametrize(("reasons", "expected"), [
    ({}, "i-0, i-1 are Unhealthy (Flavor.Healthy of flavor-fake); "),
    ({"i-0": "GET http://h/: 500 Internal Server Error", "i-1": "connection refused"},
     "i-0, i-1 are Unhealthy (Flavor.Healthy of flavor-fake: i-0: GET http://h/: 500 "
     "Internal Server Error, i-1: connection refused); "),
    ({"i-1": "exec 'check.sh' exited 1: no db"},
     "i-0, i-1 are Unhealthy (Flavor.Healthy of flavor-fake: i-1: exec 'check.sh' exited 1: "
     "no db); "),
])
def test_the_unhealthy_reason_quotes_what_each_probe_said(
        reasons: dict[str, str], expected: str) -> None:
    verdict = phase.judge(said(reasons))
    assert verdict.phase == "Unhealthy" and verdict.reason.startswith(expected), verdict.reason
