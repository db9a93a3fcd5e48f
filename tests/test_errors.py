"""A peer's error, whatever shape its ``data`` takes, comes back as one of our error types."""

from __future__ import annotations

import math
from typing import Any

import pytest

from infrakit import errors
from infrakit.rpc import jsonrpc

ODD_DATA: list[Any] = [
    None,
    "a string",
    "",
    42,
    3.5,
    True,
    [],
    [1, "two", {"three": 3}],
    {},
    {"message": "the peer's own message field"},
    {"kind": "invalid", "message": "clashes with the message argument"},
    {"kind": "not_found", "message": None, "type": "x"},
    {"kind": "temporary", "message": "m", "delay": 2},
    {"kind": "unavailable", "delay": "soon"},
    {"kind": "timeout", "delay": -5},
    {"kind": "timeout", "delay": math.nan},
    {"kind": "timeout", "delay": math.inf},
    {"kind": "temporary", "delay": None, "plugin": "p"},
    {"kind": ["not", "hashable"]},
    {"kind": {"also": "unhashable"}},
    {"kind": 7},
    {"kind": None},
    {"kind": "no_such_kind", "message": "x"},
    {"kind": "error", "data": {"nested": True}},
    {"code": 1, "kind": "conflict", "pid": "12"},
    {"self": 1, "cls": 2, "args": 3, "kwargs": 4},
    {"": "empty key", "with space": 1, "ünïcödé": 2},
]


@pytest.mark.parametrize("data", ODD_DATA, ids=repr)
@pytest.mark.parametrize("code", [errors.SERVER_ERROR, errors.INVALID_PARAMS,
                                  errors.METHOD_NOT_FOUND, errors.PARSE_ERROR, 12345])
def test_any_peer_data_rebuilds_an_error_with_the_peer_message(code: int, data: Any) -> None:
    rebuilt = errors.from_wire(code, "it went wrong", data)
    assert isinstance(rebuilt, errors.InfrakitError)
    assert rebuilt.message == "it went wrong"
    assert str(rebuilt) == "it went wrong"


@pytest.mark.parametrize("data", ODD_DATA, ids=repr)
def test_an_empty_message_is_replaced_by_one_naming_the_code(data: Any) -> None:
    rebuilt = errors.from_wire(-32000, "", data)
    assert "-32000" in rebuilt.message


@pytest.mark.parametrize(("data", "expected"), [
    ({"kind": "temporary", "delay": 2}, 2.0),
    ({"kind": "unavailable", "delay": 0.5}, 0.5),
    ({"kind": "timeout", "delay": "soon"}, 1.0),
    ({"kind": "timeout", "delay": -5}, 1.0),
    ({"kind": "timeout", "delay": math.nan}, 1.0),
    ({"kind": "timeout", "delay": math.inf}, 1.0),
    ({"kind": "timeout", "delay": True}, 1.0),
    ({"kind": "timeout"}, 1.0),
])
def test_a_temporary_error_keeps_a_usable_delay(data: dict[str, Any], expected: float) -> None:
    rebuilt = errors.from_wire(errors.SERVER_ERROR, "busy", data)
    assert isinstance(rebuilt, errors.TemporaryError)
    assert rebuilt.delay == expected
    assert rebuilt.to_data()["delay"] == expected  # passed on as understood


@pytest.mark.parametrize(("code", "data", "expected"), [
    (errors.SERVER_ERROR, {"kind": "invalid", "message": "x"}, errors.InvalidError),
    (errors.SERVER_ERROR, {"kind": "not_found", "type": "t"}, errors.NotFoundError),
    (errors.SERVER_ERROR, {"kind": ["x"]}, errors.RemoteError),
    (errors.SERVER_ERROR, None, errors.RemoteError),
    (errors.METHOD_NOT_FOUND, {"kind": 7}, errors.MethodNotFound),
    (errors.INVALID_PARAMS, "text", errors.InvalidError),
    (errors.PARSE_ERROR, [], errors.ParseError),
])
def test_the_class_comes_from_kind_else_from_code(code: int, data: Any,
                                                   expected: type[errors.InfrakitError]) -> None:
    assert type(errors.from_wire(code, "m", data)) is expected


def test_the_peer_data_is_kept_for_callers_without_its_kind() -> None:
    rebuilt = errors.from_wire(errors.SERVER_ERROR, "m",
                               {"kind": "not_found", "message": "other", "type": "t"})
    assert rebuilt.data == {"message": "other", "type": "t"}
    assert rebuilt.to_data() == {"kind": "not_found", "message": "other", "type": "t"}


@pytest.mark.parametrize("failure", [
    {"code": -32000, "message": "m", "data": {"message": "x"}},
    {"code": "not a number", "message": "m", "data": {"kind": "invalid", "message": 1}},
    {"code": -32000, "message": {"not": "a string"}, "data": None},
    {"code": None, "message": None, "data": ["x"]},
    {"message": "only a message"},
    {},
])
def test_odd_error_envelopes_raise_our_errors(failure: dict[str, Any]) -> None:
    with pytest.raises(errors.InfrakitError) as caught:
        jsonrpc.unwrap_response({"jsonrpc": "2.0", "error": failure, "id": 1})
    assert caught.value.message
