"""Benchmark: a 3-member ZooKeeper ensemble run by the group plugin with flavor-zookeeper.

The group plugin (``--poll-interval 200ms``), ``infrakit-instance-process --notify group``
and ``infrakit-flavor-zookeeper`` run as their own processes on a private plugins dir, with
Debian's ZooKeeper members on 127.0.0.11-13 (the tests' harness,
``tests/plugins/flavor/zookeeper/zkstack.py``). Each run measures:

- commit: from ``infrakit group commit`` to a healthy quorum (one leader, two followers, all
  three voting), and to the group converged;
- heal: from ``kill -9`` of the leader to a healthy quorum of three again (the replacement
  voting), and to the group converged;
- rolling: a rolling update of all three members (a JVM flag changed), from the commit to
  every member replaced and converged, and the longest stretch a client writing throughout
  saw its writes fail.

    .venv/bin/python bench/zookeeper.py [--runs 3] [--original DIR] [--json FILE]

``--original DIR`` (or ``$INFRAKIT_ORIGINAL_BIN``): also run each lifecycle under InfraKit
v0.5's Go group plugin (``DIR/infrakit-group-default``) with our flavor and instance plugins,
alternating with ours. It knows neither CanRemove nor Order nor our Health section, so it
replaces members in its own order and only when they vanish; it gives up a rolling update at
the first Unhealthy verdict of a new member (``Update to zk failed: Instance ... is
unhealthy``; the flavor's ``Startup`` window answers Unknown instead while a member starts),
which would read as ``nan`` here. Figures are medians of the runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import pathlib
import shutil
import signal
import statistics
import sys
import tempfile
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "plugins" / "flavor" / "zookeeper"))

import zkstack  # noqa: E402  (the tests' harness, found through the path above)

from infrakit import testing  # noqa: E402

LIDS = zkstack.ADDRESSES[:3]
ORIGINAL_ENV = "INFRAKIT_ORIGINAL_BIN"
FIGURES = ("commit_quorum", "commit_converged", "heal_quorum", "heal_converged",
           "rolling", "rolling_outage")


def ids(stack: zkstack.Stack, gid: str) -> dict[str, str]:
    return {lid: m["ID"] for lid, m in stack.members(gid).items()}


def converged(stack: zkstack.Stack, gid: str) -> bool:
    described = stack.describe(gid)
    found = sorted(m["LogicalID"] for m in described["Instances"] or [])
    return found == LIDS and bool(described.get("Converged", True))


def since(start: float) -> float:
    return time.monotonic() - start


def lifecycle(stack: zkstack.Stack, run: int, work: pathlib.Path, *,
              rolling_timeout: float = 300.0) -> dict[str, float]:
    """One commit, heal and rolling update; the figures in seconds."""
    gid = f"zk-bench-{run}"
    cwd = pathlib.Path(tempfile.mkdtemp(prefix="zk-", dir=work))
    made = zkstack.Ensemble(stack, gid, LIDS, testing.free_ports(3), cwd)
    port = made.client_port
    figures: dict[str, float] = {}
    try:
        start = time.monotonic()
        stack.commit(made.spec())
        testing.wait_for(lambda: zkstack.quorum(LIDS, port), what="quorum", timeout=120,
                         pause=0.02)
        figures["commit_quorum"] = since(start)
        testing.wait_for(lambda: converged(stack, gid), what="converged", timeout=120,
                         pause=0.02)
        figures["commit_converged"] = since(start)

        leader = testing.wait_for(lambda: zkstack.quorum(LIDS, port), what="leader")
        killed = ids(stack, gid)[leader]
        start = time.monotonic()
        os.killpg(zkstack.member_pid(stack, killed), signal.SIGKILL)
        testing.wait_for(lambda: ids(stack, gid).get(leader) not in (None, killed)
                         and zkstack.quorum(LIDS, port), what="healed", timeout=120, pause=0.02)
        figures["heal_quorum"] = since(start)
        testing.wait_for(lambda: converged(stack, gid), what="converged", timeout=120,
                         pause=0.02)
        figures["heal_converged"] = since(start)

        before = ids(stack, gid)
        with zkstack.Writer(LIDS, port) as writer:
            start = time.monotonic()
            stack.commit(made.spec(flavor={"JavaOpts": ["-Xmx128m", f"-Dbench.run={run}"]}))
            try:
                testing.wait_for(lambda: all(ids(stack, gid).get(lid) not in (None, before[lid])
                                             for lid in LIDS)
                                 and converged(stack, gid) and zkstack.quorum(LIDS, port),
                                 what="rolled", timeout=rolling_timeout, pause=0.02)
            except AssertionError as exc:  # v0.5's group gives up an update it cannot start
                print(f"rolling update: {exc}", flush=True)
                figures["rolling"] = math.nan
            else:
                figures["rolling"] = since(start)
        figures["rolling_outage"] = math.nan if math.isnan(figures["rolling"]) else writer.longest
        return figures
    finally:
        stack.free(gid)


def measure(runs: int, original: pathlib.Path | None) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {"ours": []}
    if original is not None:
        results["original"] = []
    work = pathlib.Path(tempfile.mkdtemp(prefix="zk-bench-"))
    try:
        for run in range(runs):
            for who in results:
                group_bin = original / "infrakit-group-default" if who == "original" else None
                place = work / f"{who}-{run}"
                place.mkdir()
                with zkstack.running(place, group_bin=group_bin) as stack:
                    figures = lifecycle(stack, run, place,
                                        rolling_timeout=60.0 if group_bin else 300.0)
                results[who].append(figures)
                print(f"run {run + 1} {who}: " + ", ".join(
                    f"{k} {v:.2f}s" for k, v in figures.items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def summary(results: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {who: {key: _median([r[key] for r in runs]) for key in FIGURES}
            for who, runs in results.items() if runs}


def _median(values: list[float]) -> float:
    measured = [value for value in values if not math.isnan(value)]
    return statistics.median(measured) if measured else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--original", type=pathlib.Path)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the writing client's reconnections: expected
    reason = zkstack.missing()
    if reason:
        raise SystemExit(f"zookeeper bench: {reason}")
    original = args.original or (pathlib.Path(os.environ[ORIGINAL_ENV])
                                 if os.environ.get(ORIGINAL_ENV) else None)
    if original is not None and not (original / "infrakit-group-default").is_file():
        print(f"original: {original}/infrakit-group-default missing; not measured")
        original = None
    results = measure(args.runs, original)
    medians = summary(results)
    print(f"\nmedians of {args.runs} runs (seconds)")
    print("figure".ljust(18) + "".join(who.rjust(10) for who in medians))
    for key in FIGURES:
        print(key.ljust(18) + "".join(f"{medians[who][key]:10.2f}" for who in medians))
    if args.json:
        document: dict[str, Any] = {"runs": results, "medians": medians}
        args.json.write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
