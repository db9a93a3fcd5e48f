"""Finding plugins: the plugins dir, the sockets in it, and typed clients by plugin name.

A plugin name may carry a sub-type, ``instance-file/us-east``: the socket is the part before
the first ``/``, the rest is the Type sent with every call. Where a name is expected a URL
may stand (``https://10.0.0.5:24864/instance-file/us-east``, :mod:`.address`): a plugin
on another host, reached over TCP with mutual TLS. So group specs, managers and the CLI
reach remote plugins through :class:`Plugins` without knowing it.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import stat

from infrakit import errors
from infrakit.rpc import address, client
from infrakit.rpc import flavor as flavor_rpc
from infrakit.rpc import group as group_rpc
from infrakit.rpc import instance as instance_rpc
from infrakit.rpc import manager as manager_rpc
from infrakit.rpc import metadata as metadata_rpc


def plugins_dir() -> pathlib.Path:
    """``$INFRAKIT_PLUGINS_DIR``, else ``$INFRAKIT_HOME/plugins``, else ``~/.infrakit/plugins``."""
    if os.environ.get("INFRAKIT_PLUGINS_DIR"):
        return pathlib.Path(os.environ["INFRAKIT_PLUGINS_DIR"])
    if os.environ.get("INFRAKIT_HOME"):
        return pathlib.Path(os.environ["INFRAKIT_HOME"]) / "plugins"
    return pathlib.Path.home() / ".infrakit" / "plugins"


@dataclasses.dataclass(frozen=True)
class Name:
    """A parsed plugin name: the socket's name and the Type addressed inside it."""

    lookup: str
    type: str = ""

    @classmethod
    def parse(cls, name: str) -> Name:
        if address.is_url(name):  # lookup: the URL without its Type
            where = address.parse(name)
            return cls(lookup=where.lookup, type=where.type)
        lookup, _, type_name = name.partition("/")
        if not lookup:
            raise errors.UsageError(
                f"plugin name {name!r} is not valid: expected NAME or NAME/TYPE")
        return cls(lookup=lookup, type=type_name)

    def __str__(self) -> str:
        return f"{self.lookup}/{self.type}" if self.type else self.lookup


def list_sockets(directory: pathlib.Path | None = None) -> dict[str, pathlib.Path]:
    """Every socket in the plugins dir, by name (empty when the dir does not exist)."""
    directory = directory or plugins_dir()
    found: dict[str, pathlib.Path] = {}
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return found
    except PermissionError:
        raise errors.UsageError(f"cannot read plugins dir {directory}: permission denied") from None
    for entry in entries:
        try:
            if stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                found[entry.name] = pathlib.Path(entry.path)
        except FileNotFoundError:
            continue
    return dict(sorted(found.items()))


def find(name: str, directory: pathlib.Path | None = None) -> pathlib.Path:
    """The socket of plugin ``name`` (its part before ``/``), or ``PluginNotFound``."""
    directory = directory or plugins_dir()
    if address.is_url(name):
        raise errors.UsageError(f"{name} is a URL, not a plugin in the plugins dir {directory}")
    lookup = Name.parse(name).lookup
    path = directory / lookup
    try:
        is_socket = stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        is_socket = False
    except OSError as exc:  # e.g. permission denied on the plugins dir
        raise errors.UsageError(
            f"cannot look up plugin {lookup!r} in {directory}: {exc.strerror or exc}") from None
    if not is_socket:
        raise errors.PluginNotFound(
            f"plugin {lookup!r} not found: no socket {path} (is it running? "
            "see `infrakit plugin ls`)", plugin=lookup)
    return path


class Plugins:
    """Typed RPC clients by plugin name or URL, sharing one connection pool per plugin."""

    def __init__(self, directory: pathlib.Path | None = None, *,
                 timeout: float = client.DEFAULT_TIMEOUT) -> None:
        self.directory = directory or plugins_dir()
        self.timeout = timeout
        self._clients: dict[str, client.Client] = {}

    def client(self, name: str) -> client.Client:
        """The raw client for the plugin ``name`` names: its URL, or its socket (resolved
        now; raises if absent)."""
        lookup = Name.parse(name).lookup
        if address.is_url(lookup):
            reached = self._clients.get(lookup)
            if reached is None:
                reached = self._clients[lookup] = client.Client(lookup, timeout=self.timeout)
            return reached
        path = find(lookup, self.directory)
        existing = self._clients.get(lookup)
        if existing is None or existing.path != str(path):
            existing = client.Client(path, name=lookup, timeout=self.timeout)
            self._clients[lookup] = existing
        return existing

    def instance(self, name: str) -> instance_rpc.Client:
        return instance_rpc.Client(self.client(name), Name.parse(name).type)

    def flavor(self, name: str) -> flavor_rpc.Client:
        return flavor_rpc.Client(self.client(name), Name.parse(name).type)

    def group(self, name: str) -> group_rpc.Client:
        return group_rpc.Client(self.client(name), Name.parse(name).type)

    def manager(self, name: str) -> manager_rpc.Client:
        return manager_rpc.Client(self.client(name))

    def metadata(self, name: str) -> metadata_rpc.Client:
        return metadata_rpc.Client(self.client(name))

    async def close(self) -> None:
        for each in self._clients.values():
            await each.close()
        self._clients.clear()
