"""Disk images through ``qemu-img``: what an image is, and an instance's own disk.

Each instance booted from ``Image`` runs on a copy-on-write qcow2 overlay of it (the image is
never written), or, with ``Disk`` and no image, on a blank qcow2 disk; either is the
instance's own file and goes with it. Called by the plugin's Provision (to make them) and to
tell an attachment's format. ``qemu-img`` comes with Debian's ``qemu-utils``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
import subprocess

from infrakit import errors

MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Info:
    """An image's format and size as ``qemu-img info`` reads them."""

    format: str
    virtual_size: int
    """Bytes the guest sees."""


def info(path: str, *, field: str) -> Info:
    """What ``path`` holds; ``InvalidError`` naming ``field`` when it is not an image."""
    # -U: an image in use by a running guest (a shared base, an attachment) still reads.
    done = _qemu_img("info", "-U", "--output=json", path)
    if done.returncode != 0:
        raise errors.InvalidError(f"{field}: not a disk image qemu-img can read: {path}: "
                                  f"{done.stderr.strip()}", field=field)
    found = json.loads(done.stdout)
    return Info(format=str(found.get("format", "raw")),
                virtual_size=int(found.get("virtual-size", 0)))


def overlay(path: pathlib.Path, *, base: str, size_mib: int | None) -> None:
    """A qcow2 overlay of ``base`` at ``path``, grown to ``size_mib`` when given (never
    smaller than the image: that would cut its end off)."""
    image = info(base, field="Properties.Image")
    argv = ["create", "-q", "-f", "qcow2", "-F", image.format, "-b", base, str(path)]
    if size_mib is not None:
        if size_mib * MIB < image.virtual_size:
            raise errors.InvalidError(
                f"Properties.Disk: {size_mib} MiB is smaller than the image "
                f"({image.virtual_size // MIB} MiB)", field="Properties.Disk")
        argv.append(f"{size_mib}M")
    _create(path, argv)


def blank(path: pathlib.Path, *, size_mib: int) -> None:
    """An empty qcow2 disk of ``size_mib`` at ``path``."""
    _create(path, ["create", "-q", "-f", "qcow2", str(path), f"{size_mib}M"])


def _create(path: pathlib.Path, argv: list[str]) -> None:
    done = _qemu_img(*argv)
    if done.returncode != 0:
        path.unlink(missing_ok=True)
        raise errors.PermanentError(f"qemu-img could not create {path}: "
                                    f"{done.stderr.strip()}")


def _qemu_img(*argv: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("qemu-img")
    if tool is None:
        raise errors.PermanentError("instance-libvirt needs qemu-img for disks "
                                    "(Debian: apt-get install qemu-utils)")
    return subprocess.run([tool, *argv], capture_output=True, text=True, check=False)
