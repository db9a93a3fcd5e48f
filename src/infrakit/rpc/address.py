"""Plugin addresses that are URLs: a plugin listening on TCP, reached from anywhere.

A plugin is addressed either by name (``instance-file``, ``instance-file/us-east``: a socket
in the local plugins dir, :mod:`.discovery`) or by URL::

    https://10.0.0.5:24864                      the plugin on that port, default type
    https://10.0.0.5:24864/instance-file        the same, named (the name labels errors)
    https://10.0.0.5:24864/instance-file/us-east    sub-type us-east
    http://127.0.0.1:24864/group                plain TCP: only where insecure is allowed

``https`` is mutual TLS (:mod:`.tls`). One port serves one plugin, so the path's first
segment only names it in messages; the rest is the ``Type``, as after the ``/`` of a
name. Group specs, the CLI's ``--host`` and managers use these.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import urllib.parse

from infrakit import errors

SCHEMES = ("https", "http")


def is_url(text: str) -> bool:
    """True when ``text`` is a plugin URL rather than a name in the plugins dir."""
    return text.startswith(tuple(f"{scheme}://" for scheme in SCHEMES))


@dataclasses.dataclass(frozen=True)
class Address:
    """A parsed plugin URL."""

    scheme: str
    host: str
    port: int
    name: str = ""
    """The path's first segment: the plugin's name, for messages."""
    type: str = ""
    """The rest of the path: the Type sent with Instance and Flavor calls."""

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    @property
    def base(self) -> str:
        """``scheme://host:port``: what the connection goes to."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def lookup(self) -> str:
        """The URL without the Type: one plugin, as a key and in messages."""
        return f"{self.base}/{self.name}" if self.name else self.base

    def __str__(self) -> str:
        return f"{self.lookup}/{self.type}" if self.type else self.lookup


def parse(text: str) -> Address:
    """The address in ``text``; ``UsageError`` naming what is wrong with it."""
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise _bad(text, str(exc)) from None
    if parts.scheme not in SCHEMES:
        raise _bad(text, f"scheme {parts.scheme!r} is not https or http")
    if not parts.hostname or port is None:
        raise _bad(text, "host and port are needed")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise _bad(text, "user, query or fragment are not allowed")
    name, _, type_name = parts.path.strip("/").partition("/")
    return Address(scheme=parts.scheme, host=parts.hostname, port=port, name=name,
                   type=type_name)


def join(host: str, name: str) -> str:
    """The URL of plugin ``name`` (``NAME[/TYPE]``) at ``host`` (``--host``): the host's
    own path, when it has one, names the plugin instead."""
    where = parse(host)
    if where.name:
        return str(where)
    return f"{where.base}/{name}" if name else where.base


def listen_url(host: str, port: int, *, secure: bool) -> str:
    """The URL clients use for a listener on ``host:port``."""
    scheme = "https" if secure else "http"
    try:
        bracket = ipaddress.ip_address(host).version == 6
    except ValueError:
        bracket = False
    return f"{scheme}://[{host}]:{port}" if bracket else f"{scheme}://{host}:{port}"


def _bad(text: str, why: str) -> errors.UsageError:
    return errors.UsageError(
        f"plugin URL {text!r} is not valid: {why}; expected https://HOST:PORT[/NAME[/TYPE]]")
