"""``infrakit``: the command line (console script ``infrakit = infrakit.cli.main:main``).

Named forms (``plugin``, ``group``, ``instance``, ``flavor``, ``version``) plus the original's
dynamic form, ``infrakit <plugin-name> <verb>``, for every socket in the plugins dir. Every
failure ends as one line on stderr, ``infrakit: <message>``, with the error's exit code
(``errors.InfrakitError.exit_code``; click's usage errors exit 2); ``--debug`` adds the
traceback.
"""

from __future__ import annotations

import importlib.metadata
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from infrakit import errors, logs
from infrakit.cli import (
    apply,
    dynamic,
    flavor,
    group,
    instance,
    manager,
    options,
    pki,
    plugin,
    render,
    up,
)
from infrakit.rpc import address, discovery, tls

INTERRUPTED = 130


class Failure(Exception):
    """An error that ends the command: one line, its own exit code."""

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class Root(click.Group):
    """The named commands, then one command per plugin socket (looked up lazily)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        named = super().list_commands(ctx)
        try:
            found = discovery.list_sockets()
        except errors.InfrakitError:
            found = {}
        return named + [name for name in found if name not in named]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or dynamic.find(
            cmd_name, host=ctx.params.get("host"))

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if not name.startswith("-") and self.get_command(ctx, name) is None:
            lookup = discovery.Name.parse(name).lookup
            raise errors.PluginNotFound(
                f"no command or plugin named {name!r} (no socket "
                f"{discovery.plugins_dir() / lookup}; see `infrakit plugin ls`)", plugin=lookup)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise  # click reports these itself (a closed pipe: quietly)
        except errors.InfrakitError as exc:
            _traceback_if(ctx)
            raise Failure(exc.message, exit_code=exc.exit_code) from exc
        except Exception as exc:
            _traceback_if(ctx)
            raise Failure(f"internal error: {type(exc).__name__}: {exc} (--debug shows where)",
                          exit_code=1) from exc

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except Failure as exc:
            click.echo(f"infrakit: {exc.message}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"infrakit: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("infrakit: interrupted", err=True)
            sys.exit(INTERRUPTED)
        if standalone_mode:
            sys.exit(result if isinstance(result, int) else 0)
        return result


def _traceback_if(ctx: click.Context) -> None:
    if ctx.params.get("debug"):
        traceback.print_exc(file=sys.stderr)


def _exit_codes() -> str:
    """The ``--help`` epilog: every exit code and its meaning (``\b``: keep the lines)."""
    rows = [f"  {code:<4} {meaning}" for code, meaning in errors.EXIT_CODES]
    return "\b\nExit codes:\n" + "\n".join(rows)


@click.group(cls=Root, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=_exit_codes())
@click.version_option(package_name="infrakit", prog_name="infrakit",
                      message="%(prog)s %(version)s (protocol InfraKit v0.5)")
@click.option("--log", type=click.IntRange(0, 5), default=4, show_default=True,
              help="Log level: 0 least verbose, 5 debug (the original's levels).")
@click.option("-v", "--debug", is_flag=True, help="Show the traceback of an error.")
@click.option("--timeout", type=options.DURATION, default="30s", show_default=True,
              help="How long each call to a plugin may take (e.g. 500ms, 10s, 1m).")
@click.option("--host", envvar="INFRAKIT_HOST", default=None, metavar="URL",
              help="Talk to the plugin at URL (https://HOST:PORT, mutual TLS), e.g. a "
                   "manager on another host, instead of the local sockets [$INFRAKIT_HOST].")
@click.option("--tls-dir", envvar="INFRAKIT_TLS_DIR", default=None, metavar="D",
              help="Our certificate, key and CA for https:// plugins (`infrakit pki issue`; "
                   "default <pki dir>/client) [$INFRAKIT_TLS_DIR].")
@click.option("--insecure", is_flag=True, envvar="INFRAKIT_INSECURE",
              help="Allow plain http:// plugin URLs (no TLS).")
@click.pass_context
def cli(ctx: click.Context, log: int, debug: bool, timeout: float, host: str | None,
        tls_dir: str | None, insecure: bool) -> None:
    """InfraKit for Python: declarative, self-healing infrastructure.

    Plugins listen on unix sockets in $INFRAKIT_PLUGINS_DIR (else $INFRAKIT_HOME/plugins,
    else ~/.infrakit/plugins); each one found is also a command: `infrakit NAME VERB`.
    With --host URL the commands talk to the plugin at URL instead (over mutual TLS).
    """
    logs.configure(log)
    if host:
        address.parse(host)  # a bad URL is a usage error now, not at the first call
    files = tls.files_from(directory=tls_dir) if tls_dir else tls.from_env().files
    tls.use(tls.Settings(files=files, insecure=insecure))
    ctx.obj = options.Settings(timeout=timeout, debug=debug, host=host or None)


@cli.command("version")
@options.output()
def version(output: str) -> None:
    """The version of this CLI and the protocol it speaks."""
    info = {"Version": importlib.metadata.version("infrakit"), "Protocol": "InfraKit v0.5"}
    if output != "table":
        render.document(info, output)
        return
    render.line(f"Version: {info['Version']}")
    render.line(f"Protocol: {info['Protocol']}")


for _command in (plugin.command, group.command, instance.command, flavor.command):
    cli.add_command(_command)
cli.add_command(manager.command)
cli.add_command(up.command)
cli.add_command(apply.command)
cli.add_command(pki.command)


def main() -> None:
    cli.main(prog_name="infrakit")


if __name__ == "__main__":
    main()
