"""Benchmark: the default group plugin against real plugin processes (issue 3, "Benchmark").

``infrakit-instance-file``, ``infrakit-flavor-vanilla`` and ``infrakit-group-default``
(``--poll-interval 500ms``) each run as their own process on a private plugins dir; this
script talks to them over their sockets, as the CLI does. For each size it measures:

- converge: from CommitGroup to all N instance files present and DescribeGroup converged;
- idle CPU (% of one core, from /proc/<pid>/stat over ``--idle-seconds``) and RSS of the
  group plugin at steady state;
- heal: from deleting 10% of the instance files at once (at a random moment of the poll
  cycle) to all N present and converged again;
- destroy: how long DestroyGroup takes (it returns once every member is gone);

and, for the rolling sizes (none by default), a rolling update to a new flavor config (from
the commit to every member on the new config hash, converged), with the compatible defaults
(one at a time, each new member health-gated; vanilla answers Healthy at once) and with
``MaxSurge: 25%``. Each figure is the median of ``--runs`` runs (default: 5 up to 1,000
members, else 3). Besides wall times it records the CPU time (user and kernel) each plugin
process spent in each phase, which says where the time went.

    .venv/bin/python bench/group.py [--original DIR] [--sizes 10 100 1000 3000 10000]
        [--runs N] [--rolling-sizes 10 100] [--rolling-runs 3] [--idle-seconds 5]
        [--no-notify] [--where DIR] [--source DIR] [--json FILE]

ORIGINAL: ``--original DIR`` (or ``$INFRAKIT_ORIGINAL_BIN``) names a directory holding
InfraKit v0.5's Go binaries (``infrakit-group-default``, ``infrakit-instance-file``,
``infrakit-flavor-vanilla``). Then every lifecycle runs on ours and on the original in turn
(ours, original, ours, original, ... for each size and run; both sets of processes start
once per size, so the first run of each is cold, as before), so load from the rest of the
machine falls on both alike, and the summary gives
both medians and the ratio ours/original for converge, heal, destroy, idle CPU and RSS. The
original never gets ``--notify`` (it has no such flag). Without it, only ours is measured.

``--source DIR`` runs the three plugins from another source tree (e.g. an older checkout's
``src/``) to measure a change. ``--notify`` (the default) starts instance-file with
``--notify group``: a deleted instance file wakes the group plugin at once (our extension);
``--no-notify`` measures healing by polling alone, as
the original heals.

WHERE: instance files live under the home dir by default, as with instance-file's own
default ``--dir``; ``--where /dev/shm`` puts them on tmpfs. Creating a file costs the kernel
30-750 us on this VM's ext4 (no journal: new inodes are found by skipping recently deleted
ones, so the cost grows with recent deletions, and every benchmark run deletes thousands)
and 10 us on tmpfs: the two places separate the plugins' cost from the disk's.

"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from infrakit import durations, testing
from infrakit.group import config, hashing
from infrakit.rpc import discovery, sockets
from infrakit.rpc import group as group_rpc
from infrakit.spi import group

BIN = pathlib.Path(sys.executable).parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PLUGINS = ("group", "instance-file", "flavor-vanilla")
ENTRY = {"group": "infrakit.group.serve", "instance-file": "infrakit.plugins.instance.file",
         "flavor-vanilla": "infrakit.plugins.flavor.vanilla"}
"""The module whose ``run(argv)`` serves each plugin (for ``--source``)."""

ORIGINAL_ENV = "INFRAKIT_ORIGINAL_BIN"
"""Where the original's binaries are when ``--original`` is not given."""
FIGURES = (("converge", "s"), ("heal", "s"), ("destroy", "s"), ("cpu", "%"), ("rss_mb", "MB"))
"""What the summary compares, with units."""


# Processes ------------------------------------------------------------------------------

@dataclass
class Plugins:
    """The three plugin processes on one private plugins dir."""

    root: pathlib.Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    source: pathlib.Path | None = None
    """Run the plugins from this source tree (``src/`` of another checkout) instead."""

    @property
    def sockets(self) -> pathlib.Path:
        return self.root / "p"

    @property
    def files(self) -> pathlib.Path:
        return self.root / "instances"

    def start(self, name: str, argv: list[str]) -> None:
        env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(self.sockets),
               "INFRAKIT_HOME": str(self.root)}
        if self.source is not None:
            env["PYTHONPATH"] = str(self.source)
            code = f"import sys; from {ENTRY[name]} import run; run(sys.argv[1:])"
            argv = [sys.executable, "-c", code, *argv[1:]]
        with (self.root / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=log,
                                                    stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for name, process in self.processes.items():
            path = self.sockets / name
            while not (path.exists() and sockets.is_live(path)):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{name} did not start; see {self.root / name}.log")
                time.sleep(0.02)

    def stop(self) -> None:
        testing.stop_processes(self.processes.values(), timeout=15)

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def usage(self) -> dict[str, tuple[float, float]]:
        """User and kernel CPU seconds of each plugin process so far."""
        return {name: cpu_times(self.pid(name)) for name in PLUGINS}


@contextlib.contextmanager
def running(poll: str, *, where: pathlib.Path, notify: bool,
            source: pathlib.Path | None = None,
            original: pathlib.Path | None = None) -> Iterator[Plugins]:
    """The three plugins: ours, or the original's binaries in ``original``."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="ikg-bench-", dir=where))
    plugins = Plugins(root, source=None if original else source)
    binaries = original or BIN
    try:
        plugins.files.mkdir()
        plugins.start("instance-file", [
            str(binaries / "infrakit-instance-file"), "--dir", str(plugins.files), "--log", "2",
            *(["--notify", "group"] if notify and not original else [])])
        plugins.start("flavor-vanilla", [str(binaries / "infrakit-flavor-vanilla"),
                                         "--log", "2"])
        plugins.start("group", [str(binaries / "infrakit-group-default"), "--name", "group",
                                "--poll-interval", poll, "--log", "2"])
        plugins.wait_ready()
        yield plugins
    finally:
        plugins.stop()
        shutil.rmtree(root, ignore_errors=True)


def cpu_times(pid: int) -> tuple[float, float]:
    """User and kernel CPU seconds of ``pid`` so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def spent(before: dict[str, tuple[float, float]],
          after: dict[str, tuple[float, float]]) -> dict[str, dict[str, float]]:
    return {name: {"user": round(after[name][0] - before[name][0], 3),
                   "sys": round(after[name][1] - before[name][1], 3)} for name in before}


# The group ---------------------------------------------------------------------------

def spec(gid: str, size: int, *, version: int = 1, surge: str | None = None) -> group.Spec:
    properties: dict[str, Any] = {
        "Instance": {"Plugin": "instance-file", "Properties": {"Note": "bench"}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {
            "Init": ["#!/bin/sh", f"echo version {version}"], "Tags": {"tier": "bench"}}},
        "Allocation": {"Size": size},
    }
    if surge is not None:
        properties["Update"] = {"MaxSurge": surge}
    return group.Spec(id=group.ID(gid), properties=properties)


def sha_of(committed: group.Spec) -> str:
    return hashing.config_sha(config.parse(committed.properties))


def count_files(directory: pathlib.Path) -> int:
    with os.scandir(directory) as listing:
        return sum(1 for item in listing if not item.name.startswith("."))


async def until(check: Callable[[], Awaitable[bool]], *, timeout: float,
                every: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        await asyncio.sleep(every)


async def settled(groups: group_rpc.Client, plugins: Plugins, gid: str, size: int, *,
                  sha: str | None = None, timeout: float = 600.0) -> None:
    """Wait until ``size`` files exist and DescribeGroup says converged with ``size`` members
    (all on config ``sha`` when given). Files are counted first: a DescribeGroup of 10,000
    members costs the group plugin far more than a directory count costs us."""
    async def files_there() -> bool:
        return count_files(plugins.files) == size

    async def converged() -> bool:
        found = await groups.describe_group(group.ID(gid))
        if not found.converged or len(found.instances) != size:
            return False
        return sha is None or all(m.tags.get("infrakit.config_sha") == sha
                                  for m in found.instances)

    # Counting 10,000 names costs 3 ms: look less often at bigger groups (the bench shares
    # the machine's two cores with the plugins it measures).
    every = max(0.002, size * 3e-6)
    await until(files_there, timeout=timeout, every=every, what=f"{size} files")
    await until(converged, timeout=timeout, every=max(every, 0.005 * size / 1000),
                what=f"{gid} converged")


@contextlib.asynccontextmanager
async def client(plugins: Plugins) -> AsyncIterator[group_rpc.Client]:
    found = discovery.Plugins(plugins.sockets, timeout=600.0)
    try:
        yield found.group("group")
    finally:
        await found.close()


# Scenarios ---------------------------------------------------------------------------

async def lifecycle(plugins: Plugins, size: int, run: int, *, idle_seconds: float,
                    poll: float, phases: random.Random) -> dict[str, Any]:
    """Converge, idle, heal, destroy one group of ``size``."""
    gid = f"bench{size}-{run}"
    figures: dict[str, Any] = {"cpu_by_phase": {}}
    async with client(plugins) as groups:
        before, started = plugins.usage(), time.perf_counter()
        await groups.commit_group(spec(gid, size), False)
        await settled(groups, plugins, gid, size)
        figures["converge"] = time.perf_counter() - started
        figures["cpu_by_phase"]["converge"] = spent(before, plugins.usage())

        await asyncio.sleep(1.5)  # let the last reconcile and its garbage settle
        before = plugins.usage()
        await asyncio.sleep(idle_seconds)
        idle = spent(before, plugins.usage())
        figures["cpu"] = 100 * sum(idle["group"].values()) / idle_seconds
        figures["file_cpu"] = 100 * sum(idle["instance-file"].values()) / idle_seconds
        figures["rss_mb"] = rss_mb(plugins.pid("group"))

        doomed = sorted(p for p in os.listdir(plugins.files) if not p.startswith("."))
        doomed = doomed[:max(1, size // 10)]
        # At a random moment of the poll cycle: the idle wait above is a whole number of
        # polls, which would otherwise put every deletion at the same phase.
        await asyncio.sleep(phases.uniform(0, poll))
        before, started = plugins.usage(), time.perf_counter()
        for name in doomed:
            os.unlink(plugins.files / name)
        await settled(groups, plugins, gid, size)
        figures["heal"] = time.perf_counter() - started
        figures["cpu_by_phase"]["heal"] = spent(before, plugins.usage())

        before, started = plugins.usage(), time.perf_counter()
        await groups.destroy_group(group.ID(gid))
        figures["destroy"] = time.perf_counter() - started
        figures["cpu_by_phase"]["destroy"] = spent(before, plugins.usage())
        left = count_files(plugins.files)
        if left:
            raise SystemExit(f"DestroyGroup returned with {left} instances left")
    return figures


async def rolling(plugins: Plugins, size: int, run: int, *, surge: str | None) -> float:
    """Seconds from committing a new flavor config to every member on it, converged."""
    gid = f"roll{size}-{'surge' if surge else 'default'}-{run}"
    async with client(plugins) as groups:
        await groups.commit_group(spec(gid, size, surge=surge), False)
        await settled(groups, plugins, gid, size)
        await asyncio.sleep(0.3)
        new = spec(gid, size, version=2, surge=surge)
        started = time.perf_counter()
        await groups.commit_group(new, False)
        await settled(groups, plugins, gid, size, sha=sha_of(new))
        took = time.perf_counter() - started
        await groups.destroy_group(group.ID(gid))
    return took


# Report ------------------------------------------------------------------------------

def show(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "%":
        return f"{value:.1f}%"
    return f"{value:.0f} MB"


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or not theirs:
        return "—"
    return f"{ours / theirs:.2f}x"


def table(results: dict[str, Any]) -> str:
    """Per size: ours, the original's and the ratio, for each figure (medians)."""
    compared = bool(results["original"])
    header = ["N"]
    for name, _ in FIGURES:
        header += [name, "original", "ratio"] if compared else [name]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for size in sorted(map(int, results["sizes"])):
        ours = results["sizes"][str(size)]
        theirs = results["original"].get(str(size), {})
        row = [f"{size:,}"]
        for name, unit in FIGURES:
            row.append(show(ours.get(name), unit))
            if compared:
                row += [show(theirs.get(name), unit), ratio(ours.get(name), theirs.get(name))]
        rows.append("| " + " | ".join(row) + " |")
    for size, figures in sorted(results["rolling"].items(), key=lambda item: int(item[0])):
        rows.append(f"rolling update at {int(size):,}: one at a time "
                    f"{show(figures.get('default'), 's')}, surge 25% "
                    f"{show(figures.get('surge25'), 's')}")
    return "\n".join(rows)


def medians(samples: list[dict[str, Any]]) -> dict[str, float]:
    return {key: statistics.median(s[key] for s in samples)
            for key, value in samples[0].items() if isinstance(value, float)}


def original_dir(given: pathlib.Path | None) -> pathlib.Path | None:
    """The original's binaries (``--original`` or ``$INFRAKIT_ORIGINAL_BIN``), checked; ``None``
    (with a message saying so) when neither is given."""
    where = given or (pathlib.Path(os.environ[ORIGINAL_ENV])
                      if os.environ.get(ORIGINAL_ENV) else None)
    if where is None:
        print(f"original: not measured (give --original DIR or ${ORIGINAL_ENV} with InfraKit "
              "v0.5's binaries to compare); its columns are left out", flush=True)
        return None
    missing = [name for name in ("infrakit-group-default", "infrakit-instance-file",
                                 "infrakit-flavor-vanilla") if not (where / name).is_file()]
    if missing:
        raise SystemExit(f"--original {where}: missing {', '.join(missing)}")
    return where


def line(size: int, who: str, figures: dict[str, float], runs: int) -> str:
    return (f"{size:>6} {who:>8}: converge {figures['converge']:.3f}s  heal "
            f"{figures['heal']:.3f}s  destroy {figures['destroy']:.3f}s  idle cpu "
            f"{figures['cpu']:.2f}%  rss {figures['rss_mb']:.0f}MB  (median of {runs})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--original", type=pathlib.Path,
                        help="dir of InfraKit v0.5's binaries: measure them too, interleaved "
                             f"with ours (default: ${ORIGINAL_ENV}; none: ours only)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 100, 1000, 3000, 10000])
    parser.add_argument("--runs", type=int, default=0,
                        help="runs per size (default: 5 up to 1,000 members, else 3)")
    parser.add_argument("--rolling-sizes", type=int, nargs="*", default=[],
                        help="sizes for the rolling update (ours only; e.g. 10 100)")
    parser.add_argument("--rolling-runs", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--poll", default="500ms", help="the group plugin's --poll-interval")
    parser.add_argument("--notify", action=argparse.BooleanOptionalAction, default=True,
                        help="our instance-file wakes the group plugin on a deleted file")
    parser.add_argument("--where", type=pathlib.Path, default=pathlib.Path.home(),
                        help="where sockets and instance files go (default: home; see WHERE)")
    parser.add_argument("--source", type=pathlib.Path,
                        help="run our plugins from this source tree (another checkout's src/, "
                             "to compare versions) instead of the installed package")
    parser.add_argument("--seed", type=int, default=3, help="seeds the heal phases")
    parser.add_argument("--json", type=pathlib.Path, help="also write the summary here")
    args = parser.parse_args()
    poll = durations.parse_duration(args.poll, field="--poll")
    original = original_dir(args.original)
    phases = random.Random(args.seed)
    setup = {"poll": args.poll, "notify": args.notify, "where": str(args.where),
             "source": str(args.source or "installed"), "original": str(original),
             "cpus": os.cpu_count(), "load_before": os.getloadavg()}
    contenders: dict[str, pathlib.Path | None] = {"ours": None}
    if original is not None:
        contenders["original"] = original

    results: dict[str, Any] = {"sizes": {}, "original": {}, "rolling": {}, "samples": {}}
    for size in args.sizes:
        runs = args.runs or (5 if size <= 1000 else 3)
        samples: dict[str, list[dict[str, Any]]] = {who: [] for who in contenders}
        with contextlib.ExitStack() as stack:
            started = {who: stack.enter_context(running(
                args.poll, where=args.where, notify=args.notify, source=args.source,
                original=binaries)) for who, binaries in contenders.items()}
            for run in range(runs):
                for who, plugins in started.items():  # interleaved: fair under any load
                    samples[who].append(asyncio.run(lifecycle(
                        plugins, size, run, idle_seconds=args.idle_seconds, poll=poll,
                        phases=phases)))
        for who, taken in samples.items():
            results["samples"][f"{who}-{size}"] = taken
            figures = medians(taken)
            results["sizes" if who == "ours" else "original"][str(size)] = figures
            print(line(size, who, figures, runs), flush=True)
    for size in args.rolling_sizes:
        rolled: dict[str, float] = {}
        for surge, name in ((None, "default"), ("25%", "surge25")):
            with running(args.poll, where=args.where, notify=args.notify,
                         source=args.source) as plugins:
                took = [asyncio.run(rolling(plugins, size, run, surge=surge))
                        for run in range(args.rolling_runs)]
            rolled[name] = statistics.median(took)
            results["samples"][f"rolling-{size}-{name}"] = took
            print(f"{size:>6}: rolling update ({name}) {rolled[name]:.3f}s "
                  f"(runs: {', '.join(f'{t:.2f}' for t in took)})", flush=True)
        results["rolling"][str(size)] = rolled
    setup["load_after"] = os.getloadavg()
    print()
    print(f"Medians; ratio = ours / original; {setup}:")
    print(table(results))
    summary = {key: value for key, value in results.items() if key != "samples"}
    print(json.dumps({"setup": setup, **summary}))
    if args.json:
        args.json.write_text(json.dumps({"setup": setup, **results}, indent=2))


if __name__ == "__main__":
    main()
