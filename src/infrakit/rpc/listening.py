"""``--listen HOST:PORT`` and the TLS flags every plugin takes, and what they configure.

The plugins' shared flag parser calls :func:`add_flags` before parsing and :func:`configure`
after; :class:`infrakit.rpc.server.Server` then listens on TCP too (beside its unix
socket) unless told otherwise, and the process's clients use the same certificate
(:func:`infrakit.rpc.tls.use`)::

    --listen 127.0.0.1:24864 --tls-dir ~/.infrakit/pki/instance-file
    --listen 127.0.0.1:24864 --tls-cert C --tls-key K --tls-ca CA
    --listen 127.0.0.1:24864 --insecure          plain TCP: a loud warning, never the default

Without ``--tls-*`` flags the certificate may come from ``$INFRAKIT_TLS_DIR`` (or
``$INFRAKIT_TLS_CERT``/``_KEY``/``_CA``); without any, ``--listen`` is refused at start
unless ``--insecure`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import urllib.parse

from infrakit import errors
from infrakit.rpc import address, tls


@dataclasses.dataclass(frozen=True)
class Listen:
    """Where a server listens on TCP, and with which certificate (``None``: plain TCP)."""

    host: str
    port: int
    files: tls.Files | None

    @property
    def url(self) -> str:
        """The URL clients reach this listener by (``https://`` with TLS)."""
        return address.listen_url(self.host, self.port, secure=self.files is not None)

    @property
    def wildcard(self) -> bool:
        """Listening on every address (``0.0.0.0``, ``::``): the URL needs a real host."""
        return self.host in ("0.0.0.0", "::", "")


_configured: Listen | None = None


def configured() -> Listen | None:
    """What :func:`configure` set for this process (``None``: no TCP listener)."""
    return _configured


def use(chosen: Listen | None) -> None:
    """Set (or, with ``None``, clear) this process's listener."""
    global _configured
    _configured = chosen


def add_flags(parser: argparse.ArgumentParser) -> None:
    """``--listen``, ``--tls-dir``, ``--tls-cert``, ``--tls-key``, ``--tls-ca``, ``--insecure``."""
    flags = parser.add_argument_group("TCP with mutual TLS")
    flags.add_argument("--listen", default="", metavar="HOST:PORT",
                       help="also listen on TCP, with mutual TLS (e.g. 127.0.0.1:24864)")
    flags.add_argument("--tls-dir", default="", metavar="D",
                       help="the certificate, key and CA from `infrakit pki issue` "
                            "(default $INFRAKIT_TLS_DIR); also used to call https:// plugins")
    flags.add_argument("--tls-cert", default="", metavar="FILE", help="certificate (PEM)")
    flags.add_argument("--tls-key", default="", metavar="FILE", help="its key (PEM)")
    flags.add_argument("--tls-ca", default="", metavar="FILE",
                       help="the CA peers' certificates must be signed by (PEM)")
    flags.add_argument("--insecure", action="store_true",
                       help="allow plain TCP: --listen without a certificate, http:// plugins")


def configure(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Listen | None:
    """Check the flags (a bad one ends the program through ``parser.error``, naming it),
    make them this process's TLS settings and listener; the listener is returned."""
    try:
        files = tls.files_from(directory=args.tls_dir, cert=args.tls_cert, key=args.tls_key,
                               ca=args.tls_ca)
        insecure = args.insecure or tls.env_insecure()
        files = files or tls.env_files()
        chosen = parse(args.listen, files=files, insecure=insecure) if args.listen else None
    except errors.InfrakitError as exc:
        parser.error(exc.message)
    tls.use(tls.Settings(files=files or tls.from_env().files, insecure=insecure))
    use(chosen)
    return chosen


def parse(text: str, *, files: tls.Files | None, insecure: bool,
          flag: str = "--listen") -> Listen:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) with the certificate to serve it."""
    host, port = split(text, flag=flag)
    if files is None and not insecure:
        raise errors.UsageError(
            f"{flag} {text} needs a certificate for mutual TLS: give --tls-dir D (from "
            "`infrakit pki issue NAME`) or --tls-cert, --tls-key and --tls-ca (or set "
            "$INFRAKIT_TLS_DIR); plain TCP only with --insecure")
    return Listen(host=host, port=port, files=files)


def split(text: str, *, flag: str) -> tuple[str, int]:
    """``(host, port)`` from ``HOST:PORT``; ``UsageError`` naming ``flag`` otherwise."""
    try:
        parts = urllib.parse.urlsplit(f"//{text}")
        port, host = parts.port, parts.hostname
    except ValueError:
        port, host = None, None
    if port is None or host is None or parts.path or "@" in text:
        raise errors.UsageError(f"{flag} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:24864 "
                                "or [::1]:24864")
    return host, port
