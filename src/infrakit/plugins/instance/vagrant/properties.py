"""instance-vagrant's ``Properties``: what one machine is made of.

v0.5's keys keep their meaning for VM providers (``Box``, ``CPUs``, ``Memory`` in MB); the
docker provider takes ``Image``, ``Cmd`` and ``Env``; ``Provider`` picks the provider
``vagrant up`` uses (``docker`` when ``Image`` is set, else v0.5's ``virtualbox``)::

    {"Box": "debian/bookworm64", "CPUs": 1, "Memory": 1024, "Provider": "libvirt"}
    {"Image": "busybox:stable", "Cmd": ["httpd", "-f", "-p", "80"], "Env": {"MODE": "web"}}

With the built-in Vagrantfile template :func:`parse` is strict (an unknown key is refused with
its path and the closest known one) and :func:`check_builtin` says which keys the chosen
provider needs. A template of the user's own (``--template``) may read any key as
``Properties.X``: then unknown keys pass, and the known ones are still type-checked.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from infrakit import errors
from infrakit.plugins import properties
from infrakit.spi.wire import Wire

DOCKER = "docker"
DEFAULT_VM_PROVIDER = "virtualbox"
"""v0.5's built-in template ran VirtualBox."""
_PROVIDER = re.compile(r"^[a-z][a-z0-9_-]*$")


class Properties(Wire):
    """One Vagrant machine."""

    box: str | None = Field(None, min_length=1)
    """The box a VM boots (VM providers)."""
    cpus: int = Field(2, ge=1, alias="CPUs")
    """Virtual CPUs (VM providers; v0.5's default)."""
    memory: int = Field(512, ge=1)
    """Memory in MB (VM providers; v0.5's default)."""
    provider: str | None = None
    """The provider for ``vagrant up --provider``: ``docker`` when Image is set, else
    ``virtualbox``."""
    image: str | None = Field(None, min_length=1)
    """The image a container runs (the docker provider; never pulled)."""
    cmd: list[str] | None = None
    """The container's command, run after Init (the docker provider)."""
    env: dict[str, str] | None = None
    """Extra environment variables of the container (the docker provider)."""

    @field_validator("provider")
    @classmethod
    def _provider_name(cls, value: str | None) -> str | None:
        if value is not None and not _PROVIDER.match(value):
            raise ValueError("expected a Vagrant provider name such as docker, virtualbox or "
                             f"libvirt, got {value!r}")
        return value

    def chosen_provider(self) -> str:
        """The provider ``vagrant up`` is asked for."""
        if self.provider is not None:
            return self.provider
        return DOCKER if self.image is not None else DEFAULT_VM_PROVIDER


def parse(raw: Any, *, strict: bool = True) -> Properties:
    """``raw`` as :class:`Properties`; ``InvalidError`` naming every bad field."""
    return properties.parse(Properties, raw, strict=strict)


def check_builtin(wanted: Properties) -> Properties:
    """``wanted`` if the built-in template can make a machine of it; else ``InvalidError``
    naming the field."""
    provider = wanted.chosen_provider()
    if provider == DOCKER:
        if wanted.image is None:
            raise _invalid("Image", "required by the docker provider (the image the container "
                                    "runs)")
        if wanted.box is not None:
            raise _invalid("Box", "not used by the docker provider (it runs Image)")
        return wanted
    if wanted.box is None:
        # v0.5's words, and what to do about it.
        raise _invalid("Box", f"Property 'Box' must be set (the box the {provider} VM boots)")
    for field, value in (("Image", wanted.image), ("Cmd", wanted.cmd), ("Env", wanted.env)):
        if value is not None:
            raise _invalid(field, f"only for the docker provider, not {provider} (set "
                                  "Provider: docker)")
    return wanted


def _invalid(field: str, what: str) -> errors.InvalidError:
    return errors.InvalidError(f"Properties.{field}: {what}", field=f"Properties.{field}")
