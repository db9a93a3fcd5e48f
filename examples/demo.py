"""`make demo`: InfraKit at work, through its own CLI, in a throw-away INFRAKIT_HOME.

Act 1 (passive use): start the reference plugins as processes on unix sockets, list them,
provision, describe and destroy instances by hand.
Act 2 (active use): `infrakit up` runs a manager, the group controller and the plugins in one
supervised process tree; its group of three local web servers heals after `kill -9` and
rolls to a new version, shown live; stopped and started again, the manager takes the running
group over from its store.

Every command shown is run for real; everything started is stopped at the end, also on
Ctrl-C or failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator

HERE = pathlib.Path(__file__).resolve().parent
BIN = pathlib.Path(sys.executable).parent


def say(text: str) -> None:
    print(f"\n\033[1m{text}\033[0m", flush=True)


def run(*args: str, env: dict[str, str] | None = None, show: bool = True) -> str:
    """Run an `infrakit` command as a user would, echo it and its output."""
    if show:
        print(f"$ {' '.join(args)}", flush=True)
    done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **(env or {})},
                          cwd=HERE)
    output = (done.stdout + done.stderr).rstrip()
    if show and output:
        print(output, flush=True)
    if done.returncode != 0:
        raise SystemExit(f"demo: `{' '.join(args)}` failed with exit code {done.returncode}")
    return done.stdout


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in ports:
            ports.append(port)
    return ports


def fetch(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as answer:
            return str(answer.read().decode().strip())
    except OSError:
        return "(down)"


def members() -> list[dict[str, object]]:
    described = json.loads(run("infrakit", "group", "describe", "web", "--output", "json",
                               show=False))
    found: list[dict[str, object]] = described.get("Instances") or []
    return found


def watch(ports: list[int], *, until: str, seconds: float = 30.0) -> None:
    """Print the group once a second until every port answers with `until`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        answers = {port: fetch(port) for port in ports}
        line = "  ".join(f":{port} {text.split(' served')[0]:<6}" for port, text in answers.items())
        print(f"  t={time.monotonic() - started:4.1f}s  {len(members())} members   {line}",
              flush=True)
        if all(text.startswith(until) for text in answers.values()):
            return
        time.sleep(1)
    raise SystemExit(f"demo: the group did not reach {until!r} within {seconds:.0f}s")


def member_on(port: int) -> str | None:
    """The ID of the group member serving ``port`` (its logical ID)."""
    for member in members():
        if member.get("LogicalID") == str(port):
            return str(member["ID"])
    return None


def pid_of(logical_id: int, home: pathlib.Path) -> int:
    for record in (home / "instance-process").glob("*.json"):
        data = json.loads(record.read_text())
        if data.get("LogicalID") == str(logical_id):
            return int(data["Pid"])
    raise SystemExit(f"demo: no process for port {logical_id}")


UPS: list[subprocess.Popen[str]] = []
"""`infrakit up` processes the demo started; stopped by pid at the end."""


@contextlib.contextmanager
def sandbox() -> Iterator[pathlib.Path]:
    home = pathlib.Path(tempfile.mkdtemp(prefix="infrakit-demo-"))
    os.environ.update(INFRAKIT_HOME=str(home), PATH=f"{BIN}:{os.environ['PATH']}", POLL="1s")
    os.environ.pop("INFRAKIT_PLUGINS_DIR", None)
    try:
        yield home
    finally:
        subprocess.run(["infrakit", "group", "destroy", "web"], capture_output=True)
        for up in UPS:
            stop_up(up)
        subprocess.run(["infrakit", "plugin", "stop", "--all"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def start_up(env: dict[str, str]) -> subprocess.Popen[str]:
    """`infrakit up examples/up.yml` in the background, once its manager answers."""
    print("$ infrakit up up.yml &", flush=True)
    up = subprocess.Popen(["infrakit", "up", "up.yml"], cwd=HERE, text=True,
                          env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    UPS.append(up)
    deadline = time.monotonic() + 30
    while subprocess.run(["infrakit", "group", "ls", "-q"], capture_output=True).returncode:
        if up.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("demo: `infrakit up` did not come up")
        time.sleep(0.2)
    return up


def stop_up(up: subprocess.Popen[str]) -> None:
    if up.poll() is None:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=20)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()


def act_one(home: pathlib.Path) -> None:
    launch = f"file://{HERE / 'plugins.yml'}"
    say("Act 1 - plugins are processes on unix sockets; use them by hand")
    run("infrakit", "plugin", "start", "--config-url", launch, "instance-file", "flavor-vanilla")
    run("infrakit", "plugin", "ls")
    spec = home / "spec.yml"
    spec.write_text("Properties: {Note: hello}\nTags: {tier: web, owner: demo}\nInit: echo hi\n")
    new_id = run("infrakit", "instance", "--name", "instance-file", "provision", str(spec)).strip()
    run("infrakit", "instance", "--name", "instance-file", "provision", str(spec))
    run("infrakit", "instance", "--name", "instance-file", "describe", "--tags", "tier=web")
    run("infrakit", "instance", "--name", "instance-file", "destroy", new_id)
    run("infrakit", "instance-file", "describe", "-q")
    run("infrakit", "plugin", "stop", "--all")


def act_two(home: pathlib.Path) -> None:
    ports = free_ports(3)
    env = {"PORTS": ",".join(map(str, ports)), "VERSION": "v1"}
    say("Act 2 - `infrakit up`: a manager, the group controller and the plugins in one tree,\n"
        "keeping a group of three web servers the way it was declared (examples/up.yml)")
    up = start_up(env)
    watch(ports, until="v1")
    run("infrakit", "group", "describe", "web")

    victim = ports[1]
    say(f"kill -9 the server on port {victim}: the group replaces it")
    before = member_on(victim)
    os.kill(pid_of(victim, home), 9)
    print(f"$ kill -9 <pid of {before} on :{victim}>", flush=True)
    killed_at = time.monotonic()
    while (after := member_on(victim)) in (before, None):
        time.sleep(0.1)
    print(f"  :{victim} is now served by {after}, "
          f"{time.monotonic() - killed_at:.1f}s after the kill", flush=True)
    watch(ports, until="v1")

    say("Commit version 2: a rolling update, one member at a time, each health-checked")
    run("infrakit", "group", "commit", "web.yml", env={**env, "VERSION": "v2"})
    watch(ports, until="v2", seconds=60)
    say("Why it did what it did (the last actions and their reasons)")
    described = json.loads(run("infrakit", "group", "describe", "web", "--output", "json",
                               show=False))
    for action in (described.get("Status") or {}).get("Actions", [])[-6:]:
        print(f"  {action['Message']}")
    run("infrakit", "manager", "history", "web")

    say("Stop the manager: the servers keep serving; start it again: it takes them over")
    print("$ kill -INT <pid of infrakit up>", flush=True)
    stop_up(up)
    print(f"  while no manager runs: {' '.join(fetch(port) for port in ports)[:60]}…",
          flush=True)
    env["VERSION"] = "v2"  # up.yml declares the version too: the one now running
    start_up(env)
    run("infrakit", "group", "describe", "web", "-q")
    run("infrakit", "group", "commit", "web.yml", env=env)
    run("infrakit", "manager", "leader")
    run("infrakit", "group", "destroy", "web")


def main() -> None:
    with sandbox() as home:
        act_one(home)
        act_two(home)
    print("\nDone: every process stopped and every instance destroyed.")


if __name__ == "__main__":
    main()
