"""The Init seed: a NoCloud ISO (volume ``cidata``) with ``user-data`` and ``meta-data``.

How the instance's Init reaches the guest. Chosen over the kernel command line because it
serves both kinds of instance (cloud images run cloud-init, which reads this seed; a kernel
booted directly can mount it too), has no size limit (x86's command line stops at 2 KiB),
and keeps the Init out of ``/proc/cmdline``, which every process in the guest can read.
``user-data`` is the Init exactly as the flavor prepared it; ``meta-data`` holds
``instance-id``, ``local-hostname`` and the ``Metadata`` property's keys.

Written with ``genisoimage``, ``xorriso`` or ``mkisofs``, whichever is on PATH (Debian's
``genisoimage``; see scripts/deps-libvirt.sh). Called by the plugin's Provision.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Mapping

from infrakit import errors

LABEL = "cidata"
"""The volume label NoCloud looks for."""
TOOLS = ("genisoimage", "xorriso", "mkisofs")


def meta_data(iid: str, *, hostname: str, extra: Mapping[str, str]) -> str:
    """The ``meta-data`` document (YAML; each line a JSON key and value, which YAML reads)."""
    values = {"instance-id": iid, "local-hostname": hostname, **extra}
    return "".join(f"{json.dumps(key)}: {json.dumps(value)}\n" for key, value in values.items())


def write(path: pathlib.Path, *, user_data: str, meta: str) -> None:
    """Write the seed ISO at ``path``, readable by its owner only (it may hold secrets; a
    system libvirt hands it to the hypervisor's user itself); ``PermanentError`` when no
    ISO tool is installed or it fails."""
    tool = _tool()
    with tempfile.TemporaryDirectory(prefix="ik-seed-") as staging:
        files = pathlib.Path(staging)
        (files / "user-data").write_text(user_data)
        (files / "meta-data").write_text(meta)
        argv = [tool, "-as", "mkisofs"] if pathlib.Path(tool).name == "xorriso" else [tool]
        argv += ["-quiet", "-output", str(path), "-volid", LABEL, "-joliet", "-rock",
                 str(files / "user-data"), str(files / "meta-data")]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise errors.PermanentError(f"cannot write the Init seed {path}: "
                                    f"{done.stderr.strip() or done.returncode}")
    os.chmod(path, 0o600)


def _tool() -> str:
    for name in TOOLS:
        found = shutil.which(name)
        if found:
            return found
    raise errors.PermanentError(
        "instance-libvirt delivers Init on a NoCloud seed ISO and needs one of "
        f"{', '.join(TOOLS)} on PATH (Debian: apt-get install genisoimage)")
