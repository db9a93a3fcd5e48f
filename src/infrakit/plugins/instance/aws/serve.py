"""``infrakit-instance-aws``: the plugin as its own process, with the original's flags.

    infrakit-instance-aws [--name instance-aws] [--log 0-5] [--region R]
        [--endpoint-url URL] [--retries 5] [--timeout 15s] [--workers 16]
        [--namespace-tags k=v,...]

Credentials and region come from the usual AWS environment and files (:mod:`.session`);
``--endpoint-url`` points at an EC2-compatible API. ``--retries`` is how many times a
throttled or failed request is retried, with backoff and jitter, before the call fails
with ``TemporaryError``; ``--timeout`` bounds one request; ``--workers`` is how many
requests may be in flight at once. A start-up problem (boto3 missing, no region or
credentials) ends the process with one line naming it.
"""

from __future__ import annotations

import argparse
import sys

from infrakit import durations, errors
from infrakit.plugins import launch
from infrakit.plugins.instance.aws import api, plugin, retry, session

NAME = "instance-aws"
PROG = "infrakit-instance-aws"


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The flags (logging set up from ``--log``); ``UsageError`` for a bad value."""
    def own(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--region", default="",
                            help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or "
                                 "~/.aws/config)")
        parser.add_argument("--endpoint-url", default="", metavar="URL",
                            help="EC2 endpoint, for EC2-compatible APIs (default: AWS's)")
        parser.add_argument("--retries", type=int, default=5,
                            help="retries of a throttled or failed request (default 5)")
        parser.add_argument("--timeout", default="15s", metavar="DURATION",
                            help="longest wait for one request's answer (default 15s)")
        parser.add_argument("--workers", type=int, default=16, metavar="N",
                            help="requests to EC2 in flight at once (default 16)")
        parser.add_argument("--namespace-tags", action="append", default=[],
                            metavar="K=V,...",
                            help="tags put on every instance and required of every one listed")

    args = launch.parse(argv, prog=PROG, description="EC2 instance plugin",
                        default_name=NAME, flags=own)
    if args.retries < 0:
        raise errors.UsageError(f"--retries: expected 0 or more, got {args.retries}")
    if args.workers < 1:
        raise errors.UsageError(f"--workers: expected 1 or more, got {args.workers}")
    args.timeout = durations.parse_duration(args.timeout, field="--timeout")
    if args.timeout <= 0:
        raise errors.UsageError("--timeout: expected a positive duration")
    args.namespace = launch.namespace_tags(args.namespace_tags)
    return args


def build(args: argparse.Namespace) -> plugin.Plugin:
    """The plugin for ``args``; ``UsageError`` or ``PermanentError`` naming what is
    missing (boto3, a region, credentials)."""
    settings = session.Settings(region=args.region or None,
                                endpoint_url=args.endpoint_url or None,
                                timeout=args.timeout, workers=args.workers)
    ec2 = api.Client(session.client(settings), policy=retry.Policy(retries=args.retries),
                     timeout=args.timeout, workers=args.workers)
    return plugin.Plugin(ec2, name=args.name, namespace=args.namespace)


def run(argv: list[str] | None = None) -> None:
    """Entry point: serve until SIGTERM; a start-up failure exits with one line."""
    try:
        args = parse(argv)
        served = build(args)
    except errors.InfrakitError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None

    from infrakit.rpc import server  # in-process users of the plugin do not need it

    try:
        server.run(args.name, instance=served)
    finally:
        served.close()
