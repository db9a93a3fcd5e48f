"""``infrakit plugin ls|start|stop``: the plugins in the plugins dir, as processes.

The work is in ``infrakit.rpc`` (``listing``, ``starting``, ``stopping``); these commands
print their outcomes, one line per plugin (failures on stderr), and exit with the first
failure's code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import click

from infrakit import errors
from infrakit.cli import options, render
from infrakit.rpc import discovery, launch, listing, starting, stopping

LS_WIDTHS = (20, 50)
LS_NAME_WIDTH = 20
"""NAME's width when a TCP column follows it."""
NO_ANSWER = "(no answer)"


@click.command("ls")
@options.quiet
@options.output()
def ls(quiet: bool, output: str) -> None:
    """One row per plugin and interface it serves: INTERFACE, LISTEN, NAME, and TCP (the URL
    it also answers at) when any plugin listens on TCP."""
    rows = listing.rows(discovery.plugins_dir())
    if output != "table":
        render.document([_listing_wire(row) for row in rows], output)
        return
    cells = [[row.interface or NO_ANSWER, str(row.listen), row.name] for row in rows]
    headers, widths = ["INTERFACE", "LISTEN", "NAME"], list(LS_WIDTHS)
    if any(row.tcp for row in rows):
        headers, widths = [*headers, "TCP"], [*LS_WIDTHS, LS_NAME_WIDTH]
        for cell, row in zip(cells, rows, strict=True):
            cell.append(row.tcp or "-")
    render.table(headers, cells, widths=widths, quiet=quiet, sep="")
    for row in rows:
        if row.error is not None:
            click.echo(f"infrakit: plugin {row.name} does not answer: {row.error}", err=True)


def _listing_wire(row: listing.Row) -> dict[str, str | None]:
    data: dict[str, str | None] = {"Interface": row.interface, "Listen": str(row.listen),
                                   "Name": row.name}
    if row.tcp is not None:
        data["TCP"] = row.tcp
    if row.error is not None:
        data["Error"] = row.error
    return data


@click.command("start")
@click.option("--config-url", default=None, metavar="URL",
              help="The launch config (JSON or YAML, rendered with Jinja2): a list of "
                   '{"Plugin": NAME, "Launch": {"os": {"Cmd": "...", "SamePgID": false}}}. '
                   "Names it lacks start from the 'infrakit.plugins' entry points.")
@click.option("--exec", "executor", type=click.Choice(["os"]), default="os", show_default=True,
              help="How to start plugins: os processes.")
@click.option("-w", "--wait", is_flag=True,
              help="Stay in the foreground; on Ctrl-C or SIGTERM stop the plugins started.")
@click.option("--timeout", type=options.DURATION, default="10s", show_default=True,
              help="How long each plugin has to answer on its socket.")
@click.option("--stop-timeout", type=options.DURATION, default="5s", show_default=True,
              help="With --wait: how long a plugin has to exit before SIGKILL.")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def start(ctx: click.Context, config_url: str | None, executor: str, wait: bool,
          timeout: float, stop_timeout: float, names: tuple[str, ...]) -> None:
    """Start the named plugins and wait until each answers on its socket.

    When our group plugin is among them or in the config, our instance plugins
    (instance-file, instance-process) get `--notify GROUP`, so a member that dies wakes the
    group at once (unless their config line gives --notify itself)."""
    directory = discovery.plugins_dir()
    rules = launch.load_config(config_url) if config_url else {}
    # With --wait the plugins live only as long as this command: Ctrl-C stops them, even
    # before they all answer.
    with starting.interrupts() if wait else contextlib.nullcontext() as interrupted:
        outcomes = starting.start(names, rules, plugins_dir=directory, timeout=timeout,
                                  config_source=config_url,
                                  notify=launch.notify_targets(names, rules),
                                  interrupted=interrupted)
        code = _report(outcomes)
        if wait and code == 0:
            click.echo("Plugins running; Ctrl-C (or SIGTERM) stops them.", err=True)
            code = _report(starting.hold(outcomes, plugins_dir=directory, timeout=stop_timeout,
                                         interrupted=interrupted))
        elif wait:  # one failed, or Ctrl-C came first: stop the others
            _report(starting.release(outcomes, plugins_dir=directory, timeout=stop_timeout))
    ctx.exit(errors.Interrupted.exit_code if code and interrupted and interrupted.is_set()
             else code)


@click.command("stop")
@click.option("--all", "stop_all", is_flag=True, help="Stop every plugin in the plugins dir.")
@click.option("--timeout", type=options.DURATION, default="5s", show_default=True,
              help="How long a plugin has to exit after SIGTERM before SIGKILL.")
@click.argument("names", nargs=-1)
@click.pass_context
def stop(ctx: click.Context, stop_all: bool, timeout: float, names: tuple[str, ...]) -> None:
    """Stop the named plugins (SIGTERM to the pid in NAME.pid, checked first)."""
    directory = discovery.plugins_dir()
    if not names and not stop_all:
        raise click.UsageError("name the plugins to stop, or use --all")
    targets = stopping.running(directory) if stop_all else list(names)
    ctx.exit(_report(stopping.stop(targets, plugins_dir=directory, timeout=timeout)))


def _report(outcomes: Sequence[launch.Outcome]) -> int:
    """Print each outcome; the exit code of the first failure (0 when none failed)."""
    code = 0
    for outcome in outcomes:
        if outcome.error is None:
            render.line(outcome.message)
            continue
        click.echo(f"infrakit: {outcome.error.message}", err=True)
        code = code or outcome.error.exit_code
    return code


@click.group("plugin")
def command() -> None:
    """List, start and stop plugins."""


for _verb in (ls, start, stop):
    command.add_command(_verb)
