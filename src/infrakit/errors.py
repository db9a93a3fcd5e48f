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
    ├── NotLeaderError        a mutating call reached a manager that cannot act
    ├── NotConverged          (CLI only) a group is not at its declared state
    ├── WaitTimeout           (CLI only) a wait ran out of time
    └── Interrupted           (CLI only) Ctrl-C

``exit_code`` is what the CLI returns when the error ends a command; :data:`EXIT_CODES`
gives each code its one meaning (the README and ``infrakit --help`` print it).
"""

from __future__ import annotations

import math
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


class NotConverged(InfrakitError):
    """``describe --exit-status`` of a group not Converged, or ``commit --wait`` that ended in
    a phase a person must resolve (the message carries the phase and its reason)."""

    kind = "not_converged"
    exit_code = 8


class WaitTimeout(InfrakitError):
    """``commit --wait --timeout D`` ran out of time (the change goes on server-side)."""

    kind = "wait_timeout"
    exit_code = 9


class Interrupted(InfrakitError):
    """Ctrl-C ended a command (a change it started goes on server-side)."""

    kind = "interrupted"
    exit_code = 130


EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "ok"),
    (1, "internal error, or a plugin's error of no more specific kind"),
    (2, "bad input: a bad flag, argument, file or spec field; past --limit without --yes"),
    (3, "not found: no such group, instance or plugin"),
    (4, "conflict: the request contradicts the current state"),
    (5, "incompatible plugin: it lacks the interface needed, or broke the protocol"),
    (6, "unreachable: the plugin is down or did not answer in time"),
    (7, "refused: the manager is not the leader"),
    (8, "not converged (describe --exit-status; commit --wait stuck in Holding, "
        "CrashLooping, ProvisionFailing, Paused or Aborted)"),
    (9, "timed out: commit --wait --timeout passed before Converged"),
    (130, "interrupted (Ctrl-C)"),
)
"""The CLI's exit codes, one meaning each (``exit_code`` of the classes above)."""


def _all_subclasses(cls: type[InfrakitError]) -> list[type[InfrakitError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


BY_KIND: dict[str, type[InfrakitError]] = {c.kind: c for c in _all_subclasses(InfrakitError)}
"""The table a client rebuilds remote errors from."""


_BY_CODE: dict[int, type[InfrakitError]] = {
    METHOD_NOT_FOUND: MethodNotFound,
    INVALID_PARAMS: InvalidError,
    PARSE_ERROR: ParseError,
    INVALID_REQUEST: ProtocolError,
}
"""The class for a peer that sent a code but no ``data.kind`` we know (v0.5 peers)."""


GO_SERVER_ERROR = -32000
"""The one code InfraKit v0.5's JSON-RPC server (gorilla/rpc) answers every failure with."""
_GO_UNKNOWN = ("rpc: can't find method ", "rpc: can't find service ")
"""How gorilla/rpc says it has no such method: the only way to tell from a v0.5 peer."""


def from_wire(code: int, message: str, data: Any) -> InfrakitError:
    """Rebuild an error received over JSON-RPC: by ``data.kind``, else by code.

    Never raises: the peer's ``data`` may be anything (a v0.5 peer, another language, a bug),
    so it is kept as it came in ``.data`` and only a ``kind`` and ``delay`` we understand
    are read from it.
    """
    kind = data.get("kind") if isinstance(data, dict) else None
    cls = BY_KIND.get(kind) if isinstance(kind, str) else None
    if cls is None and code == GO_SERVER_ERROR and message.startswith(_GO_UNKNOWN):
        cls = MethodNotFound  # v0.5's gorilla/rpc has no code of its own for it
    if cls is None:
        cls = _BY_CODE.get(code, RemoteError)
    text = message or f"{cls.kind} error from the peer (code {code}, no message)"
    read = {"kind"}
    if issubclass(cls, TemporaryError):
        error: InfrakitError = cls(text, delay=_delay(data))
        read.add("delay")  # kept as understood, not as sent
    else:
        error = cls(text)
    if isinstance(data, dict):
        # Set, not passed as keywords: the peer's keys may clash with our parameters.
        error.data.update((key, value) for key, value in data.items() if key not in read)
    elif data is not None:
        error.data["data"] = data
    return error


def _delay(data: Any) -> float:
    """A usable retry delay from a peer's ``data.delay``, else the default of 1 s."""
    delay = data.get("delay") if isinstance(data, dict) else None
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        return 1.0
    return float(delay) if math.isfinite(delay) and delay >= 0 else 1.0
