"""PID 1 of a host: names the host, announces its address, runs its boot script, reaps
orphans, stops everything.

Run by :mod:`.plugin` inside the host's namespaces as
``python -m infrakit.plugins.instance.host.init HOSTNAME GRACE SCRIPT``. The host stays up
after the boot script ends, as a machine does after its boot: only SIGTERM (the plugin's
Destroy) or a kill of this process ends it. On SIGTERM every other process of the host gets
SIGTERM, then SIGKILL after GRACE seconds; when PID 1 exits, the kernel kills whatever is
left of the host.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

from infrakit.plugins.instance.host import announce


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m infrakit.plugins.instance.host.init HOSTNAME GRACE SCRIPT",
              file=sys.stderr)
        return 2
    hostname, grace, script = argv
    socket.sethostname(hostname)
    for line in announce.announce():
        print(f"host {hostname}: announced {line}", flush=True)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        boot = subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.DEVNULL)
        print(f"host {hostname}: boot script started (pid {boot.pid})", flush=True)
        while True:
            reaped = _reap_one()
            if reaped is None:
                signal.pause()  # no process left but PID 1: none can appear but by a signal
            elif reaped[0] == boot.pid:
                print(f"host {hostname}: boot script exited with {_status(reaped[1])}",
                      flush=True)
                boot.returncode = 0  # reaped here: Popen must not wait on it again
    except _Stopping:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _stop_all(float(grace))
    print(f"host {hostname}: stopped", flush=True)
    return 0


class _Stopping(Exception):
    """Raised by the signal handler: waitpid is retried after a signal, so it must raise."""


def _stop(signum: int, frame: object) -> None:
    raise _Stopping


def _reap_one() -> tuple[int, int] | None:
    """Wait for any child (orphans come to PID 1); None when there is none."""
    try:
        return os.waitpid(-1, 0)
    except ChildProcessError:
        return None


def _stop_all(timeout: float) -> None:
    """TERM every other process of the host, KILL what is left after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGTERM)  # from PID 1 of a namespace: all but itself
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGKILL)


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"status {os.waitstatus_to_exitcode(status)}"


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
