"""What the tests on real Vagrant share: why they cannot run here, and how to clean up."""

from __future__ import annotations

import shutil

import privatedocker

from infrakit.plugins.instance.vagrant import template

MARK = f"label={template.MARK}"
"""A ``docker ps`` filter for every container the built-in template made."""


def missing() -> str | None:
    """Why real Vagrant on a private dockerd cannot run here, or None."""
    if shutil.which("vagrant") is None:
        return "vagrant not found: run scripts/deps-apps.sh as root"
    return privatedocker.missing()


def remove_containers(dockerd: privatedocker.Dockerd) -> None:
    """Remove every container the built-in template made on ``dockerd``."""
    leftovers = dockerd.containers(MARK)
    if leftovers:
        dockerd.docker("rm", "-f", "-v", *leftovers)
