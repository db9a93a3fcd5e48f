"""The ``instance-process`` plugin: each instance is a supervised local process.

Served by ``infrakit-instance-process --dir D --name N`` (see :func:`run`); the group controller
provisions "real" local instances through it (the demo's web servers), tests call
:class:`Plugin` directly.

An instance runs the spec's ``Init`` with ``/bin/sh -c`` as the leader of a new session, with
stdout and stderr appended to ``<dir>/<id>.log`` and the environment of the plugin plus
``Properties.Env`` plus ``INFRAKIT_INSTANCE_ID``, ``INFRAKIT_LOGICAL_ID`` and one
``INFRAKIT_TAG_<KEY>`` per tag (:mod:`infrakit.plugins.environment`); a flavor can also render
values such as a port straight into the Init. The instance lives as long as that leader: the
script must stay in the foreground (``exec server …``). When the leader dies, what is left of
its session is killed and the instance is forgotten; its log is kept.

Instance Properties (all optional): ``{"StopTimeout": "5s", "Env": {"K": "v"}, "Cwd": "/path"}``.

State: ``<dir>/<id>.json`` holds the ID, logical ID, tags, pid, the pid's start time and boot,
the Init and the Properties. A new plugin on the same dir re-adopts every recorded process that
still runs and is the same process (same /proc start time and boot id, so a recycled pid is
never adopted, signalled or killed) and forgets the rest. Processes outlive the plugin.

Describe lists live instances only: a process killed with ``kill -9`` is gone from the next
call. Destroy sends TERM to the session, KILL after ``StopTimeout``, and removes the record
and the log. ``on_change()`` is called (from a background thread) when an instance's process
exits on its own, so that a group controller can look again at once. Linux only (it reads
/proc and watches exits with pidfds).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import pathlib
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pydantic
from pydantic import Field

from infrakit import durations, errors, files, processes
from infrakit.plugins import environment, launch, properties
from infrakit.plugins.instance import pidwatch
from infrakit.spi import instance
from infrakit.spi.wire import Tags, Wire

log = logging.getLogger(__name__)

_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Our children by pid, kept until reaped: children belong to the OS process, not to one plugin
object, and a Popen dropped while its child runs would warn and reap it behind our back."""
_CHILDREN_LOCK = threading.Lock()


class Properties(Wire):
    """How to run an instance; every field optional."""

    stop_timeout: durations.Seconds = Field(5.0, ge=0)
    """How long Destroy waits after TERM before it KILLs, e.g. ``"5s"``."""
    env: dict[str, str] | None = None
    """Extra environment variables."""
    cwd: str | None = None
    """Working directory; the plugin's own when unset."""


class Record(Wire):
    """The state file of one instance."""

    id: instance.ID
    """The instance's ID."""
    logical_id: instance.LogicalID | None = None
    """Its pet identity."""
    tags: Tags = Field(default_factory=dict)
    """Its tags (Label changes them)."""
    pid: int
    """The session leader's pid."""
    start_time: int
    """The leader's start time in /proc (clock ticks after boot)."""
    boot_id: str
    """The boot the start time counts from."""
    started: float
    """Wall-clock start, seconds since the epoch."""
    init: str
    """The script the leader runs."""
    properties: Any = None
    """The spec's Properties, as given."""


class Plugin:
    """An instance plugin over local processes (methods are sync and thread-safe).

    A subclass runs instances some other way through two hooks: :meth:`_launch` (the argv
    that starts an instance, and its spec as recorded) and :meth:`_release` (after an
    instance is gone); ``properties_type`` may extend :class:`Properties`."""

    kind = "instance-process"
    """The plugin's kind, in messages."""
    properties_type: type[Properties] = Properties
    """The instance Properties it reads."""

    def __init__(self, directory: str | os.PathLike[str], *,
                 on_change: Callable[[], None] | None = None) -> None:
        self._dir = pathlib.Path(directory)
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.on_change = on_change
        """Called from a background thread when an instance's process exits on its own."""
        self._lock = threading.RLock()
        self._records: dict[str, Record] = {}
        self._stopping: set[str] = set()
        self._boot = processes.boot_id()
        self._watcher = pidwatch.Watcher(self._exited)
        self._adopt()

    @property
    def directory(self) -> pathlib.Path:
        return self._dir

    def close(self) -> None:
        """Stop watching; the processes keep running and a new plugin re-adopts them."""
        self._watcher.close()

    def validate(self, properties: Any) -> None:
        _check(self._parse(properties))

    def provision(self, spec: instance.Spec) -> instance.ID:
        wanted = _check(self._parse(spec.properties))
        if not spec.init.strip():
            raise errors.InvalidError(
                f"Spec.Init: empty; {self.kind} runs the init script as the instance",
                field="Spec.Init",
            )
        with self._lock:
            iid = self._new_id()
            record = self._start(iid, spec, wanted)
            self._records[iid] = record
            self._save(record)
        if not self._watcher.watch(iid, record.pid):
            self._exited(iid)  # gone already (or no pidfds): let Describe decide
        log.info("provisioned %s: pid %d", iid, record.pid)
        return iid

    def label(self, instance: instance.ID, labels: dict[str, str]) -> None:
        with self._lock:
            record = self._live(instance)
            record = record.model_copy(update={"tags": {**record.tags, **labels}})
            self._records[instance] = record
            self._save(record)

    def destroy(self, instance: instance.ID) -> None:
        with self._lock:
            record = self._records.get(instance)
            if record is None:
                raise errors.NotFoundError(f"no instance {instance!r}", instance=instance)
            self._stopping.add(instance)
            self._watcher.unwatch(instance)
            running = self._running(record)
        try:
            if running:
                timeout = self._parse(record.properties).stop_timeout
                clean = processes.stop_session(record.pid, timeout=timeout,
                                               reap=lambda: _reap(record.pid))
                log.info("destroyed %s (pid %d)%s", instance, record.pid,
                         "" if clean else ": killed after StopTimeout")
        finally:
            with self._lock:
                self._forget(record, keep_log=False)
                self._stopping.discard(instance)

    def describe_instances(
        self, tags: dict[str, str], properties: bool = False
    ) -> list[instance.Description]:
        found = []
        with self._lock:
            for record in list(self._records.values()):
                if not self._running(record):
                    if record.id not in self._stopping:
                        self._died(record)
                    continue
                if all(record.tags.get(key) == value for key, value in tags.items()):
                    found.append(self._describe(record, detailed=properties))
        found.sort(key=lambda description: description.id)
        return found

    # -- processes ----------------------------------------------------------------------

    def _launch(self, iid: instance.ID, spec: instance.Spec,
                wanted: Properties) -> tuple[list[str], instance.Spec]:
        """The argv that starts instance ``iid``, and its spec as it is recorded."""
        return ["/bin/sh", "-c", spec.init], spec

    def _release(self, record: Record) -> None:
        """Called once ``record``'s instance is gone and its session killed."""

    def _start(self, iid: instance.ID, spec: instance.Spec, wanted: Properties) -> Record:
        argv, spec = self._launch(iid, spec, wanted)
        variables = environment.for_instance(iid, logical_id=spec.logical_id, tags=spec.tags)
        with open(self._dir / f"{iid}.log", "ab") as output, _CHILDREN_LOCK:
            try:
                child = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=output,
                    stderr=subprocess.STDOUT, cwd=wanted.cwd, start_new_session=True,
                    env={**os.environ, **(wanted.env or {}), **variables},
                )
            except FileNotFoundError as exc:
                self._release_started(iid, spec)
                raise errors.InvalidError(f"Properties.Cwd: {exc.strerror}: {wanted.cwd}",
                                          field="Properties.Cwd") from None
            except OSError as exc:
                self._release_started(iid, spec)
                raise errors.PermanentError(f"cannot start {argv[0]}: {exc}") from None
            _CHILDREN[child.pid] = child
        # Our unreaped child cannot vanish from /proc: its stat is there, zombie or not.
        info = processes.stat(child.pid)
        return Record(
            id=iid, logical_id=spec.logical_id, tags=spec.tags, pid=child.pid,
            start_time=info.start_time if info else 0, boot_id=self._boot, started=time.time(),
            init=spec.init, properties=spec.properties,
        )

    def _running(self, record: Record) -> bool:
        """Whether ``record``'s leader runs and is the very process we started."""
        info = processes.stat(record.pid)
        return info is not None and info.running and self._same(record, info)

    def _same(self, record: Record, info: processes.Stat) -> bool:
        return record.boot_id == self._boot and info.start_time == record.start_time

    def _exited(self, iid: str) -> None:
        """The watcher saw ``iid``'s leader exit."""
        with self._lock:
            record = self._records.get(iid)
            if record is None or iid in self._stopping or self._running(record):
                return  # destroyed, being destroyed, or a stale event
            self._died(record)
        callback = self.on_change
        if callback is not None:
            try:
                callback()
            except Exception:
                log.exception("on_change callback failed")

    def _died(self, record: Record) -> None:
        log.warning("instance %s exited (pid %d); its log: %s", record.id, record.pid,
                    self._dir / f"{record.id}.log")
        self._forget(record, keep_log=True)

    def _forget(self, record: Record, *, keep_log: bool) -> None:
        """Drop ``record``: kill what is left of its session, reap, remove its files."""
        info = processes.stat(record.pid)
        # Kill leftovers only while the session is surely ours: the leader's pid is free, or
        # still held by our own leader (a zombie). A recycled pid may lead someone else's.
        if info is None or self._same(record, info):
            processes.signal_session(record.pid, signal.SIGKILL)
        _reap(record.pid)
        self._watcher.unwatch(record.id)
        self._records.pop(record.id, None)
        self._release(record)
        (self._dir / f"{record.id}.json").unlink(missing_ok=True)
        if not keep_log:
            (self._dir / f"{record.id}.log").unlink(missing_ok=True)

    def _release_started(self, iid: instance.ID, spec: instance.Spec) -> None:
        """Undo :meth:`_launch` for an instance whose process could not start."""
        self._release(Record(id=iid, logical_id=spec.logical_id, tags=spec.tags, pid=0,
                             start_time=0, boot_id=self._boot, started=time.time(),
                             init=spec.init, properties=spec.properties))

    def _parse(self, raw: Any) -> Properties:
        return properties.parse(self.properties_type, raw)

    # -- state ---------------------------------------------------------------------------

    def _adopt(self) -> None:
        """Take over the live processes recorded in the dir; forget the dead."""
        for path in sorted(self._dir.glob("*.json")):
            try:
                record = Record.model_validate_json(path.read_bytes())
            except (OSError, pydantic.ValidationError) as exc:
                log.warning("skipping %s: not a state record (%s)", path, exc)
                continue
            if path.stem != record.id:
                log.warning("skipping %s: its ID is %r", path, record.id)
                continue
            with self._lock:
                self._records[record.id] = record
                if not self._running(record):
                    self._died(record)
                    continue
                self._watcher.watch(record.id, record.pid)  # if not, Describe still checks
                log.info("adopted %s (pid %d)", record.id, record.pid)

    def _save(self, record: Record) -> None:
        data = json.dumps(record.to_wire(), indent=2).encode()
        files.write_atomically(self._dir / f"{record.id}.json", data)

    def _live(self, iid: str) -> Record:
        record = self._records.get(iid)
        if record is None or not self._running(record):
            raise errors.NotFoundError(f"no instance {iid!r}", instance=iid)
        return record

    def _new_id(self) -> instance.ID:
        while True:
            iid = f"instance-{secrets.randbits(63)}"
            if iid not in self._records and not (self._dir / f"{iid}.json").exists():
                return instance.ID(iid)

    def _describe(self, record: Record, *, detailed: bool) -> instance.Description:
        details = None
        if detailed:
            started = datetime.datetime.fromtimestamp(record.started, tz=datetime.UTC)
            details = {"Pid": record.pid, "Started": started.isoformat(),
                       "Log": str(self._dir / f"{record.id}.log"), "Init": record.init,
                       "Properties": record.properties}
        return instance.Description(id=record.id, logical_id=record.logical_id,
                                    tags=dict(record.tags), properties=details)


def _check(wanted: Properties) -> Properties:
    """``wanted`` if it can start a process now (its Cwd exists)."""
    if wanted.cwd is not None and not os.path.isdir(wanted.cwd):
        raise errors.InvalidError(f"Properties.Cwd: not a directory: {wanted.cwd}",
                                  field="Properties.Cwd")
    return wanted


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child and has exited (no zombie left)."""
    with _CHILDREN_LOCK:
        child = _CHILDREN.get(pid)
        if child is not None and child.poll() is not None:
            del _CHILDREN[pid]


def run(argv: list[str] | None = None) -> None:
    """``infrakit-instance-process [--name instance-process] [--dir D] [--notify GROUP]
    [--log 0-5]``; with ``--notify``, an instance that exits wakes that group plugin."""
    args = launch.parse(argv, prog="infrakit-instance-process",
                        description="Local process instance plugin",
                        default_name="instance-process", state=True,
                        notify=True)
    plugin = Plugin(args.dir, on_change=launch.group_waker(args.notify) if args.notify else None)

    # Imported here: in-process users of the plugin do not need the server.
    from infrakit.rpc import server

    server.run(args.name, instance=plugin)
