"""A small, dependency-free, blocking JSON-RPC client for the CLI (stdlib only).

One call opens one connection: the CLI makes a handful of calls and exits, so pooling would
buy nothing. Errors come back as our exception types through ``jsonrpc.unwrap_response``.
"""

from __future__ import annotations

import http.client
import itertools
import json
import pathlib
import socket
from typing import Any

from infrakit import errors
from infrakit.rpc import jsonrpc
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
    """Blocking calls to the plugin at ``path``."""

    def __init__(self, path: str | pathlib.Path, *, name: str | None = None,
                 timeout: float = 30.0) -> None:
        self.path = str(path)
        self.name = name or pathlib.Path(path).name
        self.timeout = timeout
        self._apis: list[handshake.Interface] | None = None

    def call(self, method: str, params: dict[str, Any]) -> Any:
        body = json.dumps(jsonrpc.request(method, params, next(_ids)))
        connection = _UnixConnection(self.path, self.timeout)
        try:
            connection.request("POST", "/", body=body,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            raw = response.read()
        except TimeoutError:
            raise errors.CallTimeout(
                f"{self.name}: {method} did not answer within {self.timeout:g}s",
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

    def implements(self) -> list[handshake.Interface]:
        if self._apis is None:
            result = self.call("Handshake.Implements", {})
            self._apis = handshake.ImplementsResponse.from_wire(result).apis
        return self._apis

    def require(self, *wanted: handshake.Interface) -> handshake.Interface:
        """The first of ``wanted`` the plugin implements, else ``HandshakeError``."""
        offered = self.implements()
        return handshake.choose(offered, wanted, plugin=self.name)
