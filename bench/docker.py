"""Benchmark: groups of busybox httpd containers on a private Docker engine (issue 10).

A private dockerd (its own data root, exec root and socket, in a network namespace of its
own: ``tests/plugins/instance/docker/privatedocker.py``) and an image of Debian's static
busybox, built locally (nothing is pulled). For each N (default 10, 50, 100) and each run:

- converge: from CommitGroup to N containers running and the group converged;
- heal: from ``docker kill`` of 10% of them (one Engine API call each, all at once) to N
  running again and converged; ours heals from the engine's event stream (``--notify``);
- rolling: a new flavor Init with ``MaxSurge: 25%``, to every member on the new config;
- destroy: DestroyGroup until no container of the group is left, running or exited;

against the floor: N ``docker run -d`` from the CLI one after another, and all N at once
(each then removed); the heal against as many ``docker run -d`` at once as it replaces
(``cli_heal_floor``; the goal: heal < 1 s + that floor, ``heal_over_floor`` < 1).
``--original DIR`` (or ``$INFRAKIT_ORIGINAL_BIN``) also runs InfraKit
v0.5's ``infrakit-group-default``, ``infrakit-instance-docker`` and
``infrakit-flavor-vanilla`` from DIR, with the original's Properties layout; it has no
surge (its rolling update is one at a time: measured with its default, reported apart) and
no event stream (it heals at its next poll). Both group plugins poll every ``--poll``
(default 5s). Figures are medians of ``--runs`` runs (default 3).

    .venv/bin/python bench/docker.py [--sizes 10 50 100] [--runs 3] [--original DIR]
        [--poll 5s] [--json FILE]

Needs root (dockerd, a network namespace) and scripts/deps-docker.sh's packages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from infrakit import testing
from infrakit.plugins.instance.docker import engine
from infrakit.rpc import sockets, sync

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "plugins" / "instance" / "docker"))
import privatedocker  # noqa: E402  (the tests' private engine, shared rather than copied)

BIN = pathlib.Path(sys.executable).parent
ORIGINAL_ENV = "INFRAKIT_ORIGINAL_BIN"
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/www"]
LOG = os.environ.get("IKB_LOG", "2")
"""The plugins' --log level (``IKB_LOG=5`` to see why a phase took as long as it did)."""


# Processes --------------------------------------------------------------------------

@contextlib.contextmanager
def plugins(dockerd: privatedocker.Dockerd, *, poll: str,
            original: pathlib.Path | None) -> Iterator[pathlib.Path]:
    """group, instance-docker and flavor-vanilla (ours, or the original's); their dir."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="ikb-"))
    env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(root), "INFRAKIT_HOME": str(root)}
    binaries = original or BIN
    notify = [] if original else ["--notify", "group"]
    started: list[subprocess.Popen[bytes]] = []
    try:
        for name, argv in (
                ("instance-docker", ["infrakit-instance-docker", "--url", dockerd.url,
                                     "--log", LOG, *notify]),
                ("flavor-vanilla", ["infrakit-flavor-vanilla", "--log", "2"]),
                ("group", ["infrakit-group-default", "--poll-interval", poll, "--log", LOG])):
            with (root / f"{name}.log").open("ab") as log:
                started.append(subprocess.Popen([str(binaries / argv[0]), *argv[1:]],
                                                env=env, stdout=log, stderr=log,
                                                stdin=subprocess.DEVNULL))
            deadline = time.monotonic() + 20
            while not sockets.is_live(root / name):
                if time.monotonic() > deadline or started[-1].poll() is not None:
                    raise SystemExit(f"{name} did not start; see {root / name}.log")
                time.sleep(0.02)
        yield root
    finally:
        testing.stop_processes(started, timeout=15)
        shutil.rmtree(root, ignore_errors=True)


# The group --------------------------------------------------------------------------

def spec(gid: str, size: int, *, version: int, original: bool) -> dict[str, Any]:
    if original:
        instance = {"Config": {"Image": privatedocker.IMAGE, "Cmd": HTTPD}}
    else:
        instance = {"Image": privatedocker.IMAGE, "Command": HTTPD, "StopTimeout": "1s"}
    properties: dict[str, Any] = {
        "Instance": {"Plugin": "instance-docker", "Properties": instance},
        "Flavor": {"Plugin": "flavor-vanilla",
                   "Properties": {"Init": [f"echo {version} > /www/version.txt"]}},
        "Allocation": {"Size": size}}
    if not original:
        properties["Update"] = {"MaxSurge": "25%"}
        properties["Health"] = {"Interval": "0s", "CrashLoop": {"Threshold": 1000}}
    return {"ID": gid, "Properties": properties}


def call(root: pathlib.Path, method: str, params: dict[str, Any]) -> Any:
    return sync.Client(root / "group", timeout=600.0).call(method, params)


async def containers(docker: engine.Engine, gid: str) -> list[dict[str, Any]]:
    filters = json.dumps({"label": [f"infrakit.group={gid}"]})
    answer = await docker.call("GET", "/containers/json", query={"all": "1",
                                                                 "filters": filters})
    found: list[dict[str, Any]] = answer.json() or []
    return found


async def until(check: Callable[[], Awaitable[bool]], *, what: str,
                timeout: float = 900.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout:g}s")
        await asyncio.sleep(0.05)


async def running(docker: engine.Engine, root: pathlib.Path, gid: str, size: int, *,
                  sha_not: set[str] = frozenset(), avoid: set[str] = frozenset()) -> None:
    """Wait for ``size`` running containers (none on a config in ``sha_not``, none of
    ``avoid``) and the group converged on them."""
    async def check() -> bool:
        found = [c for c in await containers(docker, gid) if c["State"] == "running"]
        if len(found) != size or any(c["Id"][:12] in avoid or c["Labels"].get(
                "infrakit.config_sha") in sha_not for c in found):
            return False
        described = await asyncio.to_thread(call, root, "Group.DescribeGroup", {"ID": gid})
        return bool(described["Description"]["Converged"])
    await until(check, what=f"{size} running members of {gid}")


async def lifecycle(dockerd: privatedocker.Dockerd, root: pathlib.Path, size: int,
                    run: int, *, original: bool) -> dict[str, float]:
    docker = engine.Engine(dockerd.url)
    gid = f"b{size}-{run}"
    figures = {}
    started = time.perf_counter()
    await asyncio.to_thread(call, root, "Group.CommitGroup",
                            {"Spec": spec(gid, size, version=1, original=original),
                             "Pretend": False})
    await running(docker, root, gid, size)
    figures["converge"] = time.perf_counter() - started

    await asyncio.sleep(1.0)
    victims = [c["Id"] for c in (await containers(docker, gid))[:max(1, size // 10)]]
    started = time.perf_counter()
    await asyncio.gather(*(docker.call("POST", f"/containers/{v}/kill") for v in victims))
    await running(docker, root, gid, size, avoid={v[:12] for v in victims})
    figures["heal"] = time.perf_counter() - started

    old = {c["Labels"].get("infrakit.config_sha") for c in await containers(docker, gid)}
    started = time.perf_counter()
    await asyncio.to_thread(call, root, "Group.CommitGroup",
                            {"Spec": spec(gid, size, version=2, original=original),
                             "Pretend": False})
    await running(docker, root, gid, size, sha_not={s for s in old if s})
    figures["rolling"] = time.perf_counter() - started

    started = time.perf_counter()
    await asyncio.to_thread(call, root, "Group.DestroyGroup", {"ID": gid})

    async def gone() -> bool:
        left = await containers(docker, gid)
        return not [c for c in left if original is False or c["State"] == "running"]
    await until(gone, what=f"{gid} destroyed")
    figures["destroy"] = time.perf_counter() - started
    leaked = await containers(docker, gid)
    figures["leaked"] = float(len(leaked))
    if leaked:  # the original leaves dead containers behind: count them, then clean up
        dockerd.docker("rm", "-f", *[c["Id"] for c in leaked])
    return figures


# The floor --------------------------------------------------------------------------

def cli_runs(dockerd: privatedocker.Dockerd, size: int, *, parallel: bool) -> float:
    """Seconds for ``size`` ``docker run -d`` of the same container from the CLI."""
    argv = ["docker", "-H", dockerd.url, "run", "-d", "--label", "ikb-floor=1",
            privatedocker.IMAGE, *HTTPD]
    started = time.perf_counter()
    if parallel:
        children = [subprocess.Popen(argv, stdout=subprocess.DEVNULL) for _ in range(size)]
        if any(child.wait() != 0 for child in children):
            raise SystemExit("docker run failed")
    else:
        for _ in range(size):
            subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    took = time.perf_counter() - started
    made = dockerd.containers("label=ikb-floor=1")
    dockerd.docker("rm", "-f", *made)
    return took


# Main -------------------------------------------------------------------------------

def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--poll", default="5s")
    parser.add_argument("--original", type=pathlib.Path,
                        default=os.environ.get(ORIGINAL_ENV) or None)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    reason = privatedocker.missing()
    if reason is not None:
        raise SystemExit(f"bench/docker.py: {reason}")
    results: dict[str, Any] = {}
    dockerd = privatedocker.Dockerd()
    try:
        dockerd.start()
        privatedocker.build_busybox_image(dockerd, privatedocker.IMAGE)
        for size in args.sizes:
            row: dict[str, Any] = {
                "cli_sequential": median([cli_runs(dockerd, size, parallel=False)
                                          for _ in range(args.runs)]),
                "cli_parallel": median([cli_runs(dockerd, size, parallel=True)
                                        for _ in range(args.runs)]),
                # the heal's floor: as many `docker run`s at once as the heal replaces
                "cli_heal_floor": median([cli_runs(dockerd, max(1, size // 10), parallel=True)
                                          for _ in range(args.runs)])}
            for who, binaries in (("ours", None), ("original", args.original)):
                if who == "original" and binaries is None:
                    continue
                with plugins(dockerd, poll=args.poll, original=binaries) as root:
                    runs = [asyncio.run(lifecycle(dockerd, root, size, run,
                                                  original=binaries is not None))
                            for run in range(args.runs)]
                row[who] = {key: median([r[key] for r in runs]) for key in runs[0]}
            row["converge_vs_parallel_floor"] = round(
                row["ours"]["converge"] / row["cli_parallel"], 2)
            row["heal_over_floor"] = round(row["ours"]["heal"] - row["cli_heal_floor"], 3)
            results[str(size)] = row
            print(json.dumps({size: row}), flush=True)
    finally:
        dockerd.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
