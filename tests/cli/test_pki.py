"""``infrakit pki init|issue``: a CA and certificates that mutual TLS accepts.

Real files and real certificates (``cryptography``), checked for modes, names, usages and
validity; the CLI runs in-process.
"""

from __future__ import annotations

import datetime
import ipaddress
import pathlib
import stat
from collections.abc import Callable

import pytest
from click.testing import Result
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from infrakit import errors, pki

Cli = Callable[..., Result]


def load(path: pathlib.Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_a_ca_whose_key_only_its_owner_reads(cli: Cli, tmp_path: pathlib.Path) -> None:
    result = cli("pki", "init", "--dir", str(tmp_path / "pki"))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"CA created: {tmp_path / 'pki' / 'ca.crt'} (key ")
    assert mode(tmp_path / "pki" / "ca.key") == 0o600
    assert mode(tmp_path / "pki") == 0o700
    ca = load(tmp_path / "pki" / "ca.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "PRIVATE KEY" not in result.output


def test_issue_signs_a_certificate_with_names_and_both_usages(
        cli: Cli, tmp_path: pathlib.Path) -> None:
    root = tmp_path / "pki"
    assert cli("pki", "init", "--dir", str(root)).exit_code == 0
    result = cli("pki", "issue", "--dir", str(root), "mgr-1", "--ip", "127.0.0.1",
                 "--ip", "::1", "--dns", "mgr-1.example", "--days", "30")
    assert result.exit_code == 0, result.output
    assert f"Use it with --tls-dir {root / 'mgr-1'}" in result.output
    cert = load(root / "mgr-1" / "tls.crt")
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert names.get_values_for_type(x509.DNSName) == ["mgr-1.example"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=30) <= lifetime <= datetime.timedelta(days=30, minutes=2)
    ca = load(root / "ca.crt")
    cert.verify_directly_issued_by(ca)
    assert (root / "mgr-1" / "ca.crt").read_bytes() == (root / "ca.crt").read_bytes()
    assert mode(root / "mgr-1" / "tls.key") == 0o600


@pytest.mark.parametrize(("flag", "usages"), [
    ("--client", [ExtendedKeyUsageOID.CLIENT_AUTH]),
    ("--server", [ExtendedKeyUsageOID.SERVER_AUTH]),
])
def test_issue_can_limit_the_usage(cli: Cli, tmp_path: pathlib.Path, flag: str,
                                   usages: list[x509.ObjectIdentifier]) -> None:
    assert cli("pki", "init", "--dir", str(tmp_path)).exit_code == 0
    assert cli("pki", "issue", "--dir", str(tmp_path), "x", flag).exit_code == 0
    cert = load(tmp_path / "x" / "tls.crt")
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == usages


def test_a_server_certificate_without_names_is_for_loopback(tmp_path: pathlib.Path) -> None:
    pki.init(tmp_path)
    made = pki.issue(tmp_path, "local")
    assert made.names == ("IP:127.0.0.1", "IP:::1", "DNS:localhost")


@pytest.mark.parametrize("args", [("init",), ("issue", "p")])
def test_nothing_is_overwritten_without_force(cli: Cli, tmp_path: pathlib.Path,
                                              args: tuple[str, ...]) -> None:
    assert cli("pki", "init", "--dir", str(tmp_path)).exit_code == 0
    assert cli("pki", "issue", "--dir", str(tmp_path), "p").exit_code == 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    refused = cli("pki", args[0], "--dir", str(tmp_path), *args[1:])
    assert refused.exit_code == errors.ConflictError.exit_code
    assert "refusing to replace" in refused.stderr and "--force" in refused.stderr
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    forced = cli("pki", args[0], "--dir", str(tmp_path), *args[1:], "--force")
    assert forced.exit_code == 0, forced.output


@pytest.mark.parametrize(("args", "says"), [
    (("issue", "p"), "no CA in"),
    (("issue", "p", "--ip", "not-an-ip"), "--ip 'not-an-ip': expected an IPv4 or IPv6"),
    (("issue", "a/b"), "NAME 'a/b': expected a non-empty file name"),
    (("init", "--days", "0"), "--days"),
])
def test_bad_input_is_one_line_naming_the_field(cli: Cli, tmp_path: pathlib.Path,
                                                args: tuple[str, ...], says: str) -> None:
    if args[0] == "issue" and args[1:] != ("p",):
        pki.init(tmp_path)
    result = cli("pki", args[0], "--dir", str(tmp_path), *args[1:])
    assert result.exit_code == 2
    assert says in result.stderr


def test_the_default_dir_follows_the_environment(cli: Cli, tmp_path: pathlib.Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFRAKIT_PKI_DIR", str(tmp_path / "env-pki"))
    assert cli("pki", "init").exit_code == 0
    assert cli("pki", "issue", "client", "--client").exit_code == 0
    assert (tmp_path / "env-pki" / "client" / "tls.crt").is_file()
    monkeypatch.delenv("INFRAKIT_PKI_DIR")
    monkeypatch.setenv("INFRAKIT_HOME", str(tmp_path / "home"))
    assert pki.default_dir() == tmp_path / "home" / "pki"
