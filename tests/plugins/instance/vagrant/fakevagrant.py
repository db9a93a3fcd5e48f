"""A fake ``vagrant`` for the plugin's logic tests: a Python script that keeps a machine's
state in files of its directory, and fails or hangs when told to.

``Fake(dir).mode("up", "fail")`` makes every later ``vagrant up`` fail (``hang``: sleep until
killed, writing its pid to ``<machine>/.fake-pid``; ``fail-made``: fail after making the
machine; ``slowN``: note its start in ``spans``, wait until N runs have started, and note
its end). ``status`` and ``destroy`` take ``fail`` too. ``Fake.state(machine, "stopped")``
sets what ``status`` reports.
"""

from __future__ import annotations

import os
import pathlib
import sys

SCRIPT = '''#!{python}
import os, pathlib, sys, time
control = pathlib.Path({control!r})
machine = pathlib.Path(os.environ["VAGRANT_CWD"])
command = sys.argv[1]
with (control / "calls").open("a") as calls:
    calls.write(command + " " + machine.name + "\\n")
mode = (control / command).read_text().strip() if (control / command).exists() else "ok"
idfile = machine / ".vagrant" / "machines" / "default" / "fake" / "id"
state = machine / ".fake-state"
if mode == "fail":
    print("1,,error-exit,Vagrant::Errors::Fake,the fake was told to fail")
    print("There was a problem: the fake was told to fail", file=sys.stderr)
    sys.exit(1)
if command == "up":
    if mode.startswith("slow"):  # waits for N ups to be running at once, then a little more
        spans = control / "spans"
        with spans.open("a") as marks:
            marks.write("+\\n")
        deadline = time.monotonic() + 30
        while spans.read_text().count("+") < int(mode[4:]) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        with spans.open("a") as marks:
            marks.write("-\\n")
    if mode == "hang":
        (machine / ".fake-pid").write_text(str(os.getpid()))
        time.sleep(3600)
    idfile.parent.mkdir(parents=True, exist_ok=True)
    idfile.write_text("fake-" + machine.name)
    if mode == "fail-made":
        print("made the machine, then failed")
        sys.exit(1)
    state.write_text("running")
    print("Bringing machine 'default' up with 'fake' provider...")
elif command == "status":
    found = state.read_text() if state.exists() and idfile.exists() else "not_created"
    if found == "not_created" and idfile.exists():
        idfile.unlink()
    print("1,default,provider-name,fake")
    print("1,default,state," + found)
elif command == "destroy":
    idfile.unlink(missing_ok=True)
    state.unlink(missing_ok=True)
    print("==> default: destroyed")
'''


class Fake:
    """The fake's script and its control directory."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.control = directory
        self.control.mkdir(parents=True, exist_ok=True)
        self.binary = directory / "vagrant"
        self.binary.write_text(SCRIPT.format(python=sys.executable, control=str(directory)))
        self.binary.chmod(0o755)

    def environ(self) -> dict[str, str]:
        return dict(os.environ)

    def mode(self, command: str, mode: str) -> None:
        (self.control / command).write_text(mode)

    def most_at_once(self) -> int:
        """The most ``slow`` runs of ``up`` that overlapped."""
        running = most = 0
        for mark in (self.control / "spans").read_text().split():
            running += 1 if mark == "+" else -1
            most = max(most, running)
        return most

    def calls(self) -> list[str]:
        path = self.control / "calls"
        return path.read_text().splitlines() if path.exists() else []

    @staticmethod
    def state(machine: pathlib.Path, state: str) -> None:
        (machine / ".fake-state").write_text(state)
