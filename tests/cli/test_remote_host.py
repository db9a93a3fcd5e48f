"""``infrakit --host URL``: the CLI drives a plugin on another "host" over mutual TLS.

A real ``instance-file`` process listens on its own plugins dir and on 127.0.0.1:<free
port> with a certificate from ``infrakit.pki``; the CLI runs with an empty plugins dir of
its own, so every answer it gets came over TCP. Refusals (an expired certificate, one from
another CA, plain http) end in one line naming the URL and the cause, with their exit code,
and the plugin logs why.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from click.testing import Result

from infrakit import pki, testing, testing_stack
from infrakit.rpc import sync, tls

Cli = Callable[..., Result]


class Remote:
    """The plugin process, its URL and its log."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.pki = root / "pki"
        self.port = testing.free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = root / "plugin.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(self.root / "far")}
        with open(self.log, "wb") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-c", testing_stack.INSTANCE_FILE_ON_TCP, "--dir",
                 str(self.root / "state"), "--listen", f"127.0.0.1:{self.port}",
                 "--tls-dir", str(self.pki / "plugin")],
                stdout=out, stderr=subprocess.STDOUT, env=env)
        settings = tls.Settings(files=tls.Files.in_dir(self.pki / "client", origin="test"))
        testing.wait_for(lambda: sync.Client(f"{self.url}/instance-file", timeout=1.0,
                                             settings=settings).implements(),
                         what="instance-file answering over TLS", timeout=30)

    def logged(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def remote(tmp_path: pathlib.Path, plugins_dir: pathlib.Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    """The plugin on TCP; the CLI's own plugins dir (``plugins_dir``) stays empty."""
    far = Remote(tmp_path)
    pki.init(far.pki)
    pki.issue(far.pki, "plugin", usage="server")
    pki.issue(far.pki, "client", usage="client")
    for name in ("INFRAKIT_HOST", "INFRAKIT_TLS_DIR", "INFRAKIT_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    try:
        far.start()
        yield far
    finally:
        if far.popen is not None:
            testing.stop_processes([far.popen])
        tls.use(None)


def spec_file(root: pathlib.Path) -> str:
    path = root / "spec.json"
    path.write_text(json.dumps({"Properties": {"Note": "far"}, "Tags": {"tier": "web"}}))
    return str(path)


def test_the_cli_provisions_and_describes_through_host(cli: Cli, remote: Remote,
                                                       plugins_dir: pathlib.Path) -> None:
    assert list(plugins_dir.iterdir()) == []
    flags = ["--host", remote.url, "--tls-dir", str(remote.pki / "client")]
    made = cli(*flags, "instance", "--name", "instance-file", "provision",
               spec_file(remote.root))
    assert made.exit_code == 0, made.output
    new_id = made.output.strip()
    listed = cli(*flags, "instance", "--name", "instance-file", "describe", "-q")
    assert listed.exit_code == 0, listed.output
    assert listed.output.split()[0] == new_id
    # The original's dynamic form, with the host and certificate from the environment.
    env = {**os.environ, "INFRAKIT_HOST": remote.url,
           "INFRAKIT_TLS_DIR": str(remote.pki / "client")}
    shell = subprocess.run([sys.executable, "-m", "infrakit.cli.main", "instance-file",
                            "describe", "-q"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.split()[0] == new_id


def test_an_expired_client_certificate_is_refused_on_both_sides(cli: Cli,
                                                                remote: Remote) -> None:
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
    pki.issue(remote.pki, "old", usage="client", not_before=past,
              not_after=past + datetime.timedelta(days=1))
    result = cli("--host", remote.url, "--tls-dir", str(remote.pki / "old"),
                 "instance", "--name", "instance-file", "describe")
    assert result.exit_code == 6
    assert result.stderr == (f"infrakit: instance-file: cannot reach plugin at {remote.url}/"
                             "instance-file: TLS: the peer refused our certificate: it has "
                             "expired\n")
    testing.wait_for(lambda: "certificate verify failed: certificate has expired"
                     in remote.logged(), what="the plugin's log line", timeout=10)


def test_a_certificate_from_another_ca_is_refused_on_both_sides(
        cli: Cli, remote: Remote, tmp_path: pathlib.Path) -> None:
    pki.init(tmp_path / "other")
    pki.issue(tmp_path / "other", "client", usage="client")
    result = cli("--host", remote.url, "--tls-dir", str(tmp_path / "other" / "client"),
                 "instance", "--name", "instance-file", "describe")
    assert result.exit_code == 6
    assert result.stderr.startswith(f"infrakit: instance-file: cannot reach plugin at "
                                    f"{remote.url}/instance-file: TLS: certificate verify "
                                    "failed: ")
    testing.wait_for(lambda: "TLS handshake with 127.0.0.1:" in remote.logged(),
                     what="the plugin's log line", timeout=10)


def test_plain_http_needs_insecure_and_is_then_told_to_use_https(cli: Cli,
                                                                 remote: Remote) -> None:
    plain = remote.url.replace("https://", "http://")
    refused = cli("--host", plain, "instance", "--name", "instance-file", "describe")
    assert refused.exit_code == 2
    assert "plain http:// is refused without --insecure" in refused.stderr
    answered = cli("--host", plain, "--insecure", "instance", "--name", "instance-file",
                   "describe")
    assert answered.exit_code == 5
    assert "this port speaks mutual TLS: use https://" in answered.stderr
    testing.wait_for(lambda: "sent plain HTTP to the TLS port" in remote.logged(),
                     what="the plugin's log line", timeout=10)


def test_a_bad_host_url_is_a_usage_error(cli: Cli) -> None:
    result = cli("--host", "https://127.0.0.1", "group", "ls")
    assert result.exit_code == 2
    assert "expected https://HOST:PORT" in result.stderr
