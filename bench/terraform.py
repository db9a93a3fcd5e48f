"""Benchmark: instance-terraform under a group commit (issue 11, "Benchmark").

``infrakit-instance-terraform``, ``infrakit-flavor-vanilla`` and ``infrakit-group-default``
(``--poll-interval 1s``) run as their own processes on a private plugins dir and a fresh
Terraform work dir. Each member is a ``terraform_data`` resource whose create-time
``local-exec`` starts a real ``sleep`` process and whose destroy-time ``local-exec`` kills it.
For each run it measures:

- converge: from CommitGroup of N members to all N processes running and DescribeGroup
  converged, and how many ``terraform apply`` commands that took (goal: <= 5 for 50);
- destroy: from DestroyGroup to no process left, and its applies.

Applies are counted by a wrapper put in front of the engine (``--terraform`` for ours, first
on ``PATH`` for the original) that notes each ``apply`` and runs the real Terraform. Each
figure is the median of ``--runs`` runs (default 3).

    .venv/bin/python bench/terraform.py [--original DIR] [--size 50] [--runs 3]
        [--window 500ms] [--timeout 180]

ORIGINAL: ``--original DIR`` (or ``$INFRAKIT_ORIGINAL_BIN``) names a directory holding
InfraKit v0.5's Go binaries (``infrakit-group-default``, ``infrakit-flavor-vanilla``,
``infrakit-instance-terraform``); each run is then repeated on the original's three
processes, driving the same Terraform with the same spec. Without it, only ours is measured.
The original knows only five cloud VM types (``aws_instance`` …) and refuses any other
resource, so offline, where no cloud provider can be installed, its provisions fail and it
never converges: the table says so, with the error it gave.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from infrakit import durations, testing
from infrakit.rpc import sockets, sync

BIN = pathlib.Path(sys.executable).parent
ORIGINAL_ENV = "INFRAKIT_ORIGINAL_BIN"
NAMES = ("infrakit-instance-terraform", "infrakit-flavor-vanilla", "infrakit-group-default")


class Stack:
    """The three plugin processes, a work dir, a pid dir and an apply counter."""

    def __init__(self, binaries: pathlib.Path, *, original: bool, window: str) -> None:
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="iktf-bench-"))
        self.original = original
        self.pids = self.root / "pids"
        self.work = self.root / "work"
        self.counter = self.root / "applies"
        for path in (self.pids, self.work, self.root / "bin", self.root / "p"):
            path.mkdir()
        real = shutil.which("terraform")
        if real is None:
            raise SystemExit("bench/terraform.py: needs terraform on PATH")
        shim = self.root / "bin" / "terraform"
        shim.write_text(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = apply ] && echo x >> '
                        f'{self.counter}; done\nexec {real} "$@"\n')
        shim.chmod(0o755)
        self.env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(self.root / "p"),
                    "INFRAKIT_HOME": str(self.root),
                    "PATH": f"{self.root / 'bin'}:{os.environ.get('PATH', '')}",
                    "TF_CLI_CONFIG_FILE": str(self.root / "terraformrc"),
                    "INFRAKIT_INSTANCE_TERRAFORM_DIR": str(self.work)}
        (self.root / "terraformrc").write_text("")
        self.processes: list[subprocess.Popen[bytes]] = []
        own = [] if original else ["--terraform", str(shim), "--batch-window", window]
        self._start("instance-terraform", binaries / NAMES[0], "--dir", str(self.work), *own)
        self._start("flavor-vanilla", binaries / NAMES[1])
        self._start("group", binaries / NAMES[2], "--poll-interval", "1s")

    def _start(self, name: str, program: pathlib.Path, *argv: str) -> None:
        with (self.root / f"{name}.log").open("ab") as log:
            self.processes.append(subprocess.Popen(
                [str(program), *argv, "--log", "3"], env=self.env, stdout=log, stderr=log,
                stdin=subprocess.DEVNULL, cwd=self.work))
        testing.wait_for(lambda: sockets.is_live(self.root / "p" / name),
                         what=f"{name} listening", timeout=30)

    def close(self) -> None:
        testing.stop_processes(self.processes, timeout=15)
        for pid in self.running().values():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def applies(self) -> int:
        return len(self.counter.read_text().splitlines()) if self.counter.exists() else 0

    def running(self) -> dict[str, int]:
        found = {}
        for path in self.pids.glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                pid = int(path.read_text())
                os.kill(pid, 0)
                found[path.stem] = pid
        return found

    def call(self, method: str, params: dict[str, Any]) -> Any:
        return sync.Client(self.root / "p" / "group", timeout=120.0).call(method, params)

    def converged(self, size: int) -> bool:
        found = self.call("Group.DescribeGroup", {"ID": "bench"})["Description"]
        return bool(found["Converged"]) and len(found["Instances"] or []) == size \
            and len(self.running()) == size

    def first_error(self) -> str:
        text = (self.root / "group.log").read_text(errors="replace")
        for line in text.splitlines():
            if "rror" in line:
                return line.split("msg=", 1)[-1].strip()[-160:]
        return "no error logged"


def spec(size: int, pids: pathlib.Path) -> dict[str, Any]:
    pidfile = f"{pids}/$INFRAKIT_INSTANCE_ID.pid"
    start = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 600' </dev/null >/dev/null 2>&1 &"
    stop = f"kill $(cat {pidfile}) 2>/dev/null; rm -f {pidfile}"
    member = {"resource": {"terraform_data": {"vm": {"input": "v1", "provisioner": {
        "local-exec": [{"command": start}, {"when": "destroy", "command": stop}]}}}}}
    return {"ID": "bench", "Properties": {
        "Allocation": {"Size": size},
        "Instance": {"Plugin": "instance-terraform", "Properties": member},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Init": ["echo hello"]}}}}


def until(check: Any, timeout: float) -> float | None:
    """Seconds until ``check()`` holds, ``None`` after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with contextlib.suppress(Exception):
            if check():
                return time.monotonic() - start
        time.sleep(0.05)
    return None


def one_run(binaries: pathlib.Path, *, original: bool, size: int, window: str,
            timeout: float) -> dict[str, Any]:
    stack = Stack(binaries, original=original, window=window)
    try:
        stack.call("Group.CommitGroup", {"Spec": spec(size, stack.pids), "Pretend": False})
        converge = until(lambda: stack.converged(size), timeout)
        result: dict[str, Any] = {"converge": converge, "converge_applies": stack.applies()}
        if converge is None:
            result["error"] = stack.first_error()
            return result
        before = stack.applies()
        start = time.monotonic()
        stack.call("Group.DestroyGroup", {"ID": "bench"})  # returns once members are gone
        rest = until(lambda: not stack.running(), timeout)
        result["destroy"] = None if rest is None else time.monotonic() - start
        result["destroy_applies"] = stack.applies() - before
        return result
    finally:
        stack.close()


def median(samples: list[dict[str, Any]], key: str) -> str:
    values = [s[key] for s in samples if s.get(key) is not None]
    if len(values) < len(samples):
        return "did not converge" if key == "converge" else "-"
    middle = statistics.median(values)
    return f"{middle:.2f}" if isinstance(middle, float) else f"{middle:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--original", type=pathlib.Path,
                        default=os.environ.get(ORIGINAL_ENV) or None)
    parser.add_argument("--size", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", default="500ms")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    durations.parse_duration(args.window, field="--window")
    contenders = {"ours": (BIN, False)}
    if args.original is not None:
        missing = [name for name in NAMES if not (args.original / name).exists()]
        if missing:
            raise SystemExit(f"--original {args.original}: missing {', '.join(missing)}")
        contenders["original"] = (args.original, True)
    else:
        print(f"original: not measured (give --original DIR or ${ORIGINAL_ENV})")
    samples: dict[str, list[dict[str, Any]]] = {who: [] for who in contenders}
    for run in range(args.runs):
        for who, (binaries, original) in contenders.items():
            sample = one_run(binaries, original=original, size=args.size, window=args.window,
                            timeout=args.timeout if not original else min(args.timeout, 60))
            samples[who].append(sample)
            print(f"run {run + 1} {who}: {sample}", flush=True)
    print(f"\nMedians of {args.runs} runs, commit of {args.size} terraform_data members "
          f"(batch window {args.window} for ours):")
    print(f"{'':10} {'converge s':>16} {'applies':>8} {'destroy s':>16} {'applies':>8}")
    for who, found in samples.items():
        print(f"{who:10} {median(found, 'converge'):>16} {median(found, 'converge_applies'):>8}"
              f" {median(found, 'destroy'):>16} {median(found, 'destroy_applies'):>8}")
        errors_seen = {s['error'] for s in found if 'error' in s}
        for error in sorted(errors_seen):
            print(f"{'':10} {who} failed: {error}")


if __name__ == "__main__":
    main()
