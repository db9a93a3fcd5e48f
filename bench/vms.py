"""Benchmark: groups of QEMU guests through instance-libvirt (issue 10, "Benchmarks: VMs").

A private session libvirtd and the test guest (a Debian kernel and a busybox initramfs that
serves its Init over HTTP, 96 MiB, TCG: see tests/plugins/instance/libvirt/) run under the
real group plugin, flavor-vanilla and ``infrakit-instance-libvirt --notify group``, each its
own process (the harness of the libvirt tests, imported from that directory). For each N:

- converge: from CommitGroup of N guests to every member answering HTTP (through its host
  forward on 127.0.0.1) with this run's Init;
- heal: from killing one guest's QEMU (SIGKILL) to N members again, the new one answering;
  ``noticed`` is the part until the group lists the replacement (libvirt's lifecycle event
  wakes the group; the rest is the new guest's boot);
- memory: the RSS of each guest's QEMU process once all answer, and its PSS (RSS counts
  the shared QEMU binary and libraries in full for each guest);
- destroy: DestroyGroup (each guest gets the power button, then is undefined).

Each figure is the median over ``--runs`` runs (default 3). Guests boot under TCG on 2 cores:
N guests booting at once share them, so converge grows with N; load from anything else on
the machine shows up directly in these times.

    .venv/bin/python bench/vms.py [--sizes 3 6] [--runs 3] [--json FILE]

Needs root or a user that can run a session libvirtd, scripts/deps-libvirt.sh and
``pip install -e '.[libvirt]'``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "plugins" /
                       "instance" / "libvirt"))

# The libvirt tests' harness, from the path just added.
import libvirt_guest
import libvirt_session
import libvirt_stack

TIMEOUT = 600.0
PAUSE = 0.05


def one_run(stack: libvirt_stack.Stack, session: libvirt_session.Session,
            guest: libvirt_guest.Guest, *, size: int, run: int) -> dict[str, float]:
    gid, version = f"bench-{size}-{run}", f"run-{size}-{run}"
    started = time.monotonic()
    stack.commit(libvirt_stack.vms(gid, guest, size=size, version=version))
    members = libvirt_stack.wait_for(
        libvirt_stack.serving(stack, gid, size, version, converged=False),
        what=f"{size} guests answering", timeout=TIMEOUT, pause=PAUSE)
    converge = time.monotonic() - started
    rss, pss = memory(session, set(members))

    victim = sorted(members)[0]
    killed = time.monotonic()
    session.kill(victim)
    libvirt_stack.wait_for(lambda: replacement_listed(stack, gid, size, victim),
                           what="the replacement listed", timeout=TIMEOUT, pause=PAUSE)
    noticed = time.monotonic() - killed
    libvirt_stack.wait_for(
        libvirt_stack.serving(stack, gid, size, version, without={victim}, converged=False),
        what="the replacement answering", timeout=TIMEOUT, pause=PAUSE)
    heal = time.monotonic() - killed

    started = time.monotonic()
    stack.call("Group.DestroyGroup", {"ID": gid})
    destroy = time.monotonic() - started
    return {"converge_s": converge, "heal_s": heal, "heal_noticed_s": noticed,
            "destroy_s": destroy, "rss_mib_per_vm": rss, "pss_mib_per_vm": pss}


def replacement_listed(stack: libvirt_stack.Stack, gid: str, size: int, victim: str) -> bool:
    _, members = stack.members(gid)
    found = {member["ID"] for member in members}
    return victim not in found and len(found) == size


def memory(session: libvirt_session.Session, names: set[str]) -> tuple[float, float]:
    """Median RSS and PSS (MiB) of the QEMU processes of guests ``names``."""
    rss, pss = [], []
    for name, pid in session.qemu_pids().items():
        if name in names:
            rss.append(_status_kib(pid, "VmRSS") / 1024)
            pss.append(_rollup_kib(pid, "Pss") / 1024)
    return statistics.median(rss), statistics.median(pss)


def _status_kib(pid: int, field: str) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return float(line.split()[1])
    return 0.0


def _rollup_kib(pid: int, field: str) -> float:
    for line in pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return float(line.split()[1])
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 6])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=pathlib.Path, help="also write the results here")
    args = parser.parse_args()
    absent = libvirt_session.missing() + libvirt_guest.missing()
    if absent:
        sys.exit(f"bench/vms.py needs {', '.join(absent)}: run scripts/deps-libvirt.sh")
    results: dict[str, Any] = {}
    with libvirt_session.started() as session:
        guest = libvirt_guest.Guest(kernel=libvirt_guest.kernel(),
                                    initrd=libvirt_guest.build(session.directory("guest")))
        with libvirt_stack.running(session, "bench", poll="1s") as stack:
            warm_up(stack, guest)
            for size in args.sizes:
                runs = [one_run(stack, session, guest, size=size, run=run)
                        for run in range(args.runs)]
                medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
                results[str(size)] = {"median": medians, "runs": runs}
                print(f"N={size}: " + ", ".join(f"{key} {value:.2f}"
                                                 for key, value in medians.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def warm_up(stack: libvirt_stack.Stack, guest: libvirt_guest.Guest) -> None:
    """One guest up and down first: libvirtd probes QEMU's capabilities on first use (~4 s),
    which belongs to no run."""
    stack.commit(libvirt_stack.vms("warm-up", guest, size=1, version="warm"))
    libvirt_stack.wait_for(libvirt_stack.serving(stack, "warm-up", 1, "warm", converged=False),
                           what="the warm-up guest", timeout=TIMEOUT, pause=PAUSE)
    stack.call("Group.DestroyGroup", {"ID": "warm-up"})


if __name__ == "__main__":
    main()
