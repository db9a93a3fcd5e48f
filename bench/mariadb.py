"""Benchmark: a MariaDB primary and two replicas kept by the group plugin (issue 12).

``infrakit-instance-process``, ``infrakit-flavor-mariadb`` and the group plugin run as their
own processes on a private plugins dir; the members are real ``mariadbd`` servers (Debian's
``mariadb-server``) on 127.0.0.31-33, each with a fresh datadir per run. Each run measures:

- commit: from CommitGroup to all three members Healthy (the primary takes a write, both
  replicas replicate within the lag bound), as the flavor judges them;
- heal after ``kill -9`` of the primary's server: until the primary takes writes again
  (``heal_writable``), and until the group lists a new primary and all three are Healthy
  again (``heal_converged``);
- rolling update of all three (an ``Options`` change): from the commit until every member is
  on the new config and Healthy (``rolling``), and the longest time a client writing to the
  primary throughout (a new connection and one INSERT every 10 ms, as an application
  account) saw no write succeed (``outage``). Afterwards every write the client saw
  acknowledged must be on all three members, else the run fails.

Medians of ``--runs`` runs (default 3). ORIGINAL: with ``--original DIR`` (or
``$INFRAKIT_ORIGINAL_BIN``) holding ``infrakit-group-default``, each run is repeated
with InfraKit v0.5's Go group plugin in place of ours (same instance and flavor plugins,
interleaved run by run so load falls on both alike). The Go plugin knows neither
Flavor.CanRemove nor Flavor.Order: it replaces members in its own order, the primary perhaps
first. Our instance-process wakes our group plugin when a member dies (``--notify``); the
Go plugin finds it at its next poll.

    .venv/bin/python bench/mariadb.py [--runs 3] [--poll 500ms] [--original DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from infrakit import errors, testing
from infrakit.plugins.flavor.mariadb import config, plugin
from infrakit.rpc import discovery, sockets
from infrakit.rpc import group as group_rpc
from infrakit.spi import flavor, group, instance

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "plugins" / "flavor" / "mariadb"))
# The tests' harness, shared rather than copied:
from mariadb_cluster import APP, IDS, PRIMARY, Writer, same_process, shared_port, sql  # noqa: E402

BIN = pathlib.Path(sys.executable).parent
GID = "mariadb"
ORIGINAL_ENV = "INFRAKIT_ORIGINAL_BIN"
FIGURES = ("commit", "heal_writable", "heal_converged", "rolling", "outage")
TIMEOUT = 300.0


# Processes ------------------------------------------------------------------------------

@dataclass
class Stack:
    """The three plugin processes on one private dir; the members' data under it."""

    root: pathlib.Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def sockets(self) -> pathlib.Path:
        return self.root / "p"

    @property
    def state(self) -> pathlib.Path:
        return self.root / "procs"

    def start(self, name: str, argv: list[str]) -> None:
        env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(self.sockets),
               "INFRAKIT_HOME": str(self.root)}
        with (self.root / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=log,
                                                    stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for name, process in self.processes.items():
            path = self.sockets / name
            while not (path.exists() and sockets.is_live(path)):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{name} did not start; see {self.root / name}.log")
                time.sleep(0.02)

    def records(self) -> dict[str, dict[str, Any]]:
        """instance-process's records by logical ID."""
        found = {}
        for path in self.state.glob("*.json") if self.state.exists() else []:
            with contextlib.suppress(OSError, ValueError):
                record = json.loads(path.read_text())
                found[record["LogicalID"]] = record
        return found

    def kill_members(self) -> None:
        """SIGKILL every member session still running (by its recorded pid and start time)."""
        for record in self.records().values():
            if same_process(record):
                with contextlib.suppress(OSError):
                    os.killpg(int(record["Pid"]), signal.SIGKILL)


@contextlib.contextmanager
def running(poll: str, *, original: pathlib.Path | None) -> Iterator[Stack]:
    root = pathlib.Path(tempfile.mkdtemp(prefix="ikmdb-bench-"))
    stack = Stack(root)
    try:
        stack.start("instance-process", [
            str(BIN / "infrakit-instance-process"), "--dir", str(stack.state), "--log", "2",
            *([] if original else ["--notify", "group"])])
        stack.start("flavor-mariadb", [str(BIN / "infrakit-flavor-mariadb"), "--log", "2"])
        stack.start("group", [str((original or BIN) / "infrakit-group-default"), "--name",
                              "group", "--poll-interval", poll, "--log", "2"])
        stack.wait_ready()
        yield stack
    finally:
        testing.stop_processes(stack.processes.values(), timeout=15)
        stack.kill_members()
        time.sleep(1.0)  # the killed servers release their ports
        shutil.rmtree(root, ignore_errors=True)


# The group and its members -----------------------------------------------------------

def flavor_properties(stack: Stack, port: int, version: int) -> dict[str, Any]:
    return {"Port": port, "DataDir": str(stack.root / "mariadb"), "Timeout": "5s",
            "CatchUp": "30s", "Options": {"max_connections": str(100 + version)}}


def spec(stack: Stack, port: int, *, version: int) -> group.Spec:
    return group.Spec(id=group.ID(GID), properties={
        "Allocation": {"LogicalIDs": IDS},
        "Instance": {"Plugin": "instance-process", "Properties": {"StopTimeout": "60s"}},
        "Flavor": {"Plugin": "flavor-mariadb",
                   "Properties": flavor_properties(stack, port, version)},
        "Health": {"Interval": "250ms", "StartupGrace": "60s", "UnhealthyAfter": "30s"},
        "Update": {"HealthTimeout": "3m"},
    })


async def until(check: Callable[[], Awaitable[bool]], *, what: str,
                timeout: float = TIMEOUT) -> float:
    """Poll ``check`` every 20 ms; the time it took to hold."""
    started = time.perf_counter()
    while not await check():
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"{what}: not within {timeout:g}s")
        await asyncio.sleep(0.02)
    return time.perf_counter() - started


async def healthy(properties: dict[str, Any], lids: list[str]) -> bool:
    judge = plugin.Plugin().judge
    verdicts = await asyncio.gather(*(judge(properties, member(lid)) for lid in lids))
    return all(v.health == flavor.Health.HEALTHY for v in verdicts)


def member(lid: str) -> instance.Description:
    role = config.PRIMARY if lid == PRIMARY else config.REPLICA
    return instance.Description(id=lid, logical_id=lid, tags={config.ROLE_TAG: role})


async def listed(groups: group_rpc.Client, *, sha_not: str = "",
                 not_ids: frozenset[str] = frozenset()) -> bool:
    """The group lists one member per logical ID, none on config ``sha_not`` and none of
    ``not_ids``."""
    found = await groups.describe_group(group.ID(GID))
    lids = sorted(m.logical_id or "" for m in found.instances)
    return lids == IDS and all(
        m.tags.get("infrakit.config_sha") != sha_not and m.id not in not_ids
        for m in found.instances)


@contextlib.asynccontextmanager
async def client(stack: Stack) -> AsyncIterator[group_rpc.Client]:
    found = discovery.Plugins(stack.sockets, timeout=60.0)
    try:
        yield found.group("group")
    finally:
        await found.close()


def admin(port: int, query: str, args: Any = None) -> list[dict[str, Any]]:
    """One statement on the primary as the cluster's administrator."""
    return sql(PRIMARY, port, query, args)


def rows_on(lid: str, port: int) -> set[int]:
    import pymysql

    connection = pymysql.connect(host=lid, port=port, user="infrakit", password="infrakit",
                                 connect_timeout=5, read_timeout=60, autocommit=True)
    try:
        with connection.cursor() as cursor:
            if lid != PRIMARY:  # a replica: once it has applied the primary's last write
                cursor.execute("SELECT MASTER_GTID_WAIT(%s, 60)", (primary_position(port),))
            cursor.execute("SELECT n FROM app.log")
            return {int(row[0]) for row in cursor.fetchall()}
    finally:
        connection.close()


def primary_position(port: int) -> str:
    return str(admin(port, "SELECT @@gtid_binlog_pos AS g")[0]["g"])


# One run -----------------------------------------------------------------------------

async def one_run(stack: Stack) -> dict[str, float]:
    port = shared_port()
    figures: dict[str, float] = {}
    first, second = spec(stack, port, version=1), spec(stack, port, version=2)
    properties = flavor_properties(stack, port, 1)
    async with client(stack) as groups:
        started = time.perf_counter()
        await groups.commit_group(first, False)
        await until(lambda: listed(groups), what="three members listed")
        await until(lambda: healthy(properties, IDS), what="three members healthy")
        figures["commit"] = time.perf_counter() - started

        records = stack.records()
        old_primary = records[PRIMARY]["ID"]
        started = time.perf_counter()
        os.kill(int(records[PRIMARY]["Pid"]), signal.SIGKILL)
        figures["heal_writable"] = await until(lambda: healthy(properties, [PRIMARY]),
                                               what="the primary takes writes again")
        await until(lambda: listed(groups, not_ids=frozenset({old_primary})),
                    what="a new primary listed")
        await until(lambda: healthy(properties, IDS), what="three healthy after the kill")
        figures["heal_converged"] = time.perf_counter() - started

        admin(port, "CREATE DATABASE app")
        admin(port, "CREATE TABLE app.log (n INT PRIMARY KEY)")
        admin(port, "CREATE USER 'app'@'%%' IDENTIFIED BY %s", (APP["password"],))
        admin(port, "GRANT INSERT, SELECT ON app.* TO 'app'@'%'")
        sha_one = (await groups.describe_group(group.ID(GID))).instances[0].tags[
            "infrakit.config_sha"]
        writer = Writer(port)
        thread = threading.Thread(target=writer.run)
        thread.start()
        try:
            await until(lambda: _true(len(writer.acknowledged) >= 10), what="writes")
            properties = flavor_properties(stack, port, 2)
            started = time.perf_counter()
            await groups.commit_group(second, False)
            await until(lambda: listed(groups, sha_not=sha_one), what="all on the new config")
            await until(lambda: healthy(properties, IDS), what="three healthy after the update")
            figures["rolling"] = time.perf_counter() - started
            after = len(writer.acknowledged) + 10
            await until(lambda: _true(len(writer.acknowledged) >= after), what="writes after")
        finally:
            writer.stop.set()
            thread.join(30)
        figures["outage"] = writer.longest_outage
        acknowledged = set(writer.acknowledged)
        for lid in IDS:
            lost = acknowledged - await asyncio.to_thread(rows_on, lid, port)
            if lost:
                raise SystemExit(f"{lid} lost {len(lost)} acknowledged writes")
        try:
            await groups.destroy_group(group.ID(GID))
        except errors.InfrakitError as exc:  # the members are killed with the stack anyway
            print(f"DestroyGroup: {exc.message}", flush=True)
    return figures


async def _true(value: bool) -> bool:
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--poll", default="500ms", help="the group plugin's --poll-interval")
    parser.add_argument("--original", type=pathlib.Path,
                        default=os.environ.get(ORIGINAL_ENV) or None,
                        help="dir of InfraKit v0.5's infrakit-group-default (default "
                             f"${ORIGINAL_ENV}; not measured without it)")
    parser.add_argument("--json", type=pathlib.Path, help="also write the results here")
    args = parser.parse_args()
    contenders: dict[str, pathlib.Path | None] = {"ours": None}
    if args.original is not None and (args.original / "infrakit-group-default").is_file():
        contenders["original"] = args.original
    else:
        print("original: not measured (no --original DIR with infrakit-group-default)")
    setup = {"poll": args.poll, "runs": args.runs, "cpus": os.cpu_count(),
             "load_before": os.getloadavg()}
    samples: dict[str, list[dict[str, float]]] = {who: [] for who in contenders}
    for run in range(args.runs):
        for who, binaries in contenders.items():  # interleaved: fair under any load
            with running(args.poll, original=binaries) as stack:
                figures = asyncio.run(one_run(stack))
            samples[who].append(figures)
            print(f"run {run + 1} {who:>8}: " + "  ".join(
                f"{name} {figures[name]:.2f}s" for name in FIGURES), flush=True)
    setup["load_after"] = os.getloadavg()
    medians = {who: {name: statistics.median(s[name] for s in taken) for name in FIGURES}
               for who, taken in samples.items()}
    print(f"\nMedians of {args.runs} runs; {setup}:")
    print("| group plugin | " + " | ".join(FIGURES) + " |")
    print("|---|" + "---|" * len(FIGURES))
    for who, figures in medians.items():
        print(f"| {who} | " + " | ".join(f"{figures[n]:.2f} s" for n in FIGURES) + " |")
    if args.json:
        args.json.write_text(json.dumps({"setup": setup, "medians": medians,
                                         "samples": samples}, indent=2))


if __name__ == "__main__":
    main()
