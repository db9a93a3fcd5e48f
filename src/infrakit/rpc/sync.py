"""A small, dependency-free, blocking JSON-RPC client for the CLI (stdlib only).

One call opens one connection: the CLI makes a handful of calls and exits, so pooling would
buy nothing. The plugin is a unix socket path or a URL (:mod:`.address`; ``https://`` is
mutual TLS with the process's certificate, :mod:`.tls`). Errors come back as our exception
types through ``jsonrpc.unwrap_response``; a TLS failure is ``Unavailable`` naming the URL
and the cause.
"""

from __future__ import annotations

import http.client
import itertools
import json
import pathlib
import socket
import ssl
from typing import Any

from infrakit import errors
from infrakit.rpc import address, jsonrpc, tls
from infrakit.spi import handshake

_ids = itertools.count(1)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("plugin", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Client:
    """Blocking calls to the plugin at ``path`` (a socket path or a URL)."""

    def __init__(self, path: str | pathlib.Path, *, name: str | None = None,
                 timeout: float = 30.0, settings: tls.Settings | None = None) -> None:
        self.path = str(path)
        self.address = address.parse(self.path) if address.is_url(self.path) else None
        default = (self.address.name or self.address.lookup) if self.address \
            else pathlib.Path(path).name
        self.name = name or default
        self.timeout = timeout
        self._settings = settings
        self._apis: list[handshake.Interface] | None = None

    def _connection(self) -> http.client.HTTPConnection:
        where = self.address
        if where is None:
            return _UnixConnection(self.path, self.timeout)
        context = tls.context_for(where, self._settings)
        if context is None:
            return http.client.HTTPConnection(where.host, where.port, timeout=self.timeout)
        return http.client.HTTPSConnection(where.host, where.port, timeout=self.timeout,
                                           context=context)

    def call(self, method: str, params: dict[str, Any]) -> Any:
        body = json.dumps(jsonrpc.request(method, params, next(_ids))).encode()
        connection = self._connection()
        try:
            connection.request("POST", "/", body=body,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            raw = response.read()
        except TimeoutError:
            raise errors.CallTimeout(
                f"{self.name}: {method} did not answer within {self.timeout:g}s",
                plugin=self.name) from None
        except ssl.SSLError as exc:
            raise errors.Unavailable(
                f"{self.name}: cannot reach plugin at {self.path}: TLS: {tls.explain(exc)}",
                plugin=self.name) from None
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise errors.Unavailable(
                f"{self.name}: cannot reach plugin at {self.path}: {self._dropped(exc)}",
                plugin=self.name) from None
        except OSError as exc:
            raise errors.Unavailable(
                f"{self.name}: cannot reach plugin at {self.path}: {exc.strerror or exc}",
                plugin=self.name) from None
        except http.client.HTTPException as exc:
            raise errors.ProtocolError(f"{self.name}: bad HTTP answer: {exc}") from None
        finally:
            connection.close()
        try:
            message = json.loads(raw)
        except ValueError:
            raise errors.ProtocolError(
                f"{self.name}: answer is not JSON (HTTP {response.status}): {raw[:200]!r}"
            ) from None
        return jsonrpc.unwrap_response(message)

    def _dropped(self, exc: OSError) -> str:
        if self.address is not None and self.address.secure:
            # TLS 1.3: a refused certificate may show as a reset instead of the alert.
            return (f"{exc.strerror or exc} during TLS (was our certificate refused? the "
                    "plugin's log says why)")
        return str(exc.strerror or exc)

    def implements(self) -> list[handshake.Interface]:
        if self._apis is None:
            result = self.call("Handshake.Implements", {})
            self._apis = handshake.ImplementsResponse.from_wire(result).apis
        return self._apis

    def require(self, *wanted: handshake.Interface) -> handshake.Interface:
        """The first of ``wanted`` the plugin implements, else ``HandshakeError``."""
        offered = self.implements()
        return handshake.choose(offered, wanted, plugin=self.name)
