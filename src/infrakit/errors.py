"""The one error tree of InfraKit for Python.

Every error that crosses a plugin socket has a ``kind`` and a JSON-RPC ``code``; the
server puts both on the wire and the client rebuilds the same class from
:data:`BY_KIND`, never by reading the message. Retry meaning lives in the type.

    InfrakitError
    ├── UsageError            bad input from a person: a file that does not parse, a bad flag
    ├── InvalidError          a spec or params that do not validate (names the field)
    ├── NotFoundError         no such group, instance, plugin or type
    │   └── PluginNotFound    nothing listens at that name in the plugins dir
    ├── ConflictError         the request contradicts current state (e.g. a live socket)
    ├── HandshakeError        the plugin does not implement the interface we need
    ├── ProtocolError         the peer broke JSON-RPC (parse error, bad envelope)
    │   ├── ParseError        the body is not JSON at all
    │   └── MethodNotFound    the peer has no such method
    ├── RemoteError           the peer failed and said only a message (v0.5 peers)
    ├── TemporaryError(delay) worth retrying later: unreachable, timed out, busy
    │   ├── Unavailable       the socket refused or vanished
    │   └── CallTimeout       no answer within the per-call timeout
    ├── PermanentError        retrying cannot help
    └── NotLeaderError        a mutating call reached a manager that cannot act

``exit_code`` is what the CLI returns when the error ends a command.
"""

from __future__ import annotations

from typing import Any, ClassVar

# JSON-RPC 2.0 standard codes, plus the -32000 "server error" that InfraKit v0.5 uses for
# every error raised by a plugin implementation.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000


class InfrakitError(Exception):
    """Base of every error we raise on purpose."""

    kind: ClassVar[str] = "error"
    code: ClassVar[int] = SERVER_ERROR
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_data(self) -> dict[str, Any]:
        """The machine-readable ``data`` object of a JSON-RPC error."""
        return {"kind": self.kind, **self.data}


class UsageError(InfrakitError):
    kind = "usage"
    code = INVALID_PARAMS
    exit_code = 2


class InvalidError(InfrakitError):
    kind = "invalid"
    code = INVALID_PARAMS
    exit_code = 2


class NotFoundError(InfrakitError):
    kind = "not_found"
    exit_code = 3


class PluginNotFound(NotFoundError):
    kind = "plugin_not_found"


class ConflictError(InfrakitError):
    kind = "conflict"
    exit_code = 4


class HandshakeError(InfrakitError):
    kind = "handshake"
    exit_code = 5


class ProtocolError(InfrakitError):
    kind = "protocol"
    code = INVALID_REQUEST
    exit_code = 5


class ParseError(ProtocolError):
    kind = "parse_error"
    code = PARSE_ERROR


class MethodNotFound(ProtocolError):
    kind = "method_not_found"
    code = METHOD_NOT_FOUND


class RemoteError(InfrakitError):
    kind = "remote"


class TemporaryError(InfrakitError):
    kind = "temporary"
    exit_code = 6

    def __init__(self, message: str, *, delay: float = 1.0, **data: Any) -> None:
        super().__init__(message, delay=delay, **data)
        self.delay = delay


class Unavailable(TemporaryError):
    kind = "unavailable"


class CallTimeout(TemporaryError):
    kind = "timeout"


class PermanentError(InfrakitError):
    kind = "permanent"


class NotLeaderError(InfrakitError):
    kind = "not_leader"
    exit_code = 7


def _all_subclasses(cls: type[InfrakitError]) -> list[type[InfrakitError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


BY_KIND: dict[str, type[InfrakitError]] = {c.kind: c for c in _all_subclasses(InfrakitError)}
"""The table a client rebuilds remote errors from."""


def from_wire(code: int, message: str, data: Any) -> InfrakitError:
    """Rebuild an error received over JSON-RPC: by ``data.kind``, else by code."""
    if isinstance(data, dict) and data.get("kind") in BY_KIND:
        cls = BY_KIND[data["kind"]]
        extra = {k: v for k, v in data.items() if k != "kind"}
        if issubclass(cls, TemporaryError):
            delay = extra.pop("delay", 1.0)
            seconds = float(delay) if isinstance(delay, int | float) else 1.0
            return cls(message, delay=seconds, **extra)
        return cls(message, **extra)
    by_code: dict[int, type[InfrakitError]] = {
        METHOD_NOT_FOUND: MethodNotFound,
        INVALID_PARAMS: InvalidError,
        PARSE_ERROR: ParseError,
        INVALID_REQUEST: ProtocolError,
    }
    return by_code.get(code, RemoteError)(message)
