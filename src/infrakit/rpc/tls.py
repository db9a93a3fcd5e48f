"""Mutual TLS for plugins on TCP: which certificate a process uses, its SSL contexts, and
one readable line for every way a handshake fails.

Servers (:mod:`.tcpserver`) require a client certificate signed by their CA; clients
(:mod:`.pool`, :mod:`.sync`) present theirs and check the plugin's against the same CA.
Both ends use one certificate (``infrakit pki issue`` gives it serverAuth and clientAuth),
from :func:`settings`: what the process's flags set with :func:`use` (``--tls-dir D``, or
``--tls-cert/--tls-key/--tls-ca``; ``--insecure``), else the environment
(``$INFRAKIT_TLS_DIR``, or ``$INFRAKIT_TLS_CERT``/``_KEY``/``_CA``; ``$INFRAKIT_INSECURE=1``),
else ``<pki dir>/client`` when it exists (:func:`infrakit.pki.default_dir`).
TLS 1.2 or later; only the given CA is trusted, never the system's.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import ssl

from infrakit import errors, pki
from infrakit.rpc import address

HANDSHAKE_TIMEOUT = 10.0
"""Seconds a TLS handshake may take, on either side."""


@dataclasses.dataclass(frozen=True)
class Files:
    """A certificate, its key and the CA that peers' certificates must be signed by."""

    cert: pathlib.Path
    key: pathlib.Path
    ca: pathlib.Path
    origin: str
    """Where they were named (``--tls-dir /x``, ``$INFRAKIT_TLS_DIR``), for errors."""

    @classmethod
    def in_dir(cls, directory: pathlib.Path, *, origin: str) -> Files:
        """The files ``infrakit pki issue`` writes in ``directory``."""
        return cls(cert=directory / pki.CERT, key=directory / pki.KEY,
                   ca=directory / pki.CA_CERT, origin=origin)


@dataclasses.dataclass(frozen=True)
class Settings:
    """A process's TLS settings, for listening and for calling."""

    files: Files | None = None
    insecure: bool = False
    """Plain TCP (``http://``) may be used: only ever by an explicit choice."""


_chosen: Settings | None = None


def use(chosen: Settings | None) -> None:
    """Make ``chosen`` this process's settings (``None``: back to the environment's)."""
    global _chosen
    _chosen = chosen


def settings() -> Settings:
    """This process's settings: those given to :func:`use`, else from the environment."""
    return _chosen if _chosen is not None else from_env()


def from_env() -> Settings:
    """:func:`env_files` and ``$INFRAKIT_INSECURE``; without files, ``<pki dir>/client``
    when it holds a certificate."""
    insecure = env_insecure()
    files = env_files()
    if files is not None:
        return Settings(files=files, insecure=insecure)
    fallback = pki.default_dir() / "client"
    if (fallback / pki.CERT).exists():
        return Settings(files=Files.in_dir(fallback, origin=f"the default {fallback}"),
                        insecure=insecure)
    return Settings(insecure=insecure)


def env_files() -> Files | None:
    """The files ``$INFRAKIT_TLS_CERT``/``_KEY``/``_CA`` or ``$INFRAKIT_TLS_DIR`` name."""
    env = os.environ
    explicit = files_from(cert=env.get("INFRAKIT_TLS_CERT"), key=env.get("INFRAKIT_TLS_KEY"),
                          ca=env.get("INFRAKIT_TLS_CA"), prefix="$INFRAKIT_TLS_")
    if explicit is not None or not env.get("INFRAKIT_TLS_DIR"):
        return explicit
    directory = pathlib.Path(env["INFRAKIT_TLS_DIR"])
    return Files.in_dir(directory, origin=f"$INFRAKIT_TLS_DIR={directory}")


def env_insecure() -> bool:
    """``$INFRAKIT_INSECURE`` is set to 1, true or yes."""
    return os.environ.get("INFRAKIT_INSECURE", "").lower() in ("1", "true", "yes")


def files_from(*, directory: str | pathlib.Path | None = None, cert: str | None = None,
               key: str | None = None, ca: str | None = None,
               prefix: str = "--tls-") -> Files | None:
    """Files from a dir or from all three of cert, key and CA (named ``prefix``+what in
    errors); ``None`` when nothing is given."""
    given = {"cert": cert, "key": key, "ca": ca}
    named = {what: value for what, value in given.items() if value}
    if named and len(named) < 3:
        missing = ", ".join(_flag(prefix, what) for what in given if what not in named)
        raise errors.UsageError(f"{', '.join(_flag(prefix, w) for w in named)} given without "
                                f"{missing}: give all three, or a TLS dir")
    if named and directory:
        raise errors.UsageError(f"give either {prefix.rstrip('-_')} dir or "
                                f"{_flag(prefix, 'cert')}/key/ca, not both")
    if named:
        return Files(cert=pathlib.Path(given["cert"] or ""), key=pathlib.Path(key or ""),
                     ca=pathlib.Path(ca or ""), origin=f"{_flag(prefix, 'cert')} {cert}")
    if directory:
        path = pathlib.Path(directory)
        return Files.in_dir(path, origin=f"{_flag(prefix, 'dir')} {path}")
    return None


def _flag(prefix: str, what: str) -> str:
    return prefix + (what.upper() if prefix.endswith("_") else what)


@functools.lru_cache(maxsize=8)
def server_context(files: Files) -> ssl.SSLContext:
    """For a listener: our certificate; every client must present one the CA signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    _load(context, files)
    return context


@functools.lru_cache(maxsize=8)
def client_context(files: Files) -> ssl.SSLContext:
    """For a caller: our certificate; the plugin's must be the CA's, for the host we dial."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # checks the host name, requires a cert
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(context, files)
    return context


def context_for(where: address.Address, chosen: Settings | None = None) -> ssl.SSLContext | None:
    """The client context to reach ``where`` (``None``: plain TCP, if allowed)."""
    chosen = chosen or settings()
    if not where.secure:
        if not chosen.insecure:
            raise errors.UsageError(
                f"{where.lookup}: plain http:// is refused without --insecure (or "
                "$INFRAKIT_INSECURE=1); use https:// (mutual TLS)")
        return None
    if chosen.files is None:
        raise errors.UsageError(
            f"{where.lookup}: no client certificate for mutual TLS: give --tls-dir D or set "
            "$INFRAKIT_TLS_DIR (`infrakit pki issue NAME` makes one)")
    return client_context(chosen.files)


def _load(context: ssl.SSLContext, files: Files) -> None:
    for what, path in (("certificate", files.cert), ("key", files.key), ("CA", files.ca)):
        if not path.is_file():
            raise errors.UsageError(f"TLS {what} {path} (from {files.origin}) is missing; "
                                    "`infrakit pki issue` makes one")
    try:
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        raise errors.UsageError(f"cannot load the TLS certificate {files.cert} and key "
                                f"{files.key} (from {files.origin}): {explain(exc)}") from None
    try:
        context.load_verify_locations(cafile=files.ca)
    except (OSError, ssl.SSLError) as exc:
        raise errors.UsageError(f"cannot load the CA {files.ca} (from {files.origin}): "
                                f"{explain(exc)}") from None


_UNTRUSTED = frozenset({2, 18, 19, 20, 21})
"""OpenSSL's verify codes for a chain that does not end at our CA."""

_REASONS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED":
        "the peer requires a client certificate and none was sent",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the client sent no certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the peer refused our certificate: it has expired",
    "TLSV1_ALERT_UNKNOWN_CA":
        "the peer refused our certificate: it is not signed by the CA the peer trusts",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the peer refused our certificate (bad certificate)",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE":
        "the peer refused our certificate (not issued for this use)",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the peer refused our certificate",
    "HTTP_REQUEST": "plain HTTP sent to a TLS port (use https://)",
    "WRONG_VERSION_NUMBER": "the peer does not speak TLS (a plain --insecure listener?)",
    "UNSUPPORTED_PROTOCOL": "no TLS version in common (1.2 or later is required)",
    "TLSV1_ALERT_PROTOCOL_VERSION": "no TLS version in common (1.2 or later is required)",
    "KEY_VALUES_MISMATCH": "the key does not belong to the certificate",
}


def explain(exc: BaseException) -> str:
    """One line saying why a TLS handshake or load failed (never key material)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        hint = " (signed by a CA we do not trust)" if exc.verify_code in _UNTRUSTED else ""
        return f"certificate verify failed: {exc.verify_message}{hint}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason in _REASONS:
            return _REASONS[reason]
        if "ALERT" in reason:
            return f"the peer refused the handshake ({reason.lower().replace('_', ' ')})"
        return reason.lower().replace("_", " ") or str(exc)
    if isinstance(exc, TimeoutError):
        return f"no TLS handshake within {HANDSHAKE_TIMEOUT:g}s"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "the peer closed the connection during the TLS handshake"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
