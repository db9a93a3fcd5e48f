"""Benchmark: managers on separate hosts, from ``kill -9`` of the leader's host to a standby
leading.

Each run boots three hosts (``infrakit-instance-host``; each host's boot script starts an
etcd member of a three-member cluster, instance-file, flavor-vanilla, the backend group
plugin and ``infrakit-manager`` listening on the host's address with mutual TLS), commits a
group of 3 through a standby, then kills the PID 1 of the leader's host. A poller inside
the switch namespace asks the two standbys ``Manager.IsLeader`` over TLS every 50 ms; the
figure is the time from the kill to the first "yes". The dead leader's lease must expire
first, so the figure is bounded below by the lease TTL. etcd's raft leader is moved (etcd's
MoveLeader) to another host before the kill, or with ``--raft-leader same`` onto the
killed one: then etcd first elects another, and a new raft leader gives every lease its full
TTL again. Every run starts from fresh hosts, destroyed afterwards. Needs root, etcd,
iproute2 and util-linux.

With ``--managers-group`` the hosts are the pets of the managers' own group
(``testing_hosts.GroupedHosts``: flavor-combo of flavor-vanilla and flavor-etcd on
instance-host), committed with the cattle group; after the kill the run also measures: until
the new leader's backend has a new host at the dead one's address, until that host's
manager answers (its boot: the figure "host boot"), until etcd lists 3 started members and
the new one answers /health, and until the managers' group is converged (3 healthy
members); the goal is lease TTL + host boot + 2 s. Each is polled in its own thread; the
host checks are unix socket calls, the etcd and group checks processes in the switch
namespace, so those two figures are coarse (~0.5 s).

    .venv/bin/python bench/hosts_failover.py [--runs 3] [--ttl 3 --ttl 5] [--managers-group]
        [--raft-leader elsewhere|same]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable

from infrakit import testing, testing_hosts

SPEC = {"ID": "bench", "Properties": {
    "Allocation": {"Size": 3},
    "Instance": {"Plugin": "instance-file", "Properties": {"Bench": "hosts"}},
    "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Init": ["echo bench"]}}}}


def one_run(ttl: int, raft_leader: str) -> float:
    """Seconds from the kill of the leader's host to a standby leading; etcd's raft leader
    is on that host too (``raft_leader`` "same") or on another ("elsewhere")."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="ikb-"))
    try:
        with testing_hosts.HostCluster(root, ttl=ttl) as hosts:
            hosts.start()
            leader = hosts.leader()
            assert leader is not None
            standbys = [a for a in hosts.addresses if a != leader]
            path = root / "bench.json"
            path.write_text(json.dumps(SPEC))
            committed = hosts.infrakit("group", "commit", str(path), via=standbys[0])
            if committed.returncode != 0:
                raise SystemExit(f"commit failed: {committed.stderr}")
            testing.wait_for(lambda: len(hosts.instance_files()) == 3 or None,
                             what="3 members", timeout=60)
            place_raft_leader(hosts, leader, raft_leader)
            watcher = hosts.watch_leader(standbys)
            try:
                assert watcher.stdout is not None
                if watcher.stdout.readline().strip() != "ready":
                    raise SystemExit("the poller in the switch did not start")
                killed = time.time()
                hosts.kill_host(leader)
                line = watcher.stdout.readline().split()  # blocks until one leads
                if len(line) != 2:
                    raise SystemExit("the poller ended without a leader")
                watcher.wait(timeout=10)
            finally:
                if watcher.poll() is None:
                    watcher.kill()
                    watcher.wait()
            return float(line[0]) - killed
    finally:
        shutil.rmtree(root, ignore_errors=True)


MILESTONES = ("leads", "new host", "host boot", "etcd 3 healthy", "managers' group healthy")


def place_raft_leader(hosts: testing_hosts.HostCluster, leader: str, where: str) -> None:
    """Put etcd's raft leader on the managers' leader's host (``same``) or on another. A new
    raft leader renews every lease to its full TTL: after a move, wait a TTL and more, so
    the kill finds the lease at a usual point of its keep-alive cycle."""
    current = hosts.raft_leader()
    if where == "same":
        target = leader
    elif current in (leader, None):
        target = next(a for a in hosts.addresses if a != leader)
    else:
        return
    if current != target:
        hosts.move_raft_leader(target)
        time.sleep(hosts.ttl + 1.0)


def grouped_run(ttl: int, raft_leader: str) -> dict[str, float]:
    """Seconds from the kill of the leader's host to each of :data:`MILESTONES` (``host
    boot`` is from the new host listed to its manager answering)."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="ikb-"))
    try:
        with testing_hosts.GroupedHosts(root, ttl=ttl) as hosts:
            hosts.start()
            leader = hosts.leader()
            assert leader is not None
            standbys = [a for a in hosts.addresses if a != leader]
            for spec in (hosts.spec(), SPEC):
                path = root / f"{spec['ID']}.json"
                path.write_text(json.dumps(spec))
                done = hosts.infrakit("group", "commit", str(path), via=standbys[0])
                if done.returncode != 0:
                    raise SystemExit(f"commit failed: {done.stderr}")
            testing.wait_for(lambda: _converged(hosts, "managers", standbys[0])
                             and len(hosts.instance_files()) == 3, what="both groups converged",
                             timeout=120)
            old = hosts.refresh()[leader]
            place_raft_leader(hosts, leader, raft_leader)
            watcher = hosts.watch_leader(standbys)
            try:
                assert watcher.stdout is not None
                if watcher.stdout.readline().strip() != "ready":
                    raise SystemExit("the poller in the switch did not start")
                killed = time.time()
                hosts.kill_host(leader)
                line = watcher.stdout.readline().split()  # blocks until one leads
                if len(line) != 2:
                    raise SystemExit("the poller ended without a leader")
                watcher.wait(timeout=10)
            finally:
                if watcher.poll() is None:
                    watcher.kill()
                    watcher.wait()
            times = {"leads": float(line[0]) - killed}
            checks = {
                "new host": lambda: hosts.refresh().get(leader, old) != old,
                "manager": lambda: hosts.is_leader(leader) is not None,
                # the dead member removed, the new one started and answering /health
                "etcd 3 healthy": lambda: hosts.etcd_healthy(leader)
                and hosts.etcd_started(line[1]) == sorted(hosts.addresses),
                "managers' group healthy": lambda: _converged(hosts, "managers", line[1])}
            # one poller per milestone: a slow check (a process in the switch) must not
            # delay a quick one (a unix socket)
            pollers = [threading.Thread(target=_poll, args=(name, check, times, killed),
                                        daemon=True) for name, check in checks.items()]
            for poller in pollers:
                poller.start()
            for poller in pollers:
                poller.join()
            if len(times) < 1 + len(checks):
                raise SystemExit(f"not healed within 300 s: reached only {sorted(times)}")
            times["host boot"] = times.pop("manager") - times["new host"]
            return times
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _poll(name: str, check: Callable[[], bool], times: dict[str, float], killed: float, *,
          within: float = 300.0) -> None:
    """Record in ``times[name]`` the seconds from ``killed`` to ``check`` first passing."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            times[name] = time.time() - killed
            return
        time.sleep(0.05)


def _converged(hosts: testing_hosts.HostCluster, gid: str, via: str) -> bool:
    return hosts.infrakit("group", "describe", gid, "-q", "--exit-status",
                          via=via).returncode == 0


def grouped(ttl: int, runs: int, raft_leader: str) -> None:
    figures: dict[str, list[float]] = {name: [] for name in MILESTONES}
    for run in range(runs):
        times = grouped_run(ttl, raft_leader)
        for name in MILESTONES:
            figures[name].append(times[name])
        print(f"ttl {ttl}s run {run + 1}: " + ", ".join(
            f"{name} {times[name]:.2f}s" for name in MILESTONES), flush=True)
    medians = {name: statistics.median(values) for name, values in figures.items()}
    print(f"ttl {ttl}s, raft leader {raft_leader}, medians over {runs} runs: " + ", ".join(
        f"{name} {medians[name]:.2f}s" for name in MILESTONES), flush=True)
    print(f"ttl {ttl}s goal (TTL + host boot + 2 s): {ttl + medians['host boot'] + 2:.2f}s; "
          f"managers' group healthy at {medians[MILESTONES[-1]]:.2f}s, etcd 3 healthy at "
          f"{medians['etcd 3 healthy']:.2f}s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ttl", type=int, action="append",
                        help="lease TTL in whole seconds (repeatable; default 3)")
    parser.add_argument("--managers-group", action="store_true",
                        help="the hosts are the managers' own group: also time its healing")
    parser.add_argument("--raft-leader", choices=["elsewhere", "same"], default="elsewhere",
                        help="etcd's raft leader on another host than the managers' leader "
                             "(the default), or on the same host: killed with it")
    args = parser.parse_args()
    reason = testing_hosts.missing()
    if reason is not None:
        sys.exit(f"hosts_failover: {reason}")
    for ttl in args.ttl or [3]:
        if args.managers_group:
            grouped(ttl, args.runs, args.raft_leader)
            continue
        figures = []
        for run in range(args.runs):
            seconds = one_run(ttl, args.raft_leader)
            figures.append(seconds)
            print(f"ttl {ttl}s run {run + 1}: a standby leads {seconds:.2f}s after the kill",
                  flush=True)
        print(f"ttl {ttl}s, raft leader {args.raft_leader}: median "
              f"{statistics.median(figures):.2f}s over {args.runs} runs "
              f"(min {min(figures):.2f}, max {max(figures):.2f})", flush=True)


if __name__ == "__main__":
    main()
