"""``infrakit-manager``: the manager as its own process, in front of a backend group plugin.

    infrakit-manager [--name group] [--proxy-for-group group-stateless] [--log 4]
                     [--fence-interval 500ms] [--state-poll 1s] [--forward-timeout 30s]
                     [--history 10]
                     os [--leader-file F [--flock]] [--poll 1s] [--store-dir D]
    infrakit-manager ... etcd --endpoint URL [--endpoint URL ...] [--lease-ttl 5s]
                     [--leader-key infrakit/leader] [--store-prefix infrakit/configs/]
    infrakit-manager ... [--listen HOST:PORT --tls-dir D [--advertise URL]] etcd ...

``os``: the file store in ``--store-dir`` (default ``$INFRAKIT_HOME/configs``) and file
leadership: with ``--leader-file F`` InfraKit's leader file (the manager leads while F
names it), without it (or with ``--flock``) the automatic mode, an exclusive lock on F
(default ``$INFRAKIT_HOME/leader.lock``). ``etcd``: the etcd store and an etcd election.

On one host, give every manager its own ``--name`` and its own backend
(``infrakit-group-default --name group-stateless-1 --manager group-1 --fence-interval
500ms``); the backend stops supervising within its fence interval once its manager dies
or stops leading, and ``--fence-interval`` here must be the backends' value: a new leader
waits for it (:func:`.tenure.handover_delay`) before it acts.

On many hosts, give each manager ``--listen HOST:PORT`` with its certificate (``--tls-dir``,
:mod:`infrakit.rpc.listening`): it answers there over mutual TLS too, and while it leads
the etcd leader key carries its URL (``--advertise URL``, default from ``--listen``), so a
standby on another host forwards to it there and the CLI (``--host``) may ask any manager.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import pathlib
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from infrakit import durations, errors, logs
from infrakit.manager import (
    etcd,
    forward,
    leader,
    leader_etcd,
    leader_file,
    methods,
    proxy,
    store,
    store_etcd,
    store_file,
    tenure,
    tree,
)
from infrakit.rpc import address, discovery, listening, server

log = logging.getLogger(__name__)

DEFAULT_FENCE = "500ms"


def home() -> pathlib.Path:
    """``$INFRAKIT_HOME``, else ``~/.infrakit``."""
    value = os.environ.get("INFRAKIT_HOME")
    return pathlib.Path(value) if value else pathlib.Path.home() / ".infrakit"


class Remote:
    """The backend group plugin over RPC, looked up by name at each call (so the manager
    may start before it, and follows it when it restarts)."""

    def __init__(self, plugins: discovery.Plugins, name: str) -> None:
        self.plugins = plugins
        self.name = name

    def __getattr__(self, method: str) -> Any:
        return getattr(self.plugins.group(self.name), method)


@dataclass
class Election:
    """The leadership and store a manager runs with, and what says who leads."""

    leadership: leader.Leadership
    store: store.Store
    where: str
    """Who a standby asks for the leader, for errors: "leader file /x/leader"."""
    handover: float
    closers: list[Any] = field(default_factory=list)


@contextlib.asynccontextmanager
async def served(manager: proxy.Manager, *, where: str,
                 plugins_dir: pathlib.Path | None = None,
                 forward_timeout: float = forward.DEFAULT_TIMEOUT,
                 listen: listening.Listen | None = None,
                 url: str = "") -> AsyncIterator[server.Server]:
    """Serve ``manager`` (Group, Manager, Metadata and the extensions, forwarding while it
    does not lead) on ``<plugins dir>/<manager.name>``, and on ``listen`` (TCP) when given,
    and run it; on exit it frees its backend and resigns before the socket goes. ``url``:
    how other hosts reach this manager (its leadership publishes it)."""
    running = server.Server(manager.name, group=manager, manager=manager,
                            metadata=tree.Tree(manager), extra_methods=methods.table(manager),
                            plugins_dir=plugins_dir, listen=listen)
    forwarder = forward.Forwarder(manager, plugins_dir=running.directory, where=where,
                                  timeout=forward_timeout, url=url)
    running.methods = forwarder.install(running.methods)
    async with running:
        await manager.start()
        try:
            yield running
        finally:
            await manager.stop()
            await forwarder.close()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="infrakit-manager",
                                     description="The manager: a leader-elected group proxy.")
    parser.add_argument("--name", default="group", help="socket name (default group)")
    parser.add_argument("--proxy-for-group", default="group-stateless", metavar="NAME",
                        help="the backend group plugin (default group-stateless)")
    parser.add_argument("--fence-interval", default=DEFAULT_FENCE, metavar="DURATION",
                        help="the backends' --fence-interval (default 500ms)")
    parser.add_argument("--state-poll", default="1s", metavar="DURATION",
                        help="how often rolling-update states are saved (default 1s)")
    parser.add_argument("--forward-timeout", default="30s", metavar="DURATION",
                        help="how long a call forwarded to the leader may take (default 30s)")
    parser.add_argument("--history", type=int, default=store.DEFAULT_HISTORY, metavar="N",
                        help="committed specs kept per group (default 10)")
    logs.add_flag(parser)
    listening.add_flags(parser)
    parser.add_argument("--advertise", default="", metavar="URL",
                        help="the URL other hosts reach this manager by, published with its "
                             "leadership (default: from --listen)")
    kinds = parser.add_subparsers(dest="backend", required=True, metavar="os|etcd")
    local = kinds.add_parser("os", help="file store and file leadership (one host)")
    local.add_argument("--leader-file", type=pathlib.Path, default=None, metavar="F",
                       help="InfraKit's leader file (lead while it names us); omitted: flock")
    local.add_argument("--flock", action="store_true",
                       help="lock --leader-file instead (default $INFRAKIT_HOME/leader.lock)")
    local.add_argument("--poll", default=None, metavar="DURATION",
                       help="how often the leadership is checked (default 1s for the leader "
                            "file, 100ms for the lock)")
    local.add_argument("--store-dir", type=pathlib.Path, default=None, metavar="D",
                       help="the store (default $INFRAKIT_HOME/configs)")
    remote = kinds.add_parser("etcd", help="etcd store and etcd election (many hosts)")
    remote.add_argument("--endpoint", action="append", required=True, metavar="URL",
                        help="etcd client URLs: repeat the flag or separate with commas")
    remote.add_argument("--lease-ttl", default="5s", metavar="DURATION",
                        help="the leader's lease, whole seconds (default 5s)")
    remote.add_argument("--leader-key", default=leader_etcd.KEY, metavar="KEY")
    remote.add_argument("--store-prefix", default=store_etcd.PREFIX, metavar="PREFIX")
    args = parser.parse_args(argv)
    logs.configure(args.log)
    args.listening = listening.configure(parser, args)
    args.url = _advertised(parser, args)
    return args


def _advertised(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The URL published with this manager's leadership ("" when it is not on TCP)."""
    chosen: listening.Listen | None = args.listening
    if args.advertise:
        if chosen is None:
            parser.error("--advertise needs --listen: nothing answers on TCP without it")
        try:
            address.parse(args.advertise)
        except errors.InfrakitError as exc:
            parser.error(f"--advertise: {exc.message}")
        return str(args.advertise).rstrip("/")
    if chosen is None:
        return ""
    if chosen.wildcard:
        parser.error(f"--listen {args.listen} listens on every address: give --advertise "
                     "URL, the one other hosts reach this manager by")
    return chosen.url


def _seconds(text: str, flag: str) -> float:
    return durations.parse_duration(text, field=flag)


def election(args: argparse.Namespace) -> Election:
    """The leadership and store the flags ask for."""
    fence = _seconds(args.fence_interval, "--fence-interval")
    if args.history < 1:
        raise errors.UsageError(f"--history must be 1 or more, got {args.history}")
    if args.backend == "etcd":
        return _etcd_election(args, fence=fence)
    locking = args.leader_file is None or args.flock
    poll = _seconds(args.poll or ("100ms" if locking else "1s"), "--poll")
    if poll <= 0:
        raise errors.UsageError(f"--poll must be positive, got {args.poll}")
    lead: leader.Leadership
    if not locking:
        lead = leader_file.FileLeadership(args.leader_file, args.name, poll=poll)
        where, kind = f"leader file {args.leader_file}", "file"
    else:
        path = args.leader_file or home() / "leader.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        lead = leader_file.FlockLeadership(path, args.name, poll=poll)
        where, kind = f"lock file {path}", "flock"
    directory = args.store_dir or home() / "configs"
    documents = store_file.FileStore(directory, history_limit=args.history, token=lead.token)
    return Election(lead, documents, where,
                    tenure.handover_delay(kind, fence_interval=fence, poll=poll))


def _etcd_election(args: argparse.Namespace, *, fence: float) -> Election:
    ttl = _seconds(args.lease_ttl, "--lease-ttl")
    if ttl < 1 or ttl != int(ttl):
        raise errors.UsageError(f"--lease-ttl must be whole seconds >= 1, got {args.lease_ttl}")
    endpoints = [url for each in args.endpoint for url in each.split(",") if url]
    client = etcd.Client(endpoints)
    lead = leader_etcd.EtcdLeadership(client, args.name, key=args.leader_key, ttl=int(ttl),
                                      url=args.url)
    documents = store_etcd.EtcdStore(client, token=lead.token, prefix=args.store_prefix,
                                     history_limit=args.history)
    where = f"etcd key {args.leader_key!r} at {', '.join(endpoints)}"
    return Election(lead, documents, where,
                    tenure.handover_delay("etcd", fence_interval=fence, ttl=ttl),
                    closers=[client])


async def main(args: argparse.Namespace) -> None:
    chosen = election(args)
    plugins = discovery.Plugins()
    manager = proxy.Manager(args.name, leadership=chosen.leadership, store=chosen.store,
                            backend=Remote(plugins, args.proxy_for_group),
                            backend_name=args.proxy_for_group, handover=chosen.handover,
                            state_poll=_seconds(args.state_poll, "--state-poll"))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        async with served(manager, where=chosen.where,
                          forward_timeout=_seconds(args.forward_timeout, "--forward-timeout"),
                          listen=args.listening, url=args.url):
            log.info("manager %s: backend %s, leadership by %s", args.name,
                     args.proxy_for_group, chosen.where)
            await stopping.wait()
    finally:
        await plugins.close()
        for each in chosen.closers:
            await each.close()


def run(argv: list[str] | None = None) -> None:
    """The console script ``infrakit-manager``."""
    args = parse(argv)
    try:
        asyncio.run(main(args))
    except errors.InfrakitError as exc:
        print(f"infrakit-manager: {exc.message}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    run()
