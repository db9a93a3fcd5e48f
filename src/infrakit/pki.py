"""A small certificate authority for plugins that listen on TCP with mutual TLS.

``infrakit pki init|issue`` (:mod:`infrakit.cli.pki`) call :func:`init` and :func:`issue`;
tests call :func:`issue` with ``not_after`` in the past to get an expired certificate.
Layout of a pki dir ``D``::

    D/ca.crt  D/ca.key (0600)        the CA: stays on the machine that issues
    D/NAME/tls.crt  tls.key (0600)   NAME's certificate and key, signed by the CA
    D/NAME/ca.crt                    a copy of the CA certificate

so ``D/NAME`` is everything one process needs (``--tls-dir D/NAME``) and can be copied to
another host without the CA's key. Keys are ECDSA P-256; every certificate carries
ExtendedKeyUsage serverAuth and/or clientAuth. Keys are never logged or printed.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import pathlib
from collections.abc import Sequence
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from infrakit import errors

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
CERT = "tls.crt"
KEY = "tls.key"
CA_DAYS = 3650
"""Default validity of the CA, in days (ten years)."""
DAYS = 365
"""Default validity of an issued certificate, in days."""
DEFAULT_IPS = ("127.0.0.1", "::1")
DEFAULT_DNS = ("localhost",)
"""Subject alternative names of a server certificate issued without ``--ip``/``--dns``."""

Usage = Literal["client", "server", "both"]
USAGES: tuple[Usage, ...] = ("client", "server", "both")


@dataclasses.dataclass(frozen=True)
class Issued:
    """What :func:`init` or :func:`issue` wrote."""

    cert: pathlib.Path
    key: pathlib.Path
    not_after: datetime.datetime
    names: tuple[str, ...] = ()
    """The subject alternative names, as text (``IP:127.0.0.1``, ``DNS:localhost``)."""


def default_dir() -> pathlib.Path:
    """``$INFRAKIT_PKI_DIR``, else ``$INFRAKIT_HOME/pki``, else ``~/.infrakit/pki``."""
    if os.environ.get("INFRAKIT_PKI_DIR"):
        return pathlib.Path(os.environ["INFRAKIT_PKI_DIR"])
    if os.environ.get("INFRAKIT_HOME"):
        return pathlib.Path(os.environ["INFRAKIT_HOME"]) / "pki"
    return pathlib.Path.home() / ".infrakit" / "pki"


def init(directory: pathlib.Path, *, days: int = CA_DAYS, force: bool = False,
         common_name: str = "InfraKit CA") -> Issued:
    """Make a CA in ``directory``: ``ca.key`` (0600) and a self-signed ``ca.crt``."""
    _check_days(days)
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    _refuse_overwrite([cert_path, key_path], force=force, what="a CA")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = _now()
    cert = (_builder(subject, subject, key.public_key(), start, start + _days(days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _make_dir(directory)
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return Issued(cert=cert_path, key=key_path, not_after=cert.not_valid_after_utc)


def issue(directory: pathlib.Path, name: str, *, ips: Sequence[str] = (),
          dns: Sequence[str] = (), days: int = DAYS, usage: Usage = "both",
          force: bool = False, not_before: datetime.datetime | None = None,
          not_after: datetime.datetime | None = None) -> Issued:
    """Issue ``name`` a key and a certificate signed by the CA in ``directory``, into
    ``directory/name/`` with a copy of the CA certificate. ``not_before``/``not_after``
    override ``days`` (tests make expired certificates with them)."""
    _check_name(name)
    _check_days(days)
    if usage not in USAGES:
        raise errors.InvalidError(f"usage: expected one of {', '.join(USAGES)}, got {usage!r}",
                                  field="usage")
    ca_cert, ca_key = load_ca(directory)
    target = directory / name
    cert_path, key_path = target / CERT, target / KEY
    _refuse_overwrite([cert_path, key_path], force=force, what=f"a certificate for {name!r}")
    if not ips and not dns and usage != "client":
        ips, dns = DEFAULT_IPS, DEFAULT_DNS
    alt_names = _alt_names(ips, dns)
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now()
    end = not_after or start + _days(days)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (_builder(subject, ca_cert.subject, key.public_key(), start, end)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=True, key_cert_sign=False, crl_sign=False,
                   content_commitment=False, key_encipherment=False, data_encipherment=False,
                   key_agreement=False, encipher_only=False, decipher_only=False),
                   critical=True)
               .add_extension(x509.ExtendedKeyUsage(_purposes(usage)), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _make_dir(target)
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    _write_cert(target / CA_CERT, ca_cert)
    return Issued(cert=cert_path, key=key_path, not_after=cert.not_valid_after_utc,
                  names=tuple(_describe(alt) for alt in alt_names))


def load_ca(directory: pathlib.Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA certificate and key in ``directory``; a clear error when there is none."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise errors.UsageError(
            f"no CA in {directory}: {exc.filename} is missing (run `infrakit pki init "
            f"--dir {directory}` first)") from None
    except (OSError, ValueError) as exc:
        raise errors.UsageError(f"cannot read the CA in {directory}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise errors.UsageError(f"{key_path}: expected an ECDSA key")
    return cert, key


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             start: datetime.datetime, end: datetime.datetime) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                           critical=False))


def _purposes(usage: Usage) -> list[x509.ObjectIdentifier]:
    wanted = {"server": [ExtendedKeyUsageOID.SERVER_AUTH],
              "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
              "both": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]}
    return wanted[usage]


def _alt_names(ips: Sequence[str], dns: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for text in ips:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(text)))
        except ValueError:
            raise errors.InvalidError(f"--ip {text!r}: expected an IPv4 or IPv6 address",
                                      field="ip") from None
    for text in dns:
        if not text or any(c.isspace() for c in text) or "/" in text:
            raise errors.InvalidError(f"--dns {text!r}: expected a host name", field="dns")
        names.append(x509.DNSName(text))
    return names


def _describe(name: x509.GeneralName) -> str:
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    return f"DNS:{name.value}"


def _check_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        raise errors.InvalidError(
            f"NAME {name!r}: expected a non-empty file name without '/' that does not start "
            "with '.'", field="name")


def _check_days(days: int) -> None:
    if days < 1:
        raise errors.InvalidError(f"--days: expected 1 or more, got {days}", field="days")


def _refuse_overwrite(paths: Sequence[pathlib.Path], *, force: bool, what: str) -> None:
    found = [str(path) for path in paths if path.exists()]
    if found and not force:
        raise errors.ConflictError(
            f"{found[0]} exists: refusing to replace {what} (--force replaces it)")


def _make_dir(directory: pathlib.Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.UsageError(f"cannot create {directory}: {exc.strerror or exc}") from None


def _write_key(path: pathlib.Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    _write(path, data, mode=0o600)


def _write_cert(path: pathlib.Path, cert: x509.Certificate) -> None:
    _write(path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _write(path: pathlib.Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to a new file created with ``mode`` (a key is never readable by
    others, not even for a moment), replacing any old one (callers checked --force)."""
    path.unlink(missing_ok=True)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise errors.UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.chmod(path, mode)  # the umask may have taken bits off a certificate's 0644


def _now() -> datetime.datetime:
    # A minute back: a peer whose clock is a little behind still accepts a fresh certificate.
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)


def _days(days: int) -> datetime.timedelta:
    return datetime.timedelta(days=days)
