"""Plugin processes: what listens in the plugins dir, starting plugins, stopping them.

The logic behind ``infrakit plugin ls|start|stop`` (the CLI only prints what these return).
A plugin starts from the launch config (JSON or YAML, Jinja2-rendered)::

    [{"Plugin": "instance-file",
      "Launch": {"os": {"Cmd": "infrakit-instance-file --dir {{ env('HOME') }}/files",
                        "SamePgID": false}}}]

or, when the config does not name it, from the ``infrakit.plugins`` entry-point group (how
third-party plugins start by name). Its output goes to ``<plugins dir>/<name>.log``; it is
started when its socket answers ``Handshake.Implements``. Stopping sends SIGTERM to the pid in
``<name>.pid`` only after checking that this pid is the process serving the socket.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import importlib.metadata
import os
import pathlib
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import pydantic
from pydantic import Field

from infrakit import durations, errors
from infrakit.rpc import discovery, sockets, sync
from infrakit.spi import handshake
from infrakit.spi.wire import Wire

ENTRY_POINT_GROUP = "infrakit.plugins"
READY_TIMEOUT = 10.0
"""Seconds a started plugin has to answer on its socket."""
STOP_TIMEOUT = 5.0
"""Seconds a plugin has to exit after SIGTERM before it gets SIGKILL."""
PID_GRACE = 1.0
"""Seconds an answering plugin has to write its pid file (peers that never do still start)."""
LOG_TAIL = 10
"""Lines of a failed plugin's log quoted in the error."""
_POLL = 0.05


# The launch config ----------------------------------------------------------------------

class OsLaunch(Wire):
    """How the ``os`` executor starts a plugin."""

    cmd: str = Field(min_length=1)
    """A shell command line, run with ``/bin/sh -c``."""
    same_pg_id: bool = False
    """Stay in the CLI's process group (dies with it) instead of a session of its own."""


class Launch(Wire):
    """Per executor, how to start the plugin; only ``os`` is built in."""

    os: OsLaunch | None = Field(default=None, alias="os")
    """The ``os`` executor's settings."""


class Rule(Wire):
    """One entry of the launch config."""

    plugin: str = Field(min_length=1)
    """The plugin's name (its socket's file name)."""
    launch: Launch = Field(default_factory=Launch)
    """How to start it."""


_RULES = pydantic.TypeAdapter(list[Rule])


def parse_config(data: Any, *, source: str) -> dict[str, Rule]:
    """The rules in a parsed launch config, by plugin name; errors name the entry and field."""
    try:
        rules = _RULES.validate_python([] if data is None else data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(_where(item["loc"]) + item["msg"]
                             for item in exc.errors(include_url=False))
        raise errors.InvalidError(f"launch config {source}: {problems}") from None
    by_name: dict[str, Rule] = {}
    for index, rule in enumerate(rules):
        if rule.plugin in by_name:
            raise errors.InvalidError(
                f"launch config {source}: [{index}].Plugin: {rule.plugin!r} appears twice")
        by_name[rule.plugin] = rule
    return by_name


def _where(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "expected a list of {Plugin, Launch} entries: "
    head, *rest = loc
    path = f"[{head}]" if isinstance(head, int) else str(head)
    return f"{path}{'.' if rest else ''}{'.'.join(str(part) for part in rest)}: "


def load_config(url: str) -> dict[str, Rule]:
    """Fetch, render (Jinja2) and parse the launch config at ``url``."""
    from infrakit import template  # Jinja2 is only needed when there is a config

    return parse_config(template.load(url), source=url)


def entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Plugins installed in the ``infrakit.plugins`` entry-point group, by name."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


# Outcomes -------------------------------------------------------------------------------

@dataclasses.dataclass
class Outcome:
    """What happened to one plugin: a line for the user, or the error."""

    name: str
    message: str = ""
    error: errors.InfrakitError | None = None
    pid: int | None = None
    process: subprocess.Popen[bytes] | None = dataclasses.field(default=None, repr=False)
    """The process ``start`` spawned (a shell or the entry-point runner)."""

    @property
    def ok(self) -> bool:
        return self.error is None


def _failed(name: str, error: errors.InfrakitError) -> Outcome:
    return Outcome(name=name, message=error.message, error=error)


# Listing --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Listing:
    """One (plugin, interface) row of ``plugin ls``; ``error`` when the plugin did not answer."""

    name: str
    listen: pathlib.Path
    interface: str | None = None
    error: str | None = None


def listing(directory: pathlib.Path | None = None, *, timeout: float = 2.0) -> list[Listing]:
    """Every socket in the plugins dir with each interface (and sub-type) it serves."""
    rows: list[Listing] = []
    for name, path in discovery.list_sockets(directory).items():
        client = sync.Client(path, name=name, timeout=timeout)
        try:
            types = _types(client)
        except errors.InfrakitError as exc:
            rows.append(Listing(name=name, listen=path, error=exc.message))
            continue
        for key, names in sorted(types.items()):
            for type_name in names:
                shown = name if type_name == handshake.DEFAULT_TYPE else f"{name}/{type_name}"
                rows.append(Listing(name=shown, listen=path, interface=key))
    return rows


def _types(client: sync.Client) -> dict[str, list[str]]:
    """``Handshake.Types``; a peer without it gets one default object per interface."""
    try:
        return handshake.TypesResponse.from_wire(client.call("Handshake.Types", {})).types
    except errors.MethodNotFound:
        return {api.key(): [handshake.DEFAULT_TYPE] for api in client.implements()}


# Starting -------------------------------------------------------------------------------

def start(names: Sequence[str], rules: dict[str, Rule], *, plugins_dir: pathlib.Path,
          timeout: float = READY_TIMEOUT, config_source: str | None = None) -> list[Outcome]:
    """Start each named plugin and wait until all answer (or fail); one outcome per name."""
    sockets.ensure_dir(plugins_dir)
    outcomes = [_spawn(name, rules, plugins_dir=plugins_dir, source=config_source)
                for name in names]
    _await_ready([o for o in outcomes if o.process is not None], plugins_dir=plugins_dir,
                 timeout=timeout)
    return outcomes


def _spawn(name: str, rules: dict[str, Rule], *, plugins_dir: pathlib.Path,
           source: str | None) -> Outcome:
    try:
        sockets.check_name(name)
        path = sockets.socket_path(plugins_dir, name)
        if _is_socket(path) and sockets.is_live(path):
            pid = sockets.read_pid(path)
            return Outcome(name=name, pid=pid,
                           message=f"{name} is already running (pid {pid or 'unknown'})")
        argv, new_session = _command(name, rules, source=source)
        log_path = plugins_dir / f"{name}.log"
        env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(plugins_dir)}
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(log_fd, "wb") as log_file:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                                       stderr=subprocess.STDOUT, env=env,
                                       start_new_session=new_session)
    except errors.InfrakitError as exc:
        return _failed(name, exc)
    except OSError as exc:
        return _failed(name, errors.UsageError(f"{name}: cannot start: {exc.strerror or exc}"))
    return Outcome(name=name, process=process)


def _command(name: str, rules: dict[str, Rule], *, source: str | None) -> tuple[list[str], bool]:
    """The argv that starts ``name`` and whether it gets a session of its own."""
    rule = rules.get(name)
    if rule is not None:
        if rule.launch.os is None:
            raise errors.InvalidError(
                f"{name}: launch config {source} has no Launch.os section for it "
                "(the only executor is 'os')")
        return ["/bin/sh", "-c", rule.launch.os.cmd], not rule.launch.os.same_pg_id
    if name in entry_points():
        return [sys.executable, "-m", "infrakit.cli.entry", name, "--name", name], True
    where = f"not in the launch config {source} and" if source else "no launch config given and"
    raise errors.PluginNotFound(
        f"{name}: {where} no {ENTRY_POINT_GROUP!r} entry point has that name", plugin=name)


def _await_ready(pending: list[Outcome], *, plugins_dir: pathlib.Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(pending)
    while waiting:
        for outcome in list(waiting):
            if _check_started(outcome, plugins_dir=plugins_dir):
                waiting.remove(outcome)
        if waiting and time.monotonic() >= deadline:
            for outcome in waiting:
                _give_up(outcome, plugins_dir=plugins_dir,
                         reason=f"did not answer on {plugins_dir / outcome.name} "
                                f"within {durations.format_duration(timeout)}")
            return
        if waiting:
            time.sleep(_POLL)


def _check_started(outcome: Outcome, *, plugins_dir: pathlib.Path) -> bool:
    """True once ``outcome`` is settled: answering, or failed."""
    process = outcome.process
    assert process is not None
    path = plugins_dir / outcome.name
    if _is_socket(path) and _answers(path):
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


def _give_up(outcome: Outcome, *, plugins_dir: pathlib.Path, reason: str) -> None:
    if outcome.process is not None and outcome.process.poll() is None:
        _kill_spawned(outcome.process, plugins_dir / outcome.name)
    log = plugins_dir / f"{outcome.name}.log"
    tail = _tail(log)
    detail = f"; last lines of {log}:\n{tail}" if tail else f"; {log} is empty"
    outcome.error = errors.UsageError(f"{outcome.name} {reason}{detail}", plugin=outcome.name)
    outcome.message = outcome.error.message


def _kill_spawned(process: subprocess.Popen[bytes], path: pathlib.Path) -> None:
    """Kill what ``start`` spawned (its own session, or the shell and the plugin under it)."""
    try:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            pid = sockets.read_pid(path)
            if pid is not None and _parent(pid) == process.pid:
                os.kill(pid, signal.SIGKILL)
            process.kill()
    except ProcessLookupError:
        pass
    process.wait()


def _tail(log: pathlib.Path) -> str:
    try:
        with open(log, errors="replace") as lines:
            last = collections.deque(lines, maxlen=LOG_TAIL)
    except OSError:
        return ""
    return "".join(f"  {text}" for text in last).rstrip()


# Holding in the foreground --------------------------------------------------------------

def hold(started: Sequence[Outcome], *, plugins_dir: pathlib.Path,
         timeout: float = STOP_TIMEOUT) -> list[Outcome]:
    """Block until SIGINT/SIGTERM (or until every started plugin is gone), then stop them."""
    ours = _launched(started)
    interrupted = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: interrupted.set())
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not interrupted.wait(0.2):
            if all(not _is_socket(plugins_dir / o.name) for o in ours):
                break
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return release(started, plugins_dir=plugins_dir, timeout=timeout)


def release(started: Sequence[Outcome], *, plugins_dir: pathlib.Path,
            timeout: float = STOP_TIMEOUT) -> list[Outcome]:
    """Stop the plugins ``start`` launched (not those it found running); reap their shells."""
    ours = _launched(started)
    results = stop([o.name for o in ours if _is_socket(plugins_dir / o.name)],
                   plugins_dir=plugins_dir, timeout=timeout)
    for outcome in ours:
        assert outcome.process is not None
        try:
            outcome.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_spawned(outcome.process, plugins_dir / outcome.name)
    return results


def _launched(outcomes: Sequence[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.ok and o.process is not None]


# Stopping -------------------------------------------------------------------------------

def stop(names: Iterable[str], *, plugins_dir: pathlib.Path,
         timeout: float = STOP_TIMEOUT) -> list[Outcome]:
    """SIGTERM each named plugin via its pid file, wait (SIGKILL after ``timeout``)."""
    return [_stop_one(name, plugins_dir=plugins_dir, timeout=timeout) for name in names]


def running(plugins_dir: pathlib.Path) -> list[str]:
    """Names of every socket in the plugins dir (what ``stop --all`` stops)."""
    return list(discovery.list_sockets(plugins_dir))


def _stop_one(name: str, *, plugins_dir: pathlib.Path, timeout: float) -> Outcome:
    try:
        sockets.check_name(name)
        path = plugins_dir / name
        pid = _verified_pid(name, path)
    except errors.InfrakitError as exc:
        return _failed(name, exc)
    # It may exit between the check and the signal: stopped all the same.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout):
        return Outcome(name=name, pid=pid, message=f"{name} stopped (pid {pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, timeout)
    _remove_leftovers(path)
    return Outcome(name=name, pid=pid,
                   message=f"{name} killed (pid {pid}): it did not exit within "
                           f"{durations.format_duration(timeout)} "
                           "of SIGTERM")


def _verified_pid(name: str, path: pathlib.Path) -> int:
    """The pid serving ``path``, after checking that signalling it is safe."""
    has_socket = _is_socket(path)
    pid = sockets.read_pid(path)
    if pid is None:
        if has_socket and not sockets.is_live(path):
            path.unlink(missing_ok=True)
            raise errors.NotFoundError(f"{name} is not running (removed its stale socket {path})")
        if has_socket:
            raise errors.ConflictError(
                f"{name}: no pid file {sockets.pid_path(path)}; cannot tell which process "
                "serves it, not signalling anything")
        raise errors.NotFoundError(f"{name} is not running (no socket {path})", plugin=name)
    if not _alive(pid):
        _remove_leftovers(path)
        raise errors.NotFoundError(
            f"{name} is not running (stale pid file: pid {pid} does not exist; removed it)")
    if not has_socket:
        raise errors.ConflictError(
            f"{name}: no socket {path} but its pid file names live pid {pid}, which may not be "
            "the plugin; not signalling it")
    holds = _holds_socket(pid, path)
    if holds is False or (holds is None and not sockets.is_live(path)):
        raise errors.ConflictError(
            f"{name}: pid {pid} (from {sockets.pid_path(path)}) does not serve {path}; "
            "not signalling it")
    return pid


def _remove_leftovers(path: pathlib.Path) -> None:
    """Remove the socket and pid file of a plugin that died without cleaning up."""
    if _is_socket(path) and not sockets.is_live(path):
        path.unlink(missing_ok=True)
    if not _is_socket(path):
        sockets.pid_path(path).unlink(missing_ok=True)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)
    return True


# Processes (Linux /proc where it helps; plain signals elsewhere) -------------------------

def _is_socket(path: pathlib.Path) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone; our own children are reaped)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state(pid) != "Z"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    return text[text.rfind(")") + 2:].split()


def _state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _parent(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def _holds_socket(pid: int, path: pathlib.Path) -> bool | None:
    """Whether ``pid`` has the socket listening at ``path`` open; None when we cannot tell."""
    inodes = _listening_inodes(path)
    if not inodes:
        return None
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in inodes:
            return True
    return False


def _listening_inodes(path: pathlib.Path) -> set[int]:
    """Inodes of the unix sockets bound at ``path`` (from /proc/net/unix)."""
    wanted = os.path.realpath(path)
    suffix = "/" + path.name
    found: set[int] = set()
    try:
        with open("/proc/net/unix") as table:
            next(table, None)
            for row in table:
                fields = row.split()
                if len(fields) < 8 or not fields[7].endswith(suffix):
                    continue
                if fields[7].startswith("/") and os.path.realpath(fields[7]) == wanted:
                    found.add(int(fields[6]))
    except OSError:
        return set()
    return found
