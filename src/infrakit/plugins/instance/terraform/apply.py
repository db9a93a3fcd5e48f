"""One batch carried out: the destroys, then the creates, each in one ``terraform apply``.

:class:`Applier` is the runner of :class:`.batch.Batcher`. Under the work directory's lock
(one apply at a time, also across processes) a batch:

1. reads the state and writes again the file of any instance the state has (by its
   metadata) and the directory has not: another host's instances, when several share a
   backend, or a file deleted by hand; an apply would otherwise destroy them;
2. destroys the instances being destroyed (the group's Destroys, and the leftovers of failed
   provisions) with ``apply -destroy -target=...`` while their files are still there, so that
   their destroy-time provisioners run (Terraform drops a removed block's provisioners), then
   removes their files;
3. applies everything else with one ``apply``: the new files, relabelled ones, and whatever
   drifted (a resource in the files but missing from the state is created again);
4. resolves each job from the state that results, not from the exit status alone: a
   provision succeeded when its resource is there and not tainted. A failed one's error
   names the instance and what Terraform said of it; its file goes (its leftovers are
   destroyed by the next batch). When Terraform refused a new file, the apply is tried once
   more without it, so one bad spec does not fail the others.
"""

from __future__ import annotations

import asyncio
import logging
import os

from infrakit import errors
from infrakit.plugins.instance.terraform import batch, document, engine, state, workdir
from infrakit.spi import instance

log = logging.getLogger(__name__)

SHOW_TIMEOUT = 120.0
INIT_TIMEOUT = 600.0
BUILTIN = "terraform"
"""The provider of ``terraform_data``, built into Terraform (needs no ``init``)."""


class Applier:
    """Carries out batches in one work directory with one engine."""

    def __init__(self, directory: workdir.WorkDir, terraform: engine.Engine, *,
                 apply_timeout: float, backend_config: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.engine = terraform
        self.apply_timeout = apply_timeout
        self.backend_config = backend_config
        self.state = state.State()
        """The state as last read."""
        self.busy = asyncio.Lock()
        self._providers: set[str] | None = None
        """Provider names ``init`` has installed (``None``: not run yet)."""

    async def prepare(self) -> None:
        """``init`` when the directory needs it: a backend, or the user's own files."""
        names = os.listdir(self.directory.path)
        own = [name for name in names if name.endswith((".tf", ".tf.json"))
               and name != workdir.SETTINGS and not workdir.FILE.match(name)]
        if self.directory.backend or own:
            await self._init(set())

    async def current(self) -> state.State:
        """The state now; the last one read while a batch is applying (Describe does not
        wait minutes for a slow apply)."""
        if self.busy.locked():
            return self.state
        async with self.busy:
            return await self._show()

    async def run(self, jobs: list[batch.Job]) -> None:
        async with self.busy, self.directory.lock(timeout=self.apply_timeout):
            current = await self._show()
            self._restore(current)
            doomed = {job.id for job in jobs if job.kind == "destroy" and job.id} \
                | self.directory.destroying()
            if doomed:
                current = await self._destroy(sorted(doomed), jobs, current)
            rest = [job for job in jobs if job.kind != "destroy"]
            if rest:
                await self._apply(rest, attempts=2)

    # Steps ---------------------------------------------------------------------------------

    async def _show(self) -> state.State:
        self.state = state.State(await self.engine.show(timeout=SHOW_TIMEOUT))
        return self.state

    def _restore(self, current: state.State) -> None:
        have, doomed = set(self.directory.ids()), self.directory.destroying()
        for iid, meta in current.metadata().items():
            if iid not in have and iid not in doomed:
                log.warning("%s: in Terraform's state but without a file here; writing its "
                            "file again from the state", iid)
                self.directory.write(iid, document.restore(iid, meta))

    async def _destroy(self, doomed: list[instance.ID], jobs: list[batch.Job],
                       current: state.State) -> state.State:
        targets: set[str] = set()
        for iid in doomed:
            targets.update(current.of(iid))
            found = _found(self.directory, iid)
            if found is not None:
                targets.update(found.addresses)
        outcome = None
        if targets & set(current.resources):
            outcome = await self.engine.apply(destroy=True, targets=sorted(targets),
                                              timeout=self.apply_timeout)
            current = await self._show()
        asked = {job.id: job for job in jobs if job.kind == "destroy"}
        for iid in doomed:
            left = current.of(iid)
            job = asked.get(iid)
            if not left:
                self.directory.remove(iid)
                self.directory.unmark(iid)
                log.info("destroyed %s", iid)
                if job is not None:
                    job.done()
                continue
            why = _why(iid, outcome)
            log.error("%s: destroy failed (%s left): %s", iid, ", ".join(left), why)
            if job is not None:  # the group asked: it sees the instance again and retries
                self.directory.unmark(iid)
                job.done(errors.TemporaryError(f"instance {iid}: terraform destroy failed: "
                                               f"{why}", delay=5.0, instance=iid))
        return current

    async def _apply(self, jobs: list[batch.Job], *, attempts: int) -> None:
        await self._init_for_new_providers()
        outcome = await self.engine.apply(timeout=self.apply_timeout)
        current = await self._show()
        retry, refused = [], False
        for job in jobs:
            if job.kind != "provision" or job.id is None:
                job.done(None if outcome.ok else errors.TemporaryError(
                    f"terraform apply failed: {outcome.error()}", delay=5.0))
                continue
            found = _found(self.directory, job.id)
            if found is not None and current.created(found.address):
                job.done()
                continue
            own = _own(job.id, outcome)
            if not own and not current.of(job.id) and attempts > 1:
                retry.append(job)  # failed for another's fault: it gets another apply
                continue
            refused |= bool(own) and not current.of(job.id)
            self._discard(job.id, current)
            job.done(errors.TemporaryError(
                f"instance {job.id}: terraform apply failed: {_why(job.id, outcome)}",
                delay=5.0, instance=job.id))
        if retry and refused:
            await self._apply(retry, attempts=attempts - 1)
        else:
            for job in retry:
                self._discard(job.id, current)
                job.done(errors.TemporaryError(
                    f"instance {job.id}: terraform apply failed: {_why(str(job.id), outcome)}",
                    delay=5.0, instance=job.id))

    def _discard(self, iid: instance.ID | None, current: state.State) -> None:
        """A failed provision's file goes; what it left in the state is destroyed next."""
        if iid is None:
            return
        if current.of(iid):
            self.directory.mark(iid)
        else:
            self.directory.remove(iid)

    async def _init_for_new_providers(self) -> None:
        """``init`` when an instance needs a provider not installed yet (not the built-in
        one: ``terraform_data`` works without ``init``)."""
        needed = set()
        for iid in self.directory.ids():
            found = self.directory.read(iid)
            for kind in (found or {}).get("resource") or {}:
                needed.add(kind.split("_", 1)[0])
        needed.discard(BUILTIN)
        if needed and (self._providers is None or needed - self._providers):
            await self._init(needed)

    async def _init(self, providers: set[str]) -> None:
        log.info("terraform init%s", f" for {', '.join(sorted(providers))}" if providers else "")
        await self.engine.init(backend_config=self.backend_config, timeout=INIT_TIMEOUT)
        self._providers = set(providers) | (self._providers or set())


def _found(directory: workdir.WorkDir, iid: str) -> document.Found | None:
    found = directory.read(iid)
    return document.read(instance.ID(iid), found) if found is not None else None


def _own(iid: str, outcome: engine.Outcome) -> list[engine.Diagnostic]:
    """The diagnostics about instance ``iid`` (its resources or its file)."""
    mine = []
    for diagnostic in outcome.diagnostics():
        name = diagnostic.address.split(".", 1)[-1].split("[", 1)[0]
        if diagnostic.filename == f"{iid}.tf.json" or name == iid \
                or name.startswith(f"{iid}-") or name == document.META_PREFIX + iid:
            mine.append(diagnostic)
    return mine


def _why(iid: str, outcome: engine.Outcome | None) -> str:
    if outcome is None:
        return "its resources are still in the state"
    own = _own(iid, outcome)
    if own:
        return "; ".join(diagnostic.text() for diagnostic in own)
    return outcome.error() if not outcome.ok else "its resource is missing from the state"
