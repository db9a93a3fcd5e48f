"""Benchmark: instance-aws against a real moto_server (issue 11), counting EC2 requests.

Starts its own ``moto_server`` on 127.0.0.1 and our fault proxy in front of it (it injects
nothing here: it counts the requests by action), then, for ``--runs`` runs each (medians):

- floor: ``--converge`` (default 200) RunInstances of one instance, made directly with
  boto3, one after another and ``--workers`` at a time (the same requests the plugin makes);
- converge: infrakit-group-default + infrakit-instance-aws + infrakit-flavor-vanilla as
  processes (the group polling every second), from CommitGroup of ``--converge`` members
  to the last RunInstances answered (``launched``, to compare with the floor) and to the
  group Converged on them, with the requests it took (RunInstances must equal the size:
  nothing launched twice);
- idle: a group of ``--idle`` (default 1000) members already there (launched with the
  group's tags), one reconcile at a time (``Group.Wake``, the poll being 10 minutes): the
  requests each reconcile makes (goal: one DescribeInstances page per 1,000 instances,
  no write) and how long it takes.

    .venv/bin/python bench/aws.py [--converge 200] [--idle 1000] [--runs 3] [--workers 16]
        [--json FILE]

Needs the ``aws`` extra and ``moto[server]`` (the test extra).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from infrakit import testing, testing_aws
from infrakit.group import config, hashing
from infrakit.rpc import sockets, sync

BIN = pathlib.Path(sys.executable).parent
LOG = os.environ.get("IKB_LOG", "2")
"""The plugins' --log level (``IKB_LOG=4`` to see what each did)."""
WRITES = ("RunInstances", "TerminateInstances", "CreateTags")


# Processes --------------------------------------------------------------------------

@contextlib.contextmanager
def plugins(endpoint: str, *, poll: str, workers: int) -> Iterator[pathlib.Path]:
    """group, instance-aws and flavor-vanilla as processes; their plugins dir."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="ikb-"))
    env = {**testing_aws.environment(), "INFRAKIT_PLUGINS_DIR": str(root),
           "INFRAKIT_HOME": str(root)}
    started: list[subprocess.Popen[bytes]] = []
    try:
        for name, argv in (
                ("instance-aws", ["infrakit-instance-aws", "--endpoint-url", endpoint,
                                  "--workers", str(workers), "--timeout", "60s", "--log", LOG]),
                ("flavor-vanilla", ["infrakit-flavor-vanilla", "--log", "2"]),
                ("group", ["infrakit-group-default", "--poll-interval", poll, "--log", LOG])):
            with (root / f"{name}.log").open("ab") as log:
                started.append(subprocess.Popen([str(BIN / argv[0]), *argv[1:]], env=env,
                                                stdout=log, stderr=log,
                                                stdin=subprocess.DEVNULL))
            deadline = time.monotonic() + 60
            while not sockets.is_live(root / name):
                if time.monotonic() > deadline or started[-1].poll() is not None:
                    raise SystemExit(f"{name} did not start; see {root / name}.log")
                time.sleep(0.05)
        yield root
    finally:
        testing.stop_processes(started, timeout=15)
        shutil.rmtree(root, ignore_errors=True)


def call(root: pathlib.Path, method: str, params: dict[str, Any]) -> Any:
    return sync.Client(root / "group", timeout=600.0).call(method, params)


def until(check: Any, *, what: str, timeout: float = 1800.0, pause: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout:g}s")
        time.sleep(pause)


# The group --------------------------------------------------------------------------

def spec(gid: str, size: int, *, ami: str) -> dict[str, Any]:
    return {"ID": gid, "Properties": {
        "Instance": {"Plugin": "instance-aws", "Properties": {
            "RunInstancesInput": {"ImageId": ami, "InstanceType": "t3.micro"}}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Init": ["echo hello"]}},
        "Allocation": {"Size": size},
        "Health": {"Interval": "0s"}}}


def run_input(ami: str, tags: dict[str, str]) -> dict[str, Any]:
    """The RunInstances request the plugin makes for one member."""
    tagged = [{"Key": key, "Value": value} for key, value in sorted(tags.items())]
    return {"ImageId": ami, "InstanceType": "t3.micro", "MinCount": 1, "MaxCount": 1,
            "UserData": "echo hello", "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tagged},
                {"ResourceType": "volume", "Tags": tagged}]}


def converged(root: pathlib.Path, gid: str, size: int) -> bool:
    found = call(root, "Group.DescribeGroup", {"ID": gid})["Description"]
    return bool(found["Converged"]) and len(found["Instances"] or []) == size


def live(ec2: Any, gid: str) -> int:
    pages = ec2.get_paginator("describe_instances").paginate(Filters=[
        {"Name": "tag:infrakit.group", "Values": [gid]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return sum(len(r["Instances"]) for page in pages for r in page["Reservations"])


# Phases -----------------------------------------------------------------------------

def floor(ec2: Any, size: int, *, ami: str, workers: int, parallel: bool) -> float:
    """Seconds for ``size`` RunInstances made directly with boto3."""
    request = run_input(ami, {"infrakit.group": "floor"})
    started = time.perf_counter()
    if parallel:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda _: ec2.run_instances(**request), range(size)))
    else:
        for _ in range(size):
            ec2.run_instances(**request)
    return time.perf_counter() - started


def converge(root: pathlib.Path, proxy: testing_aws.FaultProxy, ec2: Any, size: int, *,
             ami: str, run: int) -> dict[str, float]:
    gid = f"c{size}-{run}"
    proxy.clear()
    launched: list[float] = []

    def watch() -> None:  # when the last launch was answered, as the proxy saw it
        while proxy.answers().get("RunInstances", 0) < size:
            time.sleep(0.01)
        launched.append(time.perf_counter())

    watcher = threading.Thread(target=watch, daemon=True)
    started = time.perf_counter()
    watcher.start()
    call(root, "Group.CommitGroup", {"Spec": spec(gid, size, ami=ami), "Pretend": False})
    until(lambda: converged(root, gid, size), what=f"{gid} converged", pause=0.5)
    took = time.perf_counter() - started
    watcher.join(timeout=60)
    counts = proxy.counts()
    call(root, "Group.DestroyGroup", {"ID": gid})
    until(lambda: live(ec2, gid) == 0, what=f"{gid} destroyed", pause=1.0)
    return {"seconds": took, "launched": launched[0] - started if launched else float("nan"),
            "RunInstances": counts.get("RunInstances", 0),
            "DescribeInstances": counts.get("DescribeInstances", 0),
            "other": sum(n for k, n in counts.items()
                         if k not in ("RunInstances", "DescribeInstances"))}


def seed(ec2: Any, size: int, *, ami: str, workers: int) -> str:
    """``size`` instances launched directly, tagged as the group's members; the group ID."""
    gid = f"idle{size}"
    props = config.parse(spec(gid, size, ami=ami)["Properties"])
    tags = {"infrakit.group": gid, "infrakit.config_sha": hashing.config_sha(props),
            "infrakit.instance-aws": "instance-aws"}
    request = run_input(ami, tags)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: ec2.run_instances(**request), range(size)))
    return gid


def settled_counts(proxy: testing_aws.FaultProxy, *,
                   quiet: float = 2.0) -> tuple[dict[str, int], float]:
    """The proxy's counts of answered requests once none came for ``quiet`` seconds, and
    when (monotonic) the last was answered."""
    last, since = proxy.answers(), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.01)
        now = proxy.answers()
        if now != last:
            last, since = now, time.monotonic()
    return last, since


def reconcile(root: pathlib.Path, proxy: testing_aws.FaultProxy, gid: str) -> dict[str, float]:
    """One reconcile of an idle group: its requests by action, and its seconds. Nothing
    else asks the plugin meanwhile (a DescribeGroup would: it lists the members too)."""
    settled_counts(proxy)
    proxy.clear()
    started = time.monotonic()
    call(root, "Group.Wake", {"ID": gid})
    until(lambda: proxy.answers().get("DescribeInstances", 0) >= 1, what="a reconcile",
          pause=0.01)
    counts, ended = settled_counts(proxy)
    return {"seconds": ended - started,  # to the last request's answer, as the proxy saw it
            "DescribeInstances": counts.get("DescribeInstances", 0),
            "writes": sum(counts.get(action, 0) for action in WRITES),
            "other": sum(n for k, n in counts.items() if k != "DescribeInstances")}


def adopted(root: pathlib.Path, proxy: testing_aws.FaultProxy, gid: str, size: int) -> None:
    """Wait for the commit's first reconcile to end; fail unless the group took the seeded
    instances as they are (no write) and is converged on them."""
    until(lambda: proxy.answers().get("DescribeInstances", 0) >= 1, what=f"{gid} listed")
    counts, _ = settled_counts(proxy, quiet=5.0)
    writes = {action: counts[action] for action in WRITES if counts.get(action)}
    if writes or not converged(root, gid, size):
        raise SystemExit(f"{gid}: not adopted as it is ({writes or 'not converged'}); "
                         "the seeded members do not match the spec")


# Main -------------------------------------------------------------------------------

def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: median([run[key] for run in runs]) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--converge", type=int, default=200)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    reason = testing_aws.missing()
    if reason is not None:
        raise SystemExit(f"bench/aws.py: {reason}")
    os.environ.update(testing_aws.environment())
    results: dict[str, Any] = {}
    moto = testing_aws.MotoServer()
    try:
        moto.start()
        ec2 = testing_aws.client(moto.url)
        ami = testing_aws.image(ec2)
        with testing_aws.FaultProxy(moto.url) as proxy:
            floors = {"sequential": [], "parallel": []}  # type: dict[str, list[float]]
            for _ in range(args.runs):
                for how in floors:
                    moto.reset()
                    floors[how].append(floor(ec2, args.converge, ami=ami,
                                             workers=args.workers, parallel=how == "parallel"))
            results["floor"] = {how: median(values) for how, values in floors.items()}
            print(json.dumps({"floor": results["floor"]}), flush=True)

            moto.reset()
            with plugins(proxy.url, poll="1s", workers=args.workers) as root:
                runs = [converge(root, proxy, ec2, args.converge, ami=ami, run=run)
                        for run in range(args.runs)]
            results["converge"] = medians(runs)
            results["converge"]["vs_parallel_floor"] = round(
                results["converge"]["seconds"] / results["floor"]["parallel"], 2)
            print(json.dumps({"converge": results["converge"]}), flush=True)

            moto.reset()
            gid = seed(ec2, args.idle, ami=ami, workers=args.workers)
            with plugins(proxy.url, poll="10m", workers=args.workers) as root:
                proxy.clear()
                call(root, "Group.CommitGroup", {"Spec": spec(gid, args.idle, ami=ami),
                                                 "Pretend": False})
                adopted(root, proxy, gid, args.idle)
                runs = [reconcile(root, proxy, gid) for _ in range(args.runs)]
            results["idle"] = medians(runs)
            print(json.dumps({"idle": results["idle"]}), flush=True)
    finally:
        moto.close()
    table(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def table(results: dict[str, Any], args: argparse.Namespace) -> None:
    rows = [
        (f"floor: {args.converge} RunInstances, sequential", results["floor"]["sequential"], ""),
        (f"floor: {args.converge} RunInstances, {args.workers} at a time",
         results["floor"]["parallel"], ""),
        (f"ours: {args.converge} launched (commit to last answer)",
         results["converge"]["launched"], ""),
        (f"ours: converge {args.converge}", results["converge"]["seconds"],
         f"RunInstances {results['converge']['RunInstances']:g}, DescribeInstances "
         f"{results['converge']['DescribeInstances']:g}, other "
         f"{results['converge']['other']:g}"),
        (f"ours: one idle reconcile of {args.idle}", results["idle"]["seconds"],
         f"DescribeInstances {results['idle']['DescribeInstances']:g}, writes "
         f"{results['idle']['writes']:g}, other {results['idle']['other']:g}"),
    ]
    print(f"\n{'measure (median of ' + str(args.runs) + ' runs)':<48} {'seconds':>8}  requests")
    for name, seconds, requests in rows:
        print(f"{name:<48} {seconds:>8.2f}  {requests}")


if __name__ == "__main__":
    main()
