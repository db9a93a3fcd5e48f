"""``infrakit pki init|issue``: the CA and the certificates for plugins on TCP with mTLS.

The work is in :mod:`infrakit.pki`; these commands print where the files went. Keys are
never printed.
"""

from __future__ import annotations

import pathlib

import click

from infrakit import pki
from infrakit.cli import render


def _dir_option() -> click.Option:
    return click.Option(["--dir", "directory"], type=click.Path(path_type=pathlib.Path),
                        default=None, metavar="D",
                        help="The pki dir (default $INFRAKIT_PKI_DIR, else $INFRAKIT_HOME/pki, "
                             "else ~/.infrakit/pki).")


@click.command("init", params=[_dir_option()])
@click.option("--days", type=click.IntRange(min=1), default=pki.CA_DAYS, show_default=True,
              help="How long the CA is valid.")
@click.option("--force", is_flag=True, help="Replace an existing CA (every certificate it "
                                            "issued stops being trusted).")
def init(directory: pathlib.Path | None, days: int, force: bool) -> None:
    """Make a CA: ca.key (0600) and ca.crt in the pki dir."""
    where = directory or pki.default_dir()
    made = pki.init(where, days=days, force=force)
    render.line(f"CA created: {made.cert} (key {made.key}, mode 0600), valid until "
                f"{made.not_after:%Y-%m-%dT%H:%M:%SZ}")


@click.command("issue", params=[_dir_option()])
@click.argument("name")
@click.option("--ip", "ips", multiple=True, metavar="IP",
              help="An IP address the certificate is valid for (repeatable).")
@click.option("--dns", multiple=True, metavar="NAME",
              help="A host name the certificate is valid for (repeatable). Without --ip and "
                   "--dns a server certificate gets localhost, 127.0.0.1 and ::1.")
@click.option("--days", type=click.IntRange(min=1), default=pki.DAYS, show_default=True,
              help="How long the certificate is valid.")
@click.option("--client", "usage", flag_value="client", help="Only to call plugins.")
@click.option("--server", "usage", flag_value="server", help="Only to listen.")
@click.option("--both", "usage", flag_value="both", default=True,
              help="To listen and to call (the default).")
@click.option("--force", is_flag=True, help="Replace NAME's existing key and certificate.")
def issue(directory: pathlib.Path | None, name: str, ips: tuple[str, ...],
          dns: tuple[str, ...], days: int, usage: pki.Usage, force: bool) -> None:
    """Issue NAME a key and a certificate signed by the CA, in <pki dir>/NAME/."""
    where = directory or pki.default_dir()
    made = pki.issue(where, name, ips=ips, dns=dns, days=days, usage=usage, force=force)
    names = ", ".join(made.names) or "none"
    render.line(f"Issued {name}: {made.cert} (key {made.key}, mode 0600; {usage}; names "
                f"{names}), valid until {made.not_after:%Y-%m-%dT%H:%M:%SZ}")
    render.line(f"Use it with --tls-dir {made.cert.parent}")


command = click.Group("pki", commands=[init, issue],
                      help="A CA and certificates for plugins on TCP with mutual TLS.")
