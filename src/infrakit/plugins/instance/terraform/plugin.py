"""The ``instance-terraform`` plugin: each instance is ``instance-<digits>.tf.json`` in a work
directory, applied by Terraform.

Served by ``infrakit-instance-terraform`` (:mod:`.serve`); tests call :class:`Plugin`
directly. Properties are v0.5's (:mod:`.document`).

- **Provision** checks the properties, picks the ID up front (``instance-<microseconds>``,
  v0.5's naming), writes the file and waits for the batched apply that creates it
  (:mod:`.batch`, :mod:`.apply`). The file is written first: a plugin that dies before the
  apply finds it at restart, reports it once and creates it with the next apply.
- **Destroy** marks the instance as being destroyed (Describe no longer lists it), then the
  batch destroys its resources by target, running their destroy-time provisioners, and
  removes its file. An instance with neither file nor resources is destroyed already.
- **Label** merges tags into the file (and the resource's own tags where it has some) and
  waits for the apply.
- **Describe** lists the instance files and reads the state (``show -json``): with
  ``properties`` each instance carries its resource's attributes from the state. An
  instance whose file has no resource in the state (drift: gone from the provider, or a
  provision cut short) is still listed, once, is logged, and a repair apply is queued that
  creates it again. Instances that the state holds, by our metadata, and the directory
  has no file for (another host's, on a shared backend) are listed too, and their files
  written back by the next batch.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from infrakit import errors
from infrakit.plugins.instance.terraform import apply, batch, document, engine, state, workdir
from infrakit.plugins.instance.terraform import tags as tagging
from infrakit.spi import instance

log = logging.getLogger(__name__)

WINDOW = 0.5
"""Seconds changes gather before they are applied together (``--batch-window``)."""
APPLY_TIMEOUT = 1800.0


class Plugin:
    """An instance plugin over one Terraform work directory (async methods)."""

    def __init__(self, directory: workdir.WorkDir, terraform: engine.Engine, *,
                 window: float = WINDOW, apply_timeout: float = APPLY_TIMEOUT,
                 backend_config: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.engine = terraform
        self.applier = apply.Applier(directory, terraform, apply_timeout=apply_timeout,
                                     backend_config=backend_config)
        self.batcher = batch.Batcher(self.applier.run, window=window)
        self._styles: dict[str, tagging.Style | None] = {}
        self._schema_lock = asyncio.Lock()
        self._drifted: set[str] = set()

    async def start(self) -> None:
        """Set the directory up (``init`` where needed); finish what a previous run left
        (destroys under way, files not applied) with a first batch."""
        self.directory.prepare()
        await self.applier.prepare()
        if self.directory.destroying():
            self.batcher.request()

    async def close(self) -> None:
        await self.batcher.close()

    async def validate(self, properties: Any) -> None:
        document.parse(properties)

    async def provision(self, spec: instance.Spec) -> instance.ID:
        parsed = document.parse(spec.properties)
        await self._learn_styles({resource.type for resource in parsed.resources})
        iid = self.directory.new_id()
        self.directory.write(iid, document.build(parsed, spec, iid, tag_style=self._style))
        await self.batcher.submit("provision", iid)
        log.info("provisioned %s", iid)
        return iid

    async def label(self, instance: instance.ID, labels: dict[str, str]) -> None:
        found = self.directory.read(instance) if workdir.ID.match(instance) else None
        if found is None or instance in self.directory.destroying():
            raise errors.NotFoundError(f"no instance {instance!r}", instance=instance)
        kind = document.read(instance, found)
        if kind is not None:
            await self._learn_styles({kind.type})
        self.directory.write(instance, document.relabel(instance, found, labels,
                                                        tag_style=self._style))
        await self.batcher.submit("label", instance)

    async def destroy(self, instance: instance.ID) -> None:
        if not workdir.ID.match(instance):
            raise errors.NotFoundError(f"no instance {instance!r}: expected instance-<digits>",
                                       instance=instance)
        if not self.directory.file(instance).exists() \
                and instance not in (await self.applier.current()).instances():
            log.info("destroy %s: no file and no resources (done already)", instance)
            return
        self.directory.mark(instance)
        await self.batcher.submit("destroy", instance)

    async def describe_instances(self, tags: dict[str, str],
                                 properties: bool = False) -> list[instance.Description]:
        current = await self.applier.current()
        doomed, pending = self.directory.destroying(), self.batcher.pending()
        found: list[instance.Description] = []
        missing = []
        listed = set()
        for iid in self.directory.ids():
            if iid in doomed:
                continue
            read = self.directory.read(iid)
            what = document.read(iid, read) if read is not None else None
            if what is None:
                continue
            listed.add(iid)
            if not current.created(what.address) and iid not in pending:
                missing.append(iid)
            if _matches(what.tags, tags):
                found.append(_describe(what, current, properties=properties))
        for iid, meta in current.metadata().items():
            if iid in listed or iid in doomed or iid in pending:
                continue
            missing.append(iid)  # another host's: its file is written by the next batch
            if _matches(meta.tags, tags):
                found.append(instance.Description(
                    id=iid, logical_id=meta.logical_id, tags=meta.tags,
                    properties=_values(current, iid, meta) if properties else None))
        self._repair(missing)
        found.sort(key=lambda description: description.id)
        return found

    # Helpers -------------------------------------------------------------------------------

    def _repair(self, missing: list[instance.ID]) -> None:
        new = set(missing) - self._drifted
        if new:
            log.warning("drift: %s not in Terraform's state as the files say (gone from the "
                        "provider, a provision cut short, or another host's); the next apply "
                        "repairs it", ", ".join(sorted(new)))
        self._drifted = set(missing)
        if missing:
            self.batcher.request()

    def _style(self, kind: str) -> tagging.Style | None:
        return self._styles.get(kind)

    async def _learn_styles(self, kinds: set[str]) -> None:
        """Where each type keeps its tags, from the providers' schemas (asked once)."""
        if kinds <= self._styles.keys():
            return
        async with self._schema_lock:
            unknown = kinds - self._styles.keys()
            if not unknown:
                return
            schemas = await self.engine.schema(timeout=apply.SHOW_TIMEOUT)
            for kind in unknown:
                self._styles[kind] = tagging.from_schema(schemas[kind]) \
                    if kind in schemas else None


def _matches(have: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(have.get(key) == value for key, value in wanted.items())


def _describe(what: document.Found, current: state.State, *,
              properties: bool) -> instance.Description:
    return instance.Description(id=what.id, logical_id=what.logical_id, tags=what.tags,
                                properties=current.values(what.address) if properties
                                else None)


def _values(current: state.State, iid: str, meta: document.Metadata) -> dict[str, Any] | None:
    for kind, named in (meta.document.get("resource") or {}).items():
        if iid in (named or {}):
            return current.values(f"{kind}.{iid}")
    return None
