"""Benchmark: a 3-member etcd cluster run as a group (flavor-etcd, issue 12).

``infrakit-instance-process``, ``infrakit-flavor-etcd`` and a group plugin run as their own
processes on a private plugins dir; the members are Debian's etcd on 127.0.0.21 … 127.0.0.23
(free ports), with a quick raft (``--heartbeat-interval 100 --election-timeout 1000``). Each
run starts everything afresh and measures, from the moment of the action:

- commit: → a healthy quorum (every member started, each ``/health`` true) and → the group
  converged (three members, ``Converged``);
- heal: ``kill -9`` of the raft leader's process → the first write that succeeds again
  (``write``), → three started members again, the dead one replaced by a new member
  (``quorum``), → the group converged;
- rolling update of all members (a changed etcd flag): → every member replaced and the group
  converged, and the longest client-visible outage meanwhile: a client writes every 10 ms
  throughout (to any member, moving on when one fails) and the longest gap between two
  successful writes is reported.

    .venv/bin/python bench/etcd_flavor.py [--runs 3] [--original DIR] [--poll 500ms]
        [--json FILE]

ORIGINAL: ``--original DIR`` (or ``$INFRAKIT_ORIGINAL_BIN``) names a directory holding
InfraKit v0.5's ``infrakit-group-default``; each run is then made with our group plugin and
with that one in turn (our instance-process and flavor-etcd in both). v0.5's group plugin
neither asks ``CanRemove`` nor orders by ``Order``, and its rolling update of pets is not
health-gated; a scenario that does not finish in time is reported as such.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from infrakit import durations, errors, testing, testing_etcd
from infrakit.group import config, hashing
from infrakit.rpc import discovery, sockets
from infrakit.spi import group

BIN = pathlib.Path(sys.executable).parent
ORIGINAL_ENV = "INFRAKIT_ORIGINAL_BIN"
ADDRESSES = ("127.0.0.21", "127.0.0.22", "127.0.0.23")
GID = group.ID("etcd")
FLAGS = ["--heartbeat-interval", "100", "--election-timeout", "1000"]
TIMEOUT = 180.0
"""Seconds a scenario may take before it counts as not finished."""


# Processes -------------------------------------------------------------------------------

class Stack:
    """instance-process, flavor-etcd and a group plugin on one private plugins dir."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(root / "p"),
                    "INFRAKIT_HOME": str(root)}

    @property
    def state(self) -> pathlib.Path:
        return self.root / "procs"

    def start(self, name: str, argv: list[str]) -> None:
        with (self.root / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(argv, env=self.env, stdout=log,
                                                    stderr=log, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for name, process in self.processes.items():
            path = self.root / "p" / name
            while not (path.exists() and sockets.is_live(path)):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{name} did not start; see {self.root / name}.log")
                time.sleep(0.02)

    def pid_of(self, iid: str) -> int:
        return int(json.loads((self.state / f"{iid}.json").read_text())["Pid"])

    def stop(self) -> None:
        testing.stop_processes(self.processes.values(), timeout=15)
        for record in self.state.glob("*.json") if self.state.exists() else []:
            with contextlib.suppress(OSError, ValueError, KeyError):
                os.killpg(int(json.loads(record.read_text())["Pid"]), signal.SIGKILL)


@contextlib.contextmanager
def running(*, poll: str, original: pathlib.Path | None) -> Iterator[Stack]:
    root = pathlib.Path(tempfile.mkdtemp(prefix="ike-bench-"))
    stack = Stack(root)
    try:
        stack.start("instance-process", [
            str(BIN / "infrakit-instance-process"), "--dir", str(stack.state), "--log", "2",
            *(["--notify", "group"] if original is None else [])])
        stack.start("flavor-etcd", [str(BIN / "infrakit-flavor-etcd"), "--log", "3"])
        stack.start("group", [str((original or BIN) / "infrakit-group-default"),
                              "--poll-interval", poll, "--log", "2"])
        stack.wait_ready()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


# The cluster, as a client sees it ----------------------------------------------------------

def post(url: str, path: str, body: dict[str, Any], *, timeout: float = 1.0) -> dict[str, Any]:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        found: dict[str, Any] = json.loads(answer.read())
    if found.get("code") or found.get("error"):
        raise OSError(str(found))
    return found


def quietly(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (urllib.error.URLError, OSError, ValueError):
        return None


class Cluster:
    def __init__(self, client_port: int) -> None:
        self.urls = [f"http://{a}:{client_port}" for a in ADDRESSES]

    def members(self) -> dict[str, str]:
        """Member ID by name, when every member has started (else ``{}``)."""
        for url in self.urls:
            found = quietly(lambda u=url: post(u, "/v3/cluster/member/list", {}))
            if found:
                listed = found.get("members") or []
                return {m["name"]: m["ID"] for m in listed} if all(
                    m.get("name") for m in listed) else {}
        return {}

    def healthy(self) -> bool:
        def ok(url: str) -> bool:
            with urllib.request.urlopen(url + "/health", timeout=1.0) as answer:
                return bool(json.loads(answer.read()).get("health") == "true")
        return len(self.members()) == 3 and all(quietly(lambda u=u: ok(u)) for u in self.urls)

    def leader(self) -> str:
        ids = {v: k for k, v in self.members().items()}
        for url in self.urls:
            said = quietly(lambda u=url: post(u, "/v3/maintenance/status", {}))
            if said and said.get("leader") in ids:
                return ids[said["leader"]]
        raise SystemExit("no leader in the cluster")


class Writer(threading.Thread):
    """Writes a key every 10 ms to any member that answers; remembers when writes succeed."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.successes: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        at, n = 0, 0
        while not self.halt.is_set():
            n += 1
            url = self.cluster.urls[at]
            body = {"key": base64.b64encode(b"bench").decode(),
                    "value": base64.b64encode(str(n).encode()).decode()}
            if quietly(lambda u=url, b=body: post(u, "/v3/kv/put", b, timeout=0.5)) is not None:
                self.successes.append(time.monotonic())
            else:
                at = (at + 1) % len(self.cluster.urls)
            time.sleep(0.01)

    def first_after(self, moment: float) -> float | None:
        return next((t for t in self.successes if t > moment), None)

    def longest_gap(self, start: float, end: float) -> float:
        times = [start, *(t for t in self.successes if start < t < end), end]
        return max(b - a for a, b in itertools.pairwise(times))


# Scenarios ----------------------------------------------------------------------------------

def spec(ports: tuple[int, int], data: pathlib.Path, *, version: int) -> group.Spec:
    flags = [*FLAGS, "--max-txn-ops", str(128 + version)]
    return group.Spec.from_wire({"ID": GID, "Properties": {
        "Allocation": {"LogicalIDs": list(ADDRESSES)},
        "Instance": {"Plugin": "instance-process", "Properties": {"StopTimeout": "10s"}},
        "Flavor": {"Plugin": "flavor-etcd", "Properties": {
            "ClientPort": ports[0], "PeerPort": ports[1], "Binary": testing_etcd.etcd_binary(),
            "DataDir": str(data), "Flags": flags}},
        "Health": {"Interval": "500ms"}}})


def wait(check: Callable[[], bool], *, since: float) -> float | None:
    """Seconds from ``since`` until ``check`` holds; None past :data:`TIMEOUT`."""
    while not check():
        if time.monotonic() - since > TIMEOUT:
            return None
        time.sleep(0.05)
    return time.monotonic() - since


async def scenario(stack: Stack) -> dict[str, float | None]:
    ports = free_port_pair()
    cluster = Cluster(ports[0])
    figures: dict[str, float | None] = {}
    plugins = discovery.Plugins(stack.root / "p", timeout=60.0)
    groups = plugins.group("group")
    loop = asyncio.get_running_loop()

    async def described() -> group.Description:
        return await groups.describe_group(GID)

    def converged(*, sha: str = "", not_ids: frozenset[str] = frozenset()) -> bool:
        found = asyncio.run_coroutine_threadsafe(described(), loop).result(timeout=60)
        ids = {m.id for m in found.instances}
        return (found.converged and len(ids) == 3 and not ids & not_ids
                and all(not sha or m.tags.get("infrakit.config_sha") == sha
                        for m in found.instances))

    async def off(check: Callable[[], bool], since: float) -> float | None:
        return await asyncio.to_thread(wait, check, since=since)

    try:
        first = spec(ports, stack.root / "data", version=1)
        start = time.monotonic()
        await groups.commit_group(first, False)
        figures["commit_quorum"] = await off(cluster.healthy, start)
        figures["commit_converged"] = await off(converged, start)

        writer = Writer(cluster)
        writer.start()
        await asyncio.sleep(1.0)
        victim = cluster.leader()
        before = cluster.members()
        iid = next(m.id for m in (await described()).instances if m.logical_id == victim)
        start = time.monotonic()
        os.kill(stack.pid_of(iid), signal.SIGKILL)
        figures["heal_quorum"] = await off(
            lambda: cluster.healthy() and cluster.members().get(victim) != before[victim],
            start)
        figures["heal_write"] = ((writer.first_after(start) or start) - start
                                 if writer.successes else None)
        figures["heal_converged"] = await off(
            lambda: converged(not_ids=frozenset({iid})), start)

        old = frozenset(m.id for m in (await described()).instances)
        second = spec(ports, stack.root / "data", version=2)
        sha = hashing.config_sha(config.parse(second.properties))
        start = time.monotonic()
        await groups.commit_group(second, False)
        figures["rolling"] = await off(
            lambda: converged(sha=sha, not_ids=old) and cluster.healthy(), start)
        figures["rolling_outage"] = writer.longest_gap(start, time.monotonic())
        writer.halt.set()
        writer.join(timeout=5)
    finally:
        await plugins.close()
    return figures


def free_port_pair() -> tuple[int, int]:
    import socket
    for _ in range(100):
        pair = testing.free_ports(2)
        free = True
        for address in ADDRESSES:
            for port in pair:
                with socket.socket() as probe:
                    try:
                        probe.bind((address, port))
                    except OSError:
                        free = False
        if free:
            return pair[0], pair[1]
    raise SystemExit("no port pair free on every member address")


# Reporting ----------------------------------------------------------------------------------

FIGURES = ("commit_quorum", "commit_converged", "heal_write", "heal_quorum", "heal_converged",
           "rolling", "rolling_outage")


def median(samples: list[dict[str, float | None]], key: str) -> str:
    values = [s.get(key) for s in samples]
    done = [v for v in values if v is not None]
    if not done:
        return "not finished"
    text = f"{statistics.median(done):.2f}s"
    missing = len(values) - len(done)
    return text + (f" ({missing} of {len(values)} not finished)" if missing else "")


def original_dir(given: pathlib.Path | None) -> pathlib.Path | None:
    where = given or (pathlib.Path(os.environ[ORIGINAL_ENV])
                      if os.environ.get(ORIGINAL_ENV) else None)
    if where is None or not (where / "infrakit-group-default").is_file():
        print("original: not measured (give --original DIR or "
              f"${ORIGINAL_ENV} with InfraKit v0.5's infrakit-group-default)", flush=True)
        return None
    return where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--original", type=pathlib.Path)
    parser.add_argument("--poll", default="500ms", help="the group plugins' --poll-interval")
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    durations.parse_duration(args.poll, field="--poll")
    try:
        testing_etcd.etcd_binary()
    except errors.NotFoundError as exc:
        raise SystemExit(exc.message) from None
    contenders: dict[str, pathlib.Path | None] = {"ours": None}
    original = original_dir(args.original)
    if original is not None:
        contenders["original"] = original
    samples: dict[str, list[dict[str, float | None]]] = {who: [] for who in contenders}
    load_before = os.getloadavg()
    for run in range(args.runs):
        for who, binaries in contenders.items():  # interleaved: load falls on both alike
            with running(poll=args.poll, original=binaries) as stack:
                figures = asyncio.run(scenario(stack))
            samples[who].append(figures)
            print(f"run {run + 1} {who}: " + ", ".join(
                f"{k} {'-' if v is None else f'{v:.2f}s'}" for k, v in figures.items()),
                flush=True)
    print(f"\nMedians of {args.runs} runs (poll {args.poll}; load {load_before} → "
          f"{os.getloadavg()}):")
    for key in FIGURES:
        print(f"  {key:<17}" + "".join(f"{who}: {median(taken, key):<28}"
                                        for who, taken in samples.items()))
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "poll": args.poll,
                                         "samples": samples}, indent=2))


if __name__ == "__main__":
    main()
