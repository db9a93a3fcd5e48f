"""Malformed requests each get the JSON-RPC error they deserve, and the server lives on."""

from __future__ import annotations

import json
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from rpc_helpers import HYGIENE, http_post, raw

from infrakit import errors
from infrakit.rpc import server
from infrakit.spi import instance

pytestmark = HYGIENE


class Touchy:
    """Validate fails on demand, in the two ways an implementation can fail."""

    def __init__(self) -> None:
        self.calls = 0

    def validate(self, properties: Any) -> None:
        self.calls += 1
        if properties == "bad":
            raise errors.InvalidError("Properties: expected an object")
        if properties == "boom":
            raise RuntimeError("disk on fire")

    def provision(self, spec: instance.Spec) -> instance.ID:
        return instance.ID("instance-1")

    def label(self, inst: instance.ID, labels: dict[str, str]) -> None: ...

    def destroy(self, inst: instance.ID) -> None:
        raise errors.NotFoundError(f"instance {inst!r} not found")

    def describe_instances(self, tags: dict[str, str],
                           properties: bool = False) -> list[instance.Description]:
        return []


@pytest.fixture
async def touchy(plugins_dir: pathlib.Path) -> AsyncIterator[tuple[pathlib.Path, Touchy]]:
    plugin = Touchy()
    async with server.Server("touchy", instance=plugin, plugins_dir=plugins_dir,
                             max_body=64 * 1024) as running:
        assert running.path is not None
        yield running.path, plugin


def call(method: Any, params: Any = None, *, request_id: Any = 1, **extra: Any) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id, **extra}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode()


def body_of(answer: bytes) -> dict[str, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        body = _unchunk(body)
    decoded: dict[str, Any] = json.loads(body)
    return decoded


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


PROVISION = "Instance.Provision"

# (case id, raw body, expected code, words the message must contain)
CASES: list[tuple[str, bytes, int, str]] = [
    ("not-json", b"hello", -32700, "parse error"),
    ("deeply-nested-array", b"[" * 60_000, -32700, "nested too deeply"),
    ("deeply-nested-object", b'{"a":' * 12_000, -32700, "nested too deeply"),
    ("deep-but-closed", b"[" * 5_000 + b"]" * 5_000, -32700, "nested too deeply"),
    ("deep-inside-params",
     b'{"jsonrpc":"2.0","method":"Instance.Validate","id":1,"params":{"Properties":'
     + b"[" * 20_000 + b"]" * 20_000 + b"}}", -32700, "nested too deeply"),
    ("truncated-json", b'{"jsonrpc":"2.0","method":', -32700, "parse error"),
    ("empty-body", b"", -32700, "parse error"),
    ("invalid-utf8", b'{"jsonrpc":"2.0","method":"\xff"}', -32700, "parse error"),
    ("array-batch", b"[]", -32600, "expected a JSON object"),
    ("json-string", b'"Instance.Provision"', -32600, "expected a JSON object"),
    ("no-jsonrpc", json.dumps({"method": "X.Y", "id": 1}).encode(), -32600, '"jsonrpc"'),
    ("jsonrpc-1.0", json.dumps({"jsonrpc": "1.0", "method": "X.Y", "id": 1}).encode(),
     -32600, '"jsonrpc" must be "2.0"'),
    ("no-method", json.dumps({"jsonrpc": "2.0", "id": 1}).encode(), -32600, '"method"'),
    ("method-number", call(7), -32600, '"method" must be a non-empty string'),
    ("id-object", call("Instance.Validate", {}, request_id={"a": 1}), -32600, '"id"'),
    ("id-bool", call("Instance.Validate", {}, request_id=True), -32600, '"id"'),
    ("params-string", call("Instance.Validate", "x"), -32602, "one JSON object"),
    ("params-list-of-numbers", call("Instance.Validate", [1, 2]), -32602, "one JSON object"),
    ("unknown-method", call("Nope.Nothing", {}), -32601, 'rpc: can\'t find method "Nope.Nothing"'),
    ("unknown-verb", call("Instance.Reboot", {}), -32601, '"Instance.Reboot"'),
    ("other-interface", call("Flavor.Validate", {}), -32601, '"Flavor.Validate"'),
    ("missing-spec", call(PROVISION, {"Type": ""}), -32602, "Spec: Field required"),
    ("spec-not-object", call(PROVISION, {"Spec": []}), -32602, "Spec:"),
    ("tags-not-object", call(PROVISION, {"Spec": {"Tags": "a=b"}}), -32602, "Spec.Tags:"),
    ("tag-value-number", call(PROVISION, {"Spec": {"Tags": {"a": 1}}}), -32602, "Spec.Tags.a:"),
    ("init-not-string", call(PROVISION, {"Spec": {"Init": ["x"]}}), -32602, "Spec.Init:"),
    ("attachment-no-id", call(PROVISION, {"Spec": {"Attachments": [{"Type": "t"}]}}),
     -32602, "Spec.Attachments.0.ID"),
    ("type-number", call(PROVISION, {"Type": 3, "Spec": {}}), -32602, "Type:"),
    ("describe-tags-string", call("Instance.DescribeInstances", {"Tags": "x"}), -32602, "Tags:"),
    ("describe-properties-list", call("Instance.DescribeInstances", {"Properties": [1]}),
     -32602, "Properties:"),
    ("destroy-no-instance", call("Instance.Destroy", {}), -32602, "Instance: Field required"),
    ("label-labels-list", call("Instance.Label", {"Instance": "i", "Labels": ["a"]}),
     -32602, "Labels:"),
    ("unknown-type", call("Instance.Validate", {"Type": "west"}), -32000,
     "no Instance object of type 'west'"),
    ("destroy-unknown-instance", call("Instance.Destroy", {"Instance": "i-9"}), -32000,
     "not found"),
    ("implementation-invalid", call("Instance.Validate", {"Properties": "bad"}), -32602,
     "Properties: expected an object"),
    ("implementation-crash", call("Instance.Validate", {"Properties": "boom"}), -32000,
     "disk on fire"),
]


@pytest.mark.parametrize(("body", "code", "words"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
async def test_bad_request_gets_its_error_and_server_lives_on(
    touchy: tuple[pathlib.Path, Touchy], body: bytes, code: int, words: str
) -> None:
    path, _ = touchy
    answer = body_of(await raw(path, http_post(body)))
    assert answer["error"]["code"] == code
    assert words in answer["error"]["message"]
    assert answer["jsonrpc"] == "2.0"
    healthy = body_of(await raw(path, http_post(call("Instance.Validate", {}))))
    assert healthy["result"] == {"Type": "", "OK": True}


@pytest.mark.parametrize(("kind", "body"), [
    ("invalid", call("Instance.Validate", {"Properties": "bad"})),
    ("not_found", call("Instance.Destroy", {"Instance": "i-9"})),
    ("remote", call("Instance.Validate", {"Properties": "boom"})),
    ("method_not_found", call("Nope.Nothing", {})),
])
async def test_our_errors_carry_a_machine_readable_kind(
    touchy: tuple[pathlib.Path, Touchy], kind: str, body: bytes
) -> None:
    path, _ = touchy
    assert body_of(await raw(path, http_post(body)))["error"]["data"]["kind"] == kind


async def test_oversized_body_is_refused_with_an_error(
    touchy: tuple[pathlib.Path, Touchy]
) -> None:
    path, _ = touchy
    huge = call("Instance.Validate", {"Properties": "x" * 200_000})
    answer = await raw(path, http_post(huge))
    assert answer.startswith(b"HTTP/1.1 413")
    error = body_of(answer)["error"]
    assert error["code"] == -32600 and "exceeds the limit of 65536 bytes" in error["message"]


async def test_get_is_refused_with_method_not_allowed(
    touchy: tuple[pathlib.Path, Touchy]
) -> None:
    path, _ = touchy
    answer = await raw(path, b"GET / HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 405")
    assert "use POST" in body_of(answer)["error"]["message"]


async def test_notification_runs_and_gets_an_empty_answer(
    touchy: tuple[pathlib.Path, Touchy]
) -> None:
    path, plugin = touchy
    message = json.dumps({"jsonrpc": "2.0", "method": "Instance.Validate", "params": {}})
    answer = await raw(path, http_post(message.encode()))
    assert answer.startswith(b"HTTP/1.1 204")
    assert plugin.calls == 1


@pytest.mark.parametrize("request_id", [18446744073709551615, 0, "abc-1", ""])
async def test_ids_are_echoed_exactly(touchy: tuple[pathlib.Path, Touchy],
                                      request_id: Any) -> None:
    path, _ = touchy
    answer = await raw(path, http_post(call("Instance.Validate", {}, request_id=request_id)))
    assert body_of(answer)["id"] == request_id


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "text/plain"])
async def test_content_type_variants_are_accepted(touchy: tuple[pathlib.Path, Touchy],
                                                  content_type: str) -> None:
    path, _ = touchy
    answer = await raw(path, http_post(call("Instance.Validate", {}), content_type=content_type))
    assert body_of(answer)["result"]["OK"] is True


async def test_go_style_params_list_is_accepted(touchy: tuple[pathlib.Path, Touchy]) -> None:
    path, _ = touchy
    answer = await raw(path, http_post(call("Instance.Validate", [{"Type": ""}])))
    assert body_of(answer)["result"]["OK"] is True


@pytest.mark.parametrize("garbage", [
    http_post(call("Instance.Validate", {}))[:60],            # disconnect inside the headers
    http_post(call("Instance.Validate", {"Properties": "x" * 900}))[:-800],  # inside the body
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",            # a TLS hello
    b"NONSENSE / HTTP/9.9\r\n\r\n",
])
async def test_abrupt_or_garbage_connections_do_not_wedge_the_server(
    touchy: tuple[pathlib.Path, Touchy], garbage: bytes
) -> None:
    path, _ = touchy
    await raw(path, garbage, read=False)
    answer = body_of(await raw(path, http_post(call("Instance.Validate", {}))))
    assert answer["result"]["OK"] is True


async def test_a_very_deep_body_gets_a_complete_parse_error_answer(
    served: server.Server,
) -> None:
    assert served.path is not None
    answer = await raw(served.path, http_post(b"[" * 100_000))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert f"Content-Length: {len(body)}".encode() in head
    error = json.loads(body)["error"]
    assert error["code"] == errors.PARSE_ERROR and error["data"]["kind"] == "parse_error"
