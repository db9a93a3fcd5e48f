"""Benchmark: Instance.DescribeInstances round trips per second over a real unix socket,
and the same calls over TCP with mutual TLS on 127.0.0.1 (keep-alive).

Our async client against ``instance-file`` running as its own process, holding 10 and 1,000
instances; sequential and 16 concurrent callers, on its unix socket and on its TLS port
(certificates from ``infrakit.pki``). Each figure is the median of 5 runs.

    .venv/bin/python bench/rpc.py [--runs 5] [--seconds 2] [--sizes 10 1000]

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

from infrakit import pki, testing
from infrakit.rpc import client, sockets, tls
from infrakit.rpc import instance as instance_rpc
from infrakit.spi import instance

GROUP_TAG = {"infrakit.group": "bench"}
TRANSPORTS = ("unix", "mtls")

# instance-file, also listening on TCP with mutual TLS (the flags of infrakit.rpc.listening).
PLUGIN = """
import argparse, pathlib
from infrakit.rpc import listening, server
from infrakit.plugins.instance import file
parser = argparse.ArgumentParser()
parser.add_argument("--dir", type=pathlib.Path)
listening.add_flags(parser)
args = parser.parse_args()
server.run("instance-file", instance=file.Plugin(args.dir),
           listen=listening.configure(parser, args))
"""


def start_plugin(plugins: pathlib.Path, state: pathlib.Path, *, port: int,
                 certs: pathlib.Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(plugins)}
    process = subprocess.Popen([sys.executable, "-c", PLUGIN, "--dir", str(state),
                                "--listen", f"127.0.0.1:{port}", "--tls-dir", str(certs)],
                               env=env)
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
    """Calls/s by transport and callers, ``{"unix 1": …, "mtls 16": …}``; runs of the two
    transports alternate, so that a slower moment of the machine hits both."""
    plugins = pathlib.Path(tempfile.mkdtemp(prefix="ikb-"))
    state = pathlib.Path(tempfile.mkdtemp(prefix="ikb-state-"))
    certs = pathlib.Path(tempfile.mkdtemp(prefix="ikb-pki-"))
    pki.init(certs)
    pki.issue(certs, "plugin", usage="server")
    pki.issue(certs, "bench", usage="client")
    port = testing.free_port()
    process = start_plugin(plugins, state, port=port, certs=certs / "plugin")
    settings = tls.Settings(files=tls.Files.in_dir(certs / "bench", origin="bench"))
    rpcs = {"unix": client.Client(plugins / "instance-file"),
            "mtls": client.Client(f"https://127.0.0.1:{port}/instance-file",
                                  settings=settings)}
    try:
        proxies = {name: instance_rpc.Client(rpc) for name, rpc in rpcs.items()}
        await fill(proxies["unix"], size)
        for proxy in proxies.values():
            await rate(proxy, callers=16, seconds=0.3, expect=size)  # warm up, connect
        samples: dict[str, list[float]] = {}
        for callers in (1, 16):
            for _ in range(runs):
                for name in TRANSPORTS:
                    found = await rate(proxies[name], callers=callers, seconds=seconds,
                                       expect=size)
                    samples.setdefault(f"{name} {callers}", []).append(found)
        return {key: statistics.median(values) for key, values in samples.items()}
    finally:
        for rpc in rpcs.values():
            await rpc.close()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        for directory in (plugins, state, certs):
            shutil.rmtree(directory, ignore_errors=True)


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
        for name in TRANSPORTS:
            print(f"{size:>6} instances, {name:>4}: sequential {figures[f'{name} 1']:8.0f} "
                  f"calls/s   16 concurrent {figures[f'{name} 16']:8.0f} calls/s   "
                  f"(median of {args.runs})")
    print(json.dumps({"describe_calls_per_second": results}))


if __name__ == "__main__":
    main()
