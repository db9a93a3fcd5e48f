"""Plugins on TCP with mutual TLS: round trips, and every refusal said clearly on both sides.

A real server (in-process) on 127.0.0.1 with a free port, real certificates from
``infrakit.pki``, the async client (pool) and the blocking client (CLI) as callers. Each
refusal checks the client's error and the server's log line, then that the server still
serves a good client.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import pathlib
import socket
import ssl
from collections.abc import AsyncIterator, Callable

import pytest
from memory_plugin import Memory
from rpc_helpers import HYGIENE

from infrakit import errors, pki
from infrakit.rpc import client, discovery, listening, server, sync, tls
from infrakit.spi import instance
from infrakit.testing import free_port

pytestmark = HYGIENE

SERVER_LOG = "infrakit.rpc.tcpserver"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Two CAs: ``ca`` (ours) and ``other``; each has ``srv`` and ``cli``; ``ca`` also has
    ``old``, a certificate that expired yesterday."""
    root = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other"):
        pki.init(root / ca)
        pki.issue(root / ca, "srv", usage="server")
        pki.issue(root / ca, "cli", usage="client")
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
    pki.issue(root / "ca", "old", usage="client", not_before=past,
              not_after=past + datetime.timedelta(days=1))
    return root


def files(directory: pathlib.Path, *, ca: pathlib.Path | None = None) -> tls.Files:
    found = tls.Files.in_dir(directory, origin=str(directory))
    return found if ca is None else tls.Files(found.cert, found.key, ca, origin=found.origin)


@pytest.fixture
async def plugin(plugins_dir: pathlib.Path, authority: pathlib.Path
                 ) -> AsyncIterator[server.Server]:
    """``mem`` on its unix socket and on 127.0.0.1:<free port> with mutual TLS."""
    spec = listening.Listen("127.0.0.1", free_port(), files(authority / "ca" / "srv"))
    east = Memory()
    async with server.Server("mem", instance={"": Memory(), "east": east},
                             plugins_dir=plugins_dir, listen=spec) as running:
        yield running


def good(authority: pathlib.Path) -> tls.Settings:
    return tls.Settings(files=files(authority / "ca" / "cli"))


async def still_serves(url: str, authority: pathlib.Path) -> None:
    """The listener survived whatever came before: a good client is answered."""
    caller = client.Client(url, settings=good(authority))
    try:
        assert [api.name for api in await caller.implements()] == ["Instance"]
    finally:
        await caller.close()


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == SERVER_LOG and r.levelno == logging.WARNING and text in r.getMessage()]


async def test_calls_round_trip_over_mutual_tls_by_url_with_types(
        plugin: server.Server, plugins_dir: pathlib.Path, authority: pathlib.Path) -> None:
    tls.use(good(authority))
    found = discovery.Plugins(plugins_dir)
    try:
        url = f"{plugin.url}/mem"
        spec = instance.Spec(properties={"Note": "tls"}, tags={"tier": "web"})
        made = await found.instance(url).provision(spec)
        east = await found.instance(f"{url}/east").provision(spec)
        assert [d.id for d in await found.instance(url).describe_instances({"tier": "web"})] \
            == [made]
        assert [d.id for d in await found.instance(f"{url}/east").describe_instances({})] \
            == [east]
        # The unix socket keeps working beside the listener.
        assert [d.id for d in await found.instance("mem").describe_instances({})] == [made]
    finally:
        tls.use(None)
        await found.close()


async def test_the_blocking_client_round_trips_over_mutual_tls(
        plugin: server.Server, authority: pathlib.Path) -> None:
    caller = sync.Client(f"{plugin.url}/mem/east", settings=good(authority))
    answer = await asyncio.to_thread(caller.call, "Instance.DescribeInstances",
                                     {"Type": "east", "Tags": {}})
    assert answer == {"Type": "east", "Descriptions": []}


Refused = Callable[[pathlib.Path], tls.Settings]

REFUSALS: list[tuple[str, Refused, str, str]] = [
    ("client cert from another CA",
     lambda root: tls.Settings(files=files(root / "other" / "cli", ca=root / "ca" / "ca.crt")),
     "TLS: the peer refused our certificate: it is not signed by the CA the peer trusts",
     "certificate verify failed: unable to get local issuer certificate (signed by a CA we "
     "do not trust)"),
    ("expired client cert",
     lambda root: tls.Settings(files=files(root / "ca" / "old")),
     "TLS: the peer refused our certificate: it has expired",
     "certificate verify failed: certificate has expired"),
    ("server cert from a CA the client does not trust",
     lambda root: tls.Settings(files=files(root / "other" / "cli")),
     "TLS: certificate verify failed: self-signed certificate in certificate chain (signed "
     "by a CA we do not trust)",
     "the client hung up during the handshake (did it refuse our certificate"),
]


@pytest.mark.parametrize(("case", "settings", "client_says", "server_says"), REFUSALS,
                         ids=[case for case, *_ in REFUSALS])
@pytest.mark.parametrize("blocking", [False, True], ids=["async", "blocking"])
async def test_a_refused_certificate_is_one_clear_line_on_both_sides(
        plugin: server.Server, authority: pathlib.Path, caplog: pytest.LogCaptureFixture,
        case: str, settings: Refused, client_says: str, server_says: str,
        blocking: bool) -> None:
    url = f"{plugin.url}/mem"
    chosen = settings(authority)
    with caplog.at_level(logging.WARNING, logger=SERVER_LOG):
        with pytest.raises(errors.Unavailable) as refused:
            if blocking:
                await asyncio.to_thread(sync.Client(url, settings=chosen).implements)
            else:
                caller = client.Client(url, settings=chosen)
                try:
                    await caller.implements()
                finally:
                    await caller.close()
        assert refused.value.message == f"mem: cannot reach plugin at {url}: {client_says}"
        assert refused.value.exit_code == 6
        if blocking and case.startswith("server cert"):
            # A blocking client sends its alert: the server hears why.
            server_says = "the peer refused our certificate: it is not signed by the CA"
        await _until(lambda: logged(caplog, server_says))
    [line] = logged(caplog, "TLS handshake")
    assert line.startswith("plugin mem: TLS handshake with 127.0.0.1:")
    await still_serves(url, authority)


async def test_a_client_without_a_certificate_is_refused_and_told_why(
        plugin: server.Server, authority: pathlib.Path,
        caplog: pytest.LogCaptureFixture) -> None:
    assert plugin.url is not None
    port = int(plugin.url.rsplit(":", 1)[1])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(authority / "ca" / "ca.crt")

    def call() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as secured:
            secured.sendall(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
            return secured.recv(1000)

    with caplog.at_level(logging.WARNING, logger=SERVER_LOG):
        with pytest.raises(ssl.SSLError) as refused:
            await asyncio.to_thread(call)
        assert tls.explain(refused.value) == \
            "the peer requires a client certificate and none was sent"
        await _until(lambda: logged(caplog, "the client sent no certificate"))
    await still_serves(f"{plugin.url}/mem", authority)


async def test_plain_http_to_the_tls_port_is_answered_use_https(
        plugin: server.Server, authority: pathlib.Path,
        caplog: pytest.LogCaptureFixture) -> None:
    assert plugin.url is not None
    plain = plugin.url.replace("https://", "http://") + "/mem"
    with caplog.at_level(logging.WARNING, logger=SERVER_LOG):
        for caller in (sync.Client(plain, settings=tls.Settings(insecure=True)),
                       client.Client(plain, settings=tls.Settings(insecure=True))):
            with pytest.raises(errors.ProtocolError, match="this port speaks mutual TLS: use "
                                                           "https:// with a client certificate"):
                if isinstance(caller, sync.Client):
                    await asyncio.to_thread(caller.implements)
                else:
                    try:
                        await caller.implements()
                    finally:
                        await caller.close()
        await _until(lambda: len(logged(caplog, "sent plain HTTP to the TLS port")) == 2)
    await still_serves(f"{plugin.url}/mem", authority)


@pytest.mark.parametrize(("url", "settings", "says"), [
    ("http://127.0.0.1:1/mem", tls.Settings(),
     "http://127.0.0.1:1/mem: plain http:// is refused without --insecure"),
    ("https://127.0.0.1:1/mem", tls.Settings(),
     "https://127.0.0.1:1/mem: no client certificate for mutual TLS: give --tls-dir D"),
    ("https://127.0.0.1/mem", tls.Settings(), "host and port are needed"),
])
async def test_a_url_the_client_cannot_use_is_refused_before_connecting(
        url: str, settings: tls.Settings, says: str) -> None:
    with pytest.raises(errors.UsageError, match=says.replace("?", r"\?")):
        caller = client.Client(url, settings=settings)
        try:
            await caller.implements()
        finally:
            await caller.close()
    with pytest.raises(errors.UsageError, match=says):
        sync.Client(url, settings=settings).implements()


async def test_an_insecure_listener_warns_loudly_and_speaks_plain_http(
        plugins_dir: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = listening.Listen("127.0.0.1", free_port(), None)
    with caplog.at_level(logging.WARNING, logger=SERVER_LOG):
        async with server.Server("mem", instance=Memory(), plugins_dir=plugins_dir,
                                 listen=spec) as running:
            assert running.url == f"http://127.0.0.1:{spec.port}"
            caller = client.Client(f"{running.url}/mem", settings=tls.Settings(insecure=True))
            try:
                assert [api.name for api in await caller.implements()] == ["Instance"]
            finally:
                await caller.close()
    assert logged(caplog, "listens on PLAIN TCP at http://127.0.0.1:")


async def test_a_listener_whose_certificate_is_missing_does_not_start(
        plugins_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    spec = listening.Listen("127.0.0.1", free_port(), files(tmp_path / "nowhere"))
    with pytest.raises(errors.UsageError, match=r"TLS certificate .*nowhere/tls.crt .* is "
                                                r"missing"):
        async with server.Server("mem", instance=Memory(), plugins_dir=plugins_dir,
                                 listen=spec):
            pass
    assert not (plugins_dir / "mem").exists(), "the unix socket is cleaned up too"


@pytest.mark.parametrize(("argv", "says"), [
    (["--listen", "127.0.0.1:24864"],
     "--listen 127.0.0.1:24864 needs a certificate for mutual TLS: give --tls-dir D"),
    (["--listen", "127.0.0.1"], "--listen '127.0.0.1': expected HOST:PORT"),
    (["--listen", "127.0.0.1:1", "--tls-cert", "c"], "--tls-cert given without --tls-key, "
                                                     "--tls-ca"),
])
def test_listen_flags_that_cannot_work_stop_the_program_naming_the_flag(
        argv: list[str], says: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INFRAKIT_TLS_DIR", "INFRAKIT_TLS_CERT", "INFRAKIT_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    parser = argparse.ArgumentParser(prog="plugin")
    listening.add_flags(parser)
    try:
        with pytest.raises(SystemExit) as stopped:
            listening.configure(parser, parser.parse_args(argv))
    finally:
        tls.use(None)
        listening.use(None)
    assert stopped.value.code == 2
    assert says in capsys.readouterr().err


def test_listen_flags_configure_the_process(tmp_path: pathlib.Path) -> None:
    parser = argparse.ArgumentParser(prog="plugin")
    listening.add_flags(parser)
    try:
        chosen = listening.configure(parser, parser.parse_args(
            ["--listen", "[::1]:24864", "--tls-dir", str(tmp_path)]))
        assert chosen is not None and chosen.url == "https://[::1]:24864"
        assert listening.configured() == chosen
        assert tls.settings().files == tls.Files.in_dir(tmp_path, origin=f"--tls-dir {tmp_path}")
    finally:
        tls.use(None)
        listening.use(None)


async def _until(condition: Callable[[], object], *, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)
