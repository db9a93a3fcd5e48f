"""Starting plugins: spawn each, wait until it answers, hold them in the foreground.

The logic behind ``infrakit plugin start [--wait]`` (the CLI prints what these return) and
``infrakit up`` (``manager.children``). How a plugin starts comes from its launch rule or its
entry point (:mod:`.launch`). Its output goes to ``<plugins dir>/<name>.log``; it is started
when its socket answers ``Handshake.Implements``. A plugin that fails first is killed, with the
last lines of its log in the error.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

from infrakit import durations, errors, processes
from infrakit.rpc import launch, sockets, stopping, sync

READY_TIMEOUT = 10.0
"""Seconds a started plugin has to answer on its socket."""
PID_GRACE = 1.0
"""Seconds an answering plugin has to write its pid file (peers that never do still start)."""
LOG_TAIL = 10
"""Lines of a failed plugin's log quoted in the error."""
_POLL = 0.05


def start(names: Sequence[str], rules: dict[str, launch.Rule], *, plugins_dir: pathlib.Path,
          timeout: float = READY_TIMEOUT, config_source: str | None = None,
          notify: Mapping[str, str] | None = None,
          interrupted: threading.Event | None = None) -> list[launch.Outcome]:
    """Start each named plugin and wait until all answer (or fail); one outcome per name.
    ``notify`` (:func:`launch.notify_targets`): plugins to start with ``--notify GROUP``.
    Once ``interrupted`` (:func:`interrupts`) is set, the plugins that have not answered yet
    are killed and fail."""
    sockets.ensure_dir(plugins_dir)
    outcomes = [_spawn(name, rules, plugins_dir=plugins_dir, source=config_source,
                       notify=(notify or {}).get(name))
                for name in names]
    _await_ready([o for o in outcomes if o.process is not None], plugins_dir=plugins_dir,
                 timeout=timeout, interrupted=interrupted or threading.Event())
    return outcomes


def _spawn(name: str, rules: dict[str, launch.Rule], *, plugins_dir: pathlib.Path,
           source: str | None, notify: str | None = None) -> launch.Outcome:
    try:
        sockets.check_name(name)
        path = sockets.socket_path(plugins_dir, name)
        if sockets.is_socket(path) and sockets.is_live(path):
            pid = sockets.read_pid(path)
            return launch.Outcome(name=name, pid=pid,
                                  message=f"{name} is already running (pid {pid or 'unknown'})")
        argv, new_session = _command(name, rules, source=source)
        if notify:
            argv = _with_notify(argv, notify)
        log_path = plugins_dir / f"{name}.log"
        env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(plugins_dir)}
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(log_fd, "wb") as log_file:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                                       stderr=subprocess.STDOUT, env=env,
                                       start_new_session=new_session)
    except errors.InfrakitError as exc:
        return launch.failed(name, exc)
    except OSError as exc:
        return launch.failed(name,
                             errors.UsageError(f"{name}: cannot start: {exc.strerror or exc}"))
    return launch.Outcome(name=name, process=process)


def _command(name: str, rules: dict[str, launch.Rule], *,
             source: str | None) -> tuple[list[str], bool]:
    """The argv that starts ``name`` and whether it gets a session of its own."""
    rule = rules.get(name)
    if rule is not None:
        if rule.launch.os is None:
            raise errors.InvalidError(
                f"{name}: launch config {source} has no Launch.os section for it "
                "(the only executor is 'os')")
        return ["/bin/sh", "-c", rule.launch.os.cmd], not rule.launch.os.same_pg_id
    if name in launch.entry_points():
        return [sys.executable, "-m", "infrakit.cli.entry", name, "--name", name], True
    where = f"not in the launch config {source} and" if source else "no launch config given and"
    raise errors.PluginNotFound(
        f"{name}: {where} no {launch.ENTRY_POINT_GROUP!r} entry point has that name",
        plugin=name)


def _with_notify(argv: list[str], group: str) -> list[str]:
    """``argv`` (from :func:`_command`) that also passes ``--notify group`` to the plugin."""
    if argv[:2] == ["/bin/sh", "-c"]:
        return [*argv[:2], f"{argv[2]} --notify {shlex.quote(group)}"]
    return [*argv, "--notify", group]


def _await_ready(pending: list[launch.Outcome], *, plugins_dir: pathlib.Path,
                 timeout: float, interrupted: threading.Event) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(pending)
    while waiting:
        for outcome in list(waiting):
            if _check_started(outcome, plugins_dir=plugins_dir):
                waiting.remove(outcome)
        if not waiting:
            return
        if interrupted.is_set() or time.monotonic() >= deadline:
            for outcome in waiting:
                _give_up(outcome, plugins_dir=plugins_dir, reason=(
                    "was interrupted before it answered" if interrupted.is_set() else
                    f"did not answer on {plugins_dir / outcome.name} "
                    f"within {durations.format_duration(timeout)}"))
            return
        interrupted.wait(_POLL)


def _check_started(outcome: launch.Outcome, *, plugins_dir: pathlib.Path) -> bool:
    """True once ``outcome`` is settled: answering, or failed."""
    process = outcome.process
    assert process is not None
    path = plugins_dir / outcome.name
    if sockets.is_socket(path) and _answers(path):
        outcome.pid = _pid_soon(path)
        log = plugins_dir / f"{outcome.name}.log"
        outcome.message = f"{outcome.name} started (pid {outcome.pid or 'unknown'}, log {log})"
        return True
    status = process.poll()
    if status is not None and status != 0:
        # A zero status may be a command that puts the plugin in the background: keep waiting.
        _give_up(outcome, plugins_dir=plugins_dir,
                 reason=f"exited with status {status} before answering")
        return True
    return False


def _pid_soon(path: pathlib.Path) -> int | None:
    """The pid file's pid: a plugin writes it just after it starts answering."""
    deadline = time.monotonic() + PID_GRACE
    while (pid := sockets.read_pid(path)) is None and time.monotonic() < deadline:
        time.sleep(_POLL / 5)
    return pid


def _answers(path: pathlib.Path) -> bool:
    try:
        sync.Client(path, timeout=1.0).implements()
    except errors.InfrakitError:
        return False
    return True


def _give_up(outcome: launch.Outcome, *, plugins_dir: pathlib.Path, reason: str) -> None:
    if outcome.process is not None and outcome.process.poll() is None:
        _kill(outcome.process, plugins_dir / outcome.name)
    log = plugins_dir / f"{outcome.name}.log"
    tail = _tail(log)
    detail = f"; last lines of {log}:\n{tail}" if tail else f"; {log} is empty"
    outcome.error = errors.UsageError(f"{outcome.name} {reason}{detail}", plugin=outcome.name)
    outcome.message = outcome.error.message


def _kill(process: subprocess.Popen[bytes], path: pathlib.Path) -> None:
    """Kill what ``start`` spawned: its own session, or the shell and the plugin under it (the
    pid in the plugin's pid file, when the shell is its parent)."""
    processes.kill_spawned(process, child=sockets.read_pid(path))


def _tail(log: pathlib.Path) -> str:
    try:
        with open(log, errors="replace") as lines:
            last = collections.deque(lines, maxlen=LOG_TAIL)
    except OSError:
        return ""
    return "".join(f"  {text}" for text in last).rstrip()


# Holding in the foreground --------------------------------------------------------------

@contextlib.contextmanager
def interrupts() -> Iterator[threading.Event]:
    """An event that SIGINT and SIGTERM set while the block runs (instead of ending it): a
    command that starts plugins and then holds them is stopped by either, wherever it is."""
    interrupted = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: interrupted.set())
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interrupted
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def hold(started: Sequence[launch.Outcome], *, plugins_dir: pathlib.Path,
         timeout: float = stopping.STOP_TIMEOUT,
         interrupted: threading.Event | None = None) -> list[launch.Outcome]:
    """Block until SIGINT/SIGTERM, or ``interrupted`` when given (or until every started plugin
    is gone), then stop them."""
    ours = _launched(started)
    with contextlib.nullcontext(interrupted) if interrupted else interrupts() as stop:
        while not stop.wait(0.2):
            if all(not sockets.is_socket(plugins_dir / o.name) for o in ours):
                break
    return release(started, plugins_dir=plugins_dir, timeout=timeout)


def release(started: Sequence[launch.Outcome], *, plugins_dir: pathlib.Path,
            timeout: float = stopping.STOP_TIMEOUT) -> list[launch.Outcome]:
    """Stop the plugins ``start`` launched (not those it found running); reap their shells."""
    ours = _launched(started)
    results = stopping.stop([o.name for o in ours if sockets.is_socket(plugins_dir / o.name)],
                            plugins_dir=plugins_dir, timeout=timeout)
    for outcome in ours:
        assert outcome.process is not None
        try:
            outcome.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(outcome.process, plugins_dir / outcome.name)
    return results


def _launched(outcomes: Sequence[launch.Outcome]) -> list[launch.Outcome]:
    return [o for o in outcomes if o.ok and o.process is not None]
