"""The ``instance-file`` plugin: each instance is one JSON file in a directory.

Served by ``infrakit-instance-file --dir D --name N`` (see :func:`run`); the group controller
and the CLI call it over RPC, tests call :class:`Plugin` directly. Deleting a file is how a user
simulates a dead machine, so every Describe looks at the directory again.

File layout (compatible with InfraKit's own file plugin, which embeds the Description)::

    <dir>/instance-5577006791947779410
    {"ID": "instance-5577006791947779410", "LogicalID": null,
     "Tags": {"infrakit.group": "workers"},
     "Spec": {"Properties": ..., "Tags": ..., "Init": "...", "LogicalID": null,
              "Attachments": null}}

``Tags`` are the instance's current tags (Label changes them); ``Spec`` is the spec as
provisioned. Describe with ``properties=True`` returns ``Spec`` as the instance's Properties.
The file name is the ID; a file whose name differs from its ``ID``, or that is not such a JSON
object, is foreign and skipped (warned once per version of the file). Names starting with ``.``
are ours in flight (temporary files of Label's atomic rewrite) or hidden, and are ignored.

Provision writes a new file as the original does: created in place (``O_EXCL``, so an ID is
never reused) with one ``write()`` of the whole document, no temporary file and rename (those
doubled the inode work, the dearest part of a Provision on this kind of disk). So a reader may
find an instance file empty or cut short: that file is "not there yet", skipped without a
warning and read again when it changes, never an error and never a deletion. Label rewrites an
existing file, so it keeps the atomic rename: a listed instance must never vanish from a
Describe.

Describe brings :class:`index.Index` up to date first (inotify tells it which files changed;
without inotify it scans and stats every file) and parses only files whose (inode, mtime, size)
changed; the answer to a repeated query is reused while nothing changed. What the plugin writes
itself goes into the index as written, never read back. With ``on_change`` (``--notify GROUP``)
a change someone else makes to the directory (a deleted instance file) wakes the group plugin.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic
import pydantic_core

from infrakit import errors, files
from infrakit.plugins import launch
from infrakit.plugins.instance import dirwatch, index
from infrakit.spi import instance

log = logging.getLogger(__name__)

T = TypeVar("T")

SLOW_CALL = 0.005
"""CPU seconds: calls typically costing more than this run in worker threads."""
STALL = 0.05
"""Seconds: a call that blocked this long moves calls to threads for :data:`SLOW_SPELL`."""
SLOW_SPELL = 5.0
"""Seconds calls stay in threads after one stalled."""


@dataclass(frozen=True, slots=True)
class _Parsed:
    record: dict[str, Any]
    """The file's JSON."""
    description: instance.Description
    detailed: instance.Description
    """The description with ``Properties`` (the provisioned spec)."""


class Plugin:
    """An instance plugin over a directory of JSON files.

    Methods are sync and thread-safe (the server runs them through :meth:`run_sync`), except
    ``describe_instances``, a coroutine that answers on the loop when it can.
    """

    def __init__(self, directory: str | os.PathLike[str], *, watch: bool = True,
                 on_change: Callable[[], None] | None = None) -> None:
        """Serve ``directory`` (created 0700 if missing); ``watch=False`` disables inotify.
        ``on_change()`` is called (from a background thread) soon after someone else deletes,
        adds or rewrites an instance file: the group controller may look at once."""
        self._dir = pathlib.Path(directory)
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._index = index.Index(self._dir, self._parse_file, watch=watch)
        self._notifier = dirwatch.Notifier(self._dir, on_change) if on_change else None
        self._reserved: set[str] = set()  # IDs being provisioned, not yet on disk
        self._cost = 0.0  # see run_sync
        self._threads_until = 0.0
        # The last answer per query, valid while the index generation is unchanged: the group
        # controller asks the same question every poll.
        self._answers: dict[tuple[frozenset[tuple[str, str]], bool],
                            tuple[int, list[instance.Description]]] = {}

    def close(self) -> None:
        """Release the inotify descriptors (the object keeps working, by scanning)."""
        with self._lock:
            self._index.close()
        if self._notifier is not None:
            self._notifier.close()
            self._notifier = None

    @property
    def directory(self) -> pathlib.Path:
        return self._dir

    def validate(self, properties: Any) -> None:
        """Any JSON is acceptable: the original wrote whatever it was given."""

    def provision(self, spec: instance.Spec) -> instance.ID:
        wire = spec.to_wire()
        while True:
            with self._lock:
                iid = self._new_id()
                self._reserved.add(iid)
            try:
                # Written outside the lock: creating a file costs the kernel up to ~0.5 ms
                # here (ext4 without a journal scans recently deleted inodes), and provisions
                # in several threads overlap that cost.
                record = {"ID": iid, "LogicalID": spec.logical_id, "Tags": dict(spec.tags),
                          "Spec": wire}
                self._announce(iid)
                info = files.create(self._dir / iid, pydantic_core.to_json(record, indent=2))
                with self._lock:
                    self._index.put(iid, _parsed(iid, record), info)
                break
            except FileExistsError:
                continue  # someone's file already has this name: draw another ID
            finally:
                with self._lock:
                    self._reserved.discard(iid)
        log.info("provisioned %s", iid)
        return instance.ID(iid)

    def label(self, instance: instance.ID, labels: dict[str, str]) -> None:
        target = self._path(instance)
        with self._lock:
            record = self._read_record(target, instance)
            tags = record.get("Tags") or {}
            self._announce(instance)
            record["Tags"] = {**tags, **labels}
            self._index.put(instance, _parsed(instance, record), self._write(instance, record))
        log.info("labelled %s with %s", instance, labels)

    def destroy(self, instance: instance.ID) -> None:
        target = self._path(instance)
        with self._lock:
            self._check_instance(target, instance)  # never delete a file that is not one
            self._announce(instance)
            target.unlink(missing_ok=True)
            self._index.forget(instance)
        log.info("destroyed %s", instance)

    async def run_sync(self, work: Callable[..., T], /, *args: Any) -> T:
        """How the RPC server runs the sync methods: on the event loop while the directory is
        fast, in a worker thread while it is slow.

        A hop to a worker thread and back costs 60-130 us of CPU here, more than a whole
        Provision on a healthy disk (~65 us). A slowish disk (seen: 0.6 ms of kernel time per
        new file on an ext4 without a journal) is still cheaper on the loop: the kernel
        serializes creates in one directory, so threads bring no parallelism, only the hop
        (measured: a 3,000-instance converge took 4.0-4.6 s with such calls in threads, 3.3-3.5 s
        on the loop). So calls run in threads only while their typical CPU time (a moving
        average: one preempted call is no trend) is above :data:`SLOW_CALL`, and for
        :data:`SLOW_SPELL` seconds after a call that blocked longer than :data:`STALL` (a disk
        that hangs must not stall every other call).
        """
        if self._cost > SLOW_CALL or time.monotonic() < self._threads_until:
            return await asyncio.to_thread(self._timed, work, *args)
        return self._timed(work, *args)

    def _timed(self, work: Callable[..., T], *args: Any) -> T:
        wall, cpu = time.monotonic(), time.thread_time()
        try:
            return work(*args)
        finally:
            self._cost += (time.thread_time() - cpu - self._cost) * 0.1
            if time.monotonic() - wall > STALL:
                self._threads_until = time.monotonic() + SLOW_SPELL

    async def describe_instances(
        self, tags: dict[str, str], properties: bool = False
    ) -> list[instance.Description]:
        """:meth:`describe`, answered on the event loop when nothing changed (the common case:
        a hop to a worker thread costs more than the whole answer), else in a thread."""
        if self._lock.acquire(blocking=False):
            try:
                if self._index.settled():
                    answer = self._answers.get(_query(tags, properties))
                    if answer is not None and answer[0] == self._index.generation:
                        return list(answer[1])
            finally:
                self._lock.release()
        return await asyncio.to_thread(self.describe, tags, properties=properties)

    def describe(
        self, tags: dict[str, str], *, properties: bool = False
    ) -> list[instance.Description]:
        """The instances carrying every one of ``tags`` (blocking: for threads and tests)."""
        query = _query(tags, properties)
        with self._lock:
            self._index.refresh()
            generation = self._index.generation
            answer = self._answers.get(query)
            if answer is None or answer[0] != generation:
                if len(self._answers) > 64:
                    self._answers.clear()  # callers asking ever new questions: stay bounded
                answer = (generation, self._select(tags, detailed=properties))
                self._answers[query] = answer
        return list(answer[1])

    def _select(self, tags: dict[str, str], *, detailed: bool) -> list[instance.Description]:
        wanted = list(tags.items())
        found = [
            parsed.detailed if detailed else parsed.description
            for parsed in self._index.values()
            if all(parsed.description.tags.get(key) == value for key, value in wanted)
        ]
        found.sort(key=lambda description: description.id)
        return found

    def _announce(self, iid: str) -> None:
        """We are about to change ``iid``'s file: not news for ``on_change``."""
        if self._notifier is not None:
            self._notifier.expect(iid)

    def _check_instance(self, target: pathlib.Path, iid: str) -> None:
        """``NotFoundError`` unless ``target`` is instance ``iid``'s file (known to the index in
        this version, which spares reading and parsing it, or read now)."""
        try:
            if self._index.current(iid, os.stat(target, follow_symlinks=False)) is not None:
                return
        except FileNotFoundError:
            raise errors.NotFoundError(f"no instance {iid!r}", instance=iid) from None
        except OSError:
            pass  # let reading it say what is wrong
        self._read_record(target, iid)

    def _read_record(self, target: pathlib.Path, iid: str) -> dict[str, Any]:
        """The JSON of instance ``iid``; ``NotFoundError`` when Describe would not list it."""
        try:
            return _parse(iid, target.read_bytes()).record
        except FileNotFoundError:
            raise errors.NotFoundError(f"no instance {iid!r}", instance=iid) from None
        except ValueError as exc:  # index.Incomplete too: not an instance yet
            raise errors.NotFoundError(f"no instance {iid!r}: {target} is {exc}",
                                       instance=iid) from None
        except OSError as exc:
            raise errors.PermanentError(f"instance {iid!r} cannot be read: {exc}") from None

    def _parse_file(self, name: str, raw: bytes) -> _Parsed:
        """:func:`_parse` for the index (called under ``_lock``): a file we are still writing
        is :class:`index.Incomplete`, not foreign."""
        try:
            return _parse(name, raw)
        except ValueError:
            if name in self._reserved:
                raise index.Incomplete("being written") from None
            raise

    def _write(self, iid: str, record: dict[str, Any]) -> os.stat_result:
        """Rewrite ``iid``'s existing file; its version as written (so the index need not read
        it back: a rewrite by someone else in the microseconds between shows as a newer
        version)."""
        # Not fsynced: an instance file is a stand-in for a machine, and the fsync was 60% of
        # a Provision. The rename makes the rewrite all-or-nothing: the instance never
        # looks absent meanwhile.
        path = self._dir / iid
        files.write_atomically(path, pydantic_core.to_json(record, indent=2), durable=False)
        return os.stat(path)

    def _new_id(self) -> str:
        while True:
            # Like the original: "instance-" and a random non-negative int63.
            # No look at the disk: creating the file with O_EXCL tells a name already taken.
            iid = f"instance-{secrets.randbits(63)}"
            if iid not in self._reserved:
                return iid

    def _path(self, iid: str) -> pathlib.Path:
        if not isinstance(iid, str) or not iid or "/" in iid or iid.startswith(".") or "\0" in iid:
            raise errors.InvalidError(f"Instance: {iid!r} is not an instance ID", field="Instance")
        return self._dir / iid


def _query(tags: dict[str, str], properties: bool) -> tuple[frozenset[tuple[str, str]], bool]:
    return frozenset(tags.items()), properties


def _parse(name: str, raw: bytes) -> _Parsed:
    """A file named ``name`` with contents ``raw``; ``ValueError`` when it is not one of ours,
    :class:`index.Incomplete` when it is empty or JSON cut short (still being written)."""
    if not raw.strip():
        raise index.Incomplete("empty")
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        if _cut_short(exc):
            raise index.Incomplete(f"JSON cut short ({exc})") from None
        raise ValueError(f"not JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("ID") != name:
        raise ValueError("not an instance file (its ID is not its file name)")
    return _parsed(name, record)


def _cut_short(exc: json.JSONDecodeError) -> bool:
    """Whether the text is the start of a JSON object that the decoder ran out of (its writer
    is not done), rather than text that is no JSON."""
    text = exc.doc.rstrip()
    if not text.lstrip().startswith("{"):
        return False
    return exc.pos >= len(text) or exc.msg.startswith("Unterminated string")


def _parsed(name: str, record: dict[str, Any]) -> _Parsed:
    """The record of instance file ``name``; ``ValueError`` when its tags are malformed."""
    try:
        description = instance.Description.from_wire(
            {"ID": name, "LogicalID": record.get("LogicalID"), "Tags": record.get("Tags")}
        )
    except pydantic.ValidationError:
        raise ValueError("not an instance file (bad LogicalID or Tags)") from None
    detailed = description.model_copy(update={"properties": record.get("Spec")})
    return _Parsed(record, description, detailed)


def run(argv: list[str] | None = None) -> None:
    """``infrakit-instance-file [--name instance-file] [--dir D] [--notify GROUP] [--log 0-5]``;
    with ``--notify``, an instance file deleted or changed by someone else wakes that group
    plugin (Group.Wake) instead of waiting for its next poll."""
    args = launch.parse(argv, prog="infrakit-instance-file", description="File instance plugin",
                        default_name="instance-file", state=True, notify=True)
    plugin = Plugin(args.dir, on_change=launch.group_waker(args.notify) if args.notify else None)

    # Imported here: in-process users of the plugin do not need the server.
    from infrakit.rpc import server

    server.run(args.name, instance=plugin)
