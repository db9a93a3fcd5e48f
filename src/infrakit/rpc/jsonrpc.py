"""JSON-RPC 2.0 envelopes, pure: parse a request body, build result and error objects.

The server (``rpc.server``) and both clients use these; nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pydantic

from infrakit import errors
from infrakit.spi.wire import Wire

VERSION = "2.0"


@dataclasses.dataclass(frozen=True)
class Request:
    """One parsed call. ``id`` is ``None`` for a notification (no answer is owed)."""

    method: str
    params: dict[str, Any]
    id: int | str | None
    notification: bool = False


def parse_request(body: bytes) -> Request:
    """Parse and check one request body; raise ``ProtocolError`` with the right code."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.ParseError(f"parse error: {exc}") from None
    except RecursionError:
        # json recurses once per level: a body of a million "[" must not become a 500.
        raise errors.ParseError("parse error: JSON nested too deeply") from None
    if not isinstance(message, dict):
        raise errors.ProtocolError("invalid request: expected a JSON object")
    if message.get("jsonrpc") != VERSION:
        raise errors.ProtocolError('invalid request: "jsonrpc" must be "2.0"')
    method = message.get("method")
    if not isinstance(method, str) or not method:
        raise errors.ProtocolError('invalid request: "method" must be a non-empty string')
    request_id = message.get("id")
    if request_id is not None and (
        isinstance(request_id, bool) or not isinstance(request_id, int | str)
    ):
        raise errors.ProtocolError('invalid request: "id" must be a number or a string')
    params = message.get("params", {})
    if params is None:
        params = {}
    if isinstance(params, list) and len(params) == 1 and isinstance(params[0], dict):
        # Go's net/rpc JSON codec wraps the one argument in a list; accept that form too.
        params = params[0]
    if not isinstance(params, dict):
        raise errors.InvalidError('invalid params: "params" must be one JSON object')
    return Request(method=method, params=params, id=request_id,
                   notification="id" not in message)


def request(method: str, params: dict[str, Any], request_id: int | str) -> dict[str, Any]:
    """The request envelope a client sends."""
    return {"jsonrpc": VERSION, "method": method, "params": params, "id": request_id}


def result(request_id: int | str | None, value: Any) -> dict[str, Any]:
    """A success envelope."""
    return {"jsonrpc": VERSION, "result": value, "id": request_id}


def encode_result(request_id: int | str | None, value: Any) -> bytes:
    """A success envelope as bytes; a wire model is encoded by pydantic's fast path."""
    if isinstance(value, Wire):
        body = value.model_dump_json(by_alias=True).encode()
        return b'{"jsonrpc":"2.0","result":%s,"id":%s}' % (body, json.dumps(request_id).encode())
    return json.dumps(result(request_id, value)).encode()


def error(request_id: int | str | None, exc: errors.InfrakitError) -> dict[str, Any]:
    """An error envelope: standard code, message, and our machine-readable ``data``."""
    body = {"code": exc.code, "message": exc.message, "data": exc.to_data()}
    return {"jsonrpc": VERSION, "error": body, "id": request_id}


def describe_validation(exc: pydantic.ValidationError, *, where: str) -> str:
    """One line naming every bad field: ``Spec.Tags.a: Input should be a valid string``."""
    problems = []
    for item in exc.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        problems.append(f"{path}: {item['msg']}")
    return f"{where}: " + "; ".join(problems)


def unwrap_response(message: Any) -> Any:
    """The ``result`` of a response envelope, or the remote error rebuilt from the table."""
    if not isinstance(message, dict) or ("result" not in message and "error" not in message):
        raise errors.ProtocolError(f"malformed JSON-RPC response: {str(message)[:200]}")
    failure = message.get("error")
    if failure is not None:
        if not isinstance(failure, dict):
            raise errors.RemoteError(str(failure))
        code = failure.get("code", errors.SERVER_ERROR)
        return_code = code if isinstance(code, int) else errors.SERVER_ERROR
        raise errors.from_wire(return_code, str(failure.get("message", "")), failure.get("data"))
    return message.get("result")
