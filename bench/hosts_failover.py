"""Benchmark: managers on separate hosts, from ``kill -9`` of the leader's host to a standby
leading.

Each run boots three hosts (``infrakit-instance-host``; each host's boot script starts an
etcd member of a three-member cluster, instance-file, flavor-vanilla, the backend group
plugin and ``infrakit-manager`` listening on the host's address with mutual TLS), commits a
group of 3 through a standby, then kills the PID 1 of the leader's host. A poller inside
the switch namespace asks the two standbys ``Manager.IsLeader`` over TLS every 50 ms; the
figure is the time from the kill to the first "yes". The dead leader's lease must expire
first, so the figure is bounded below by the lease TTL; when etcd's raft leader was on the
killed host too (the run says so), etcd first elects another, and a new raft leader gives
every lease its full TTL again. Every run starts from fresh hosts,
destroyed afterwards. Needs root, etcd, iproute2 and util-linux.

    .venv/bin/python bench/hosts_failover.py [--runs 3] [--ttl 3 --ttl 5]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

from infrakit import testing, testing_hosts

SPEC = {"ID": "bench", "Properties": {
    "Allocation": {"Size": 3},
    "Instance": {"Plugin": "instance-file", "Properties": {"Bench": "hosts"}},
    "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Init": ["echo bench"]}}}}


def one_run(ttl: int) -> tuple[float, bool]:
    """Seconds from the kill of the leader's host to a standby leading, and whether etcd's
    raft leader was on that host too."""
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
            both = hosts.raft_leader() == leader
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
            return float(line[0]) - killed, both
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ttl", type=int, action="append",
                        help="lease TTL in whole seconds (repeatable; default 3)")
    args = parser.parse_args()
    reason = testing_hosts.missing()
    if reason is not None:
        sys.exit(f"hosts_failover: {reason}")
    for ttl in args.ttl or [3]:
        figures = []
        for run in range(args.runs):
            seconds, both = one_run(ttl)
            figures.append(seconds)
            print(f"ttl {ttl}s run {run + 1}: a standby leads {seconds:.2f}s after the kill"
                  + (" (etcd's raft leader was on that host too)" if both else ""), flush=True)
        print(f"ttl {ttl}s: median {statistics.median(figures):.2f}s over {args.runs} runs "
              f"(min {min(figures):.2f}, max {max(figures):.2f})", flush=True)


if __name__ == "__main__":
    main()
