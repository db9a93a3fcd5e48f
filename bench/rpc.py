"""Benchmark: Instance.DescribeInstances round trips per second over a real unix socket.

Our async client against ``instance-file`` running as its own process, holding 10 and 1,000
instances; sequential and 16 concurrent callers. Each figure is the median of 5 runs.

    .venv/bin/python bench/rpc.py [--runs 5] [--seconds 2]

The original Go plugin, measured the same way (sequential): 2,430 calls/s at 10 instances,
56/s at 1,000. Goal: at least 3,000/s at 10 and 150/s at 1,000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from infrakit.rpc import client, sockets
from infrakit.rpc import instance as instance_rpc
from infrakit.spi import instance

GROUP_TAG = {"infrakit.group": "bench"}


def start_plugin(plugins: pathlib.Path, state: pathlib.Path) -> subprocess.Popen[bytes]:
    code = "import sys; from infrakit.plugins.instance.file import run; run(sys.argv[1:])"
    env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(plugins)}
    process = subprocess.Popen([sys.executable, "-c", code, "--dir", str(state),
                                "--name", "instance-file"], env=env)
    deadline = time.monotonic() + 15
    while not (plugins / "instance-file").exists() or not sockets.is_live(
            plugins / "instance-file"):
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit("instance-file did not start")
        time.sleep(0.05)
    return process


async def fill(plugin: instance_rpc.Client, count: int) -> None:
    spec = instance.Spec(properties={"Note": "bench"}, tags={**GROUP_TAG, "tier": "web"},
                         init="echo hello")
    pending = [plugin.provision(spec) for _ in range(count)]
    for start in range(0, count, 64):
        await asyncio.gather(*pending[start:start + 64])


async def rate(plugin: instance_rpc.Client, *, callers: int, seconds: float,
               expect: int) -> float:
    """Calls per second completed by ``callers`` concurrent loops during ``seconds``."""
    done = 0
    stop_at = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            found = await plugin.describe_instances(GROUP_TAG)
            assert len(found) == expect, len(found)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(callers)))
    return done / (time.perf_counter() - started)


async def measure(size: int, *, runs: int, seconds: float) -> dict[str, float]:
    plugins = pathlib.Path(tempfile.mkdtemp(prefix="ikb-"))
    state = pathlib.Path(tempfile.mkdtemp(prefix="ikb-state-"))
    process = start_plugin(plugins, state)
    rpc = client.Client(plugins / "instance-file")
    try:
        plugin = instance_rpc.Client(rpc)
        await fill(plugin, size)
        await rate(plugin, callers=1, seconds=0.3, expect=size)  # warm up
        figures = {}
        for callers in (1, 16):
            samples = [await rate(plugin, callers=callers, seconds=seconds, expect=size)
                       for _ in range(runs)]
            figures[f"{callers}"] = statistics.median(samples)
        return figures
    finally:
        await rpc.close()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        shutil.rmtree(plugins, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 1000])
    args = parser.parse_args()
    results = {}
    for size in args.sizes:
        figures = asyncio.run(measure(size, runs=args.runs, seconds=args.seconds))
        results[size] = figures
        print(f"{size:>6} instances: sequential {figures['1']:8.0f} calls/s   "
              f"16 concurrent {figures['16']:8.0f} calls/s   (median of {args.runs})")
    print(json.dumps({"describe_calls_per_second": results}))


if __name__ == "__main__":
    main()
