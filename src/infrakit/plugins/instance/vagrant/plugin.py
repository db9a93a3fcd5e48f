"""The instance-vagrant plugin object: each instance is a Vagrant machine in a directory.

Served by ``infrakit-instance-vagrant`` (:mod:`.serve`); tests call :class:`Plugin` directly.
The directories (:mod:`.machines`) are the truth: a restarted plugin finds every machine
it made there, and nothing else is kept in memory but the work in flight.

- **Provision** checks the Properties (:mod:`.properties`; strictly with the built-in
  template), renders the Vagrantfile (:mod:`.template`), makes the directory with the record
  of tags and LogicalID, then runs ``vagrant up``. A failed or timed-out ``up`` destroys what
  it made and removes the directory. Attachments are ignored, as in v0.5.
- **Describe** reads the records, keeps those carrying every asked tag, and asks ``vagrant
  status`` of each (in parallel, one run per machine however many Describe calls ask at
  once): a machine Vagrant reports ``not_created`` (destroyed behind our back: ``docker rm
  -f``, ``vagrant destroy`` by hand) or stopped for good (``stopped``, ``poweroff``,
  ``shutoff``, ``aborted``) is left out, so the group replaces it, and its directory is
  cleaned up in the background; a machine whose status cannot be read is listed, state
  ``unknown``: an outage of the provider must not make the group replace everything. With
  ``properties`` each description carries Vagrant's view: ``State``, ``Provider``,
  ``Directory``.
- **Destroy** runs ``vagrant destroy -f`` and removes the directory; an ID with no directory
  is done already. When ``destroy`` fails the directory is kept (and the error returned), so
  that nothing Vagrant made is lost track of.
- **Label** merges tags into the record.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import pathlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from infrakit import errors
from infrakit.plugins.instance.vagrant import commands, machines
from infrakit.plugins.instance.vagrant import properties as props
from infrakit.plugins.instance.vagrant import template as templates
from infrakit.spi import instance

log = logging.getLogger(__name__)

GONE = frozenset({"not_created"})
"""Vagrant's state of a machine that does not exist (any provider)."""
DOWN = frozenset({"stopped", "poweroff", "shutoff", "aborted", "crashed"})
"""States of a machine that will not run again by itself: the docker provider's exited
container, VirtualBox's and libvirt's powered-off or crashed VM."""
UNKNOWN = "unknown"


class Plugin:
    """Instances as Vagrant machines under ``directory`` (async methods)."""

    def __init__(self, directory: str | pathlib.Path, *, vagrant: commands.Vagrant,
                 template: templates.Template | None = None,
                 name: str = "instance-vagrant") -> None:
        self.dirs = machines.Directory(directory)
        self.vagrant = vagrant
        self.template = template or templates.builtin()
        self.name = name
        self._provisioning: set[str] = set()
        """IDs whose ``up`` runs here: not listed, not cleaned."""
        self._teardowns: dict[str, asyncio.Task[None]] = {}
        """Destroys and clean-ups in progress, by ID: those machines are not listed."""
        self._reading: dict[str, asyncio.Future[commands.Status]] = {}
        """``vagrant status`` runs in flight, shared by concurrent Describes."""

    # -- the Instance interface ------------------------------------------------------------

    async def validate(self, properties: Any) -> None:
        wanted = self._parse(properties)
        self._render(wanted, iid=f"{machines.PREFIX}0", logical_id=None, tags={}, init="")

    async def provision(self, spec: instance.Spec) -> instance.ID:
        wanted = self._parse(spec.properties)
        self._check_logical_id(wanted, spec.logical_id)
        record = machines.new_record(tags=dict(spec.tags), logical_id=spec.logical_id)
        iid, path = self._make(wanted, spec, record)
        try:
            try:
                await self.vagrant.up(path, provider=wanted.chosen_provider())
                _write(self.dirs, iid, record.model_copy(update={"provisioned": True}))
            except BaseException:
                # Shielded: a cancelled provision must still not leave its machine behind.
                await asyncio.shield(self._undo(iid))
                raise
        finally:
            self._provisioning.discard(iid)
        log.info("provisioned %s (%s)", iid, wanted.chosen_provider())
        return instance.ID(iid)

    async def label(self, instance: instance.ID, labels: dict[str, str]) -> None:
        record = self.dirs.read(instance)
        if record is None:
            raise errors.NotFoundError(f"no instance {instance!r}", instance=instance)
        _write(self.dirs, instance,
               record.model_copy(update={"tags": {**record.tags, **labels}}))

    async def destroy(self, instance: instance.ID) -> None:
        path = self.dirs.path(instance)
        running = self._teardowns.get(instance)
        if running is None:
            if not path.exists():
                log.info("destroy %s: no such machine (done already)", instance)
                return
            if self.dirs.read(instance) is None:
                raise errors.PermanentError(
                    f"{instance}: not a machine made by instance-vagrant (no "
                    f"{machines.RECORD}); refusing to destroy it", instance=instance)
            running = self._start_teardown(instance, self._teardown)
        await asyncio.shield(running)

    async def describe_instances(self, tags: dict[str, str],
                                 properties: bool = False) -> list[instance.Description]:
        busy = self._provisioning | set(self._teardowns)
        wanted = {iid: record for iid, record in self.dirs.listing().items()
                  if iid not in busy and tags.items() <= record.tags.items()}
        seen = await asyncio.gather(*(self._look(iid, record, detailed=properties)
                                      for iid, record in wanted.items()))
        return [description for description in seen if description is not None]

    async def close(self) -> None:
        """Let clean-ups in progress finish (they are short: ``destroy`` has a timeout)."""
        await asyncio.gather(*self._teardowns.values(), return_exceptions=True)

    # -- Describe --------------------------------------------------------------------------

    async def _look(self, iid: str, record: machines.Record, *,
                    detailed: bool) -> instance.Description | None:
        path = self.dirs.path(iid)
        try:
            status = await self._status(iid)
        except errors.InfrakitError as exc:
            if not path.is_dir():
                return None  # destroyed meanwhile
            if not record.provisioned and not self.dirs.created(iid):
                return None  # its up never made anything, and may still be running
            log.warning("%s: state unknown: %s", iid, exc.message)
            return _description(iid, record, {"State": UNKNOWN, "Error": exc.message,
                                              "Directory": str(path)}, detailed=detailed)
        if status.state in GONE or status.state in DOWN:
            self._reap(iid, record, status)
            return None
        return _description(iid, record, {"State": status.state, "Provider": status.provider,
                                          "Directory": str(path)}, detailed=detailed)

    async def _status(self, iid: str) -> commands.Status:
        """``vagrant status`` of ``iid``, one run shared by every caller meanwhile."""
        reading = self._reading.get(iid)
        if reading is None:
            reading = asyncio.ensure_future(self.vagrant.status(self.dirs.path(iid)))
            self._reading[iid] = reading
            reading.add_done_callback(lambda done: self._read(iid, done))
        return await asyncio.shield(reading)

    def _read(self, iid: str, done: asyncio.Future[commands.Status]) -> None:
        self._reading.pop(iid, None)
        if not done.cancelled():
            done.exception()  # retrieved: every caller may have been cancelled meanwhile

    def _reap(self, iid: str, record: machines.Record, status: commands.Status) -> None:
        """Clean up after a machine that is gone or down, unless it may be an ``up`` still
        running in a plugin that died (not finished, and younger than the ``up`` timeout)."""
        young = time.time() - record.created < self.vagrant.timeouts.up
        if (not record.provisioned and young) or iid in self._teardowns:
            return
        log.warning("%s is %s (%s): the group replaces it; cleaning it up", iid, status.state,
                    status.provider or "no provider")
        task = self._start_teardown(iid, self._teardown if status.state in DOWN else
                                    self._forget)
        task.add_done_callback(_log_failure)

    # -- tearing down ----------------------------------------------------------------------

    def _start_teardown(self, iid: str,
                        work: Callable[[str], Awaitable[None]]) -> asyncio.Task[None]:
        async def run() -> None:
            try:
                await work(iid)
            finally:
                self._teardowns.pop(iid, None)

        task = asyncio.get_running_loop().create_task(run(), name=f"teardown {iid}")
        self._teardowns[iid] = task
        return task

    async def _teardown(self, iid: str) -> None:
        """``vagrant destroy -f``, then the directory; kept when ``destroy`` failed."""
        try:
            await self.vagrant.destroy(self.dirs.path(iid))
        except errors.InfrakitError:
            if self.dirs.created(iid):
                raise
            log.info("%s: vagrant destroy failed but it never made a machine", iid)
        await self._forget(iid)
        log.info("destroyed %s", iid)

    async def _forget(self, iid: str) -> None:
        await asyncio.to_thread(self.dirs.remove, iid)

    async def _undo(self, iid: str) -> None:
        """Take back a failed provision; a failure here is only logged (the directory stays,
        and Describe cleans it up once its ``up`` can no longer be running)."""
        try:
            await self._teardown(iid)
        except errors.InfrakitError as exc:
            log.error("%s could not be destroyed after a failed provision (kept): %s", iid,
                      exc.message)

    # -- making --------------------------------------------------------------------------

    def _make(self, wanted: props.Properties, spec: instance.Spec,
              record: machines.Record) -> tuple[str, pathlib.Path]:
        """A new machine directory with its Vagrantfile, Init and record, marked as being
        provisioned; its ID and path."""
        while True:
            iid = self.dirs.new_id()
            text = self._render(wanted, iid=iid, logical_id=spec.logical_id, tags=spec.tags,
                                init=spec.init)
            self._provisioning.add(iid)
            try:
                return iid, self.dirs.create(iid, vagrantfile=text, init=spec.init,
                                             record=record)
            except FileExistsError:
                self._provisioning.discard(iid)  # taken meanwhile by another provision
            except OSError as exc:
                self._provisioning.discard(iid)
                raise errors.TemporaryError(f"{iid}: cannot make its directory in "
                                            f"{self.dirs.root}: {exc.strerror or exc}",
                                            instance=iid) from None

    # -- checks ----------------------------------------------------------------------------

    def _parse(self, raw: Any) -> props.Properties:
        wanted = props.parse(raw, strict=self.template.builtin)
        return props.check_builtin(wanted) if self.template.builtin else wanted

    def _render(self, wanted: props.Properties, *, iid: str, logical_id: str | None,
                tags: dict[str, str], init: str) -> str:
        return self.template.render(templates.context(
            wanted, iid=iid, logical_id=logical_id, tags=tags, init=init, plugin=self.name))

    def _check_logical_id(self, wanted: props.Properties, logical_id: str | None) -> None:
        if logical_id is None:
            return
        if not logical_id.strip():
            raise errors.InvalidError("Spec.LogicalID: expected a non-empty string",
                                      field="Spec.LogicalID")
        if self.template.builtin and wanted.chosen_provider() != props.DOCKER:
            try:
                ipaddress.ip_address(logical_id)
            except ValueError:
                raise errors.InvalidError(
                    f"Spec.LogicalID: expected an IP address, got {logical_id!r} (the built-in "
                    "template gives a VM its LogicalID as its private network address)",
                    field="Spec.LogicalID") from None


def _write(dirs: machines.Directory, iid: str, record: machines.Record) -> None:
    try:
        dirs.write(iid, record)
    except OSError as exc:
        raise errors.TemporaryError(f"{iid}: cannot write its {machines.RECORD}: "
                                    f"{exc.strerror or exc}", instance=iid) from None


def _description(iid: str, record: machines.Record, view: dict[str, Any], *,
                 detailed: bool) -> instance.Description:
    logical = instance.LogicalID(record.logical_id) if record.logical_id else None
    return instance.Description(id=instance.ID(iid), logical_id=logical, tags=record.tags,
                                properties=view if detailed else None)


def _log_failure(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        message = exc.message if isinstance(exc, errors.InfrakitError) else repr(exc)
        log.warning("%s failed: %s", task.get_name(), message)

