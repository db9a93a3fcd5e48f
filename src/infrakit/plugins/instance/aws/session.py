"""boto3 (the ``aws`` extra, loaded on first use) and the plugin's one EC2 client.

Credentials and region come from where every AWS tool finds them (the environment,
``~/.aws/config`` and ``~/.aws/credentials``, an instance role); ``--region`` overrides the
region and ``--endpoint-url`` points the client at an EC2-compatible API (moto in the tests).
What cannot work is said at start, in one line naming the cause: boto3 missing, no region,
a region EC2 does not have, no credentials, a profile that does not exist.

botocore's own retries are off: :mod:`.retry` retries, so that every request sent is one we
counted and chose to send.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from typing import Any

from infrakit import errors

EXTRA = "pip install 'infrakit[aws]'"
CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection to EC2."""
_REGION_HINT = ("pass --region, or set AWS_REGION (or AWS_DEFAULT_REGION), or region in "
                "~/.aws/config")
_CREDENTIALS_HINT = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or write "
                     "~/.aws/credentials, or run where an instance role provides them")


@functools.cache
def boto3() -> Any:
    """The ``boto3`` module; ``PermanentError`` saying what to install when it is missing."""
    try:
        return importlib.import_module("boto3")
    except ImportError:
        raise errors.PermanentError(f"instance-aws needs boto3: {EXTRA}") from None


@dataclass(frozen=True)
class Settings:
    """Where and how to reach EC2 (the plugin's flags)."""

    region: str | None = None
    """``--region``; else the environment's or the config file's."""
    endpoint_url: str | None = None
    """``--endpoint-url``: an EC2-compatible API instead of AWS's."""
    timeout: float = 15.0
    """Seconds one request may take to answer."""
    workers: int = 16
    """Requests in flight at once (threads, and connections in the pool)."""


def client(settings: Settings) -> Any:
    """The EC2 client for ``settings``; ``UsageError`` naming the cause when it cannot work."""
    boto = boto3()
    botocore = importlib.import_module("botocore.exceptions")
    config = importlib.import_module("botocore.config")
    try:
        session = boto.session.Session(region_name=settings.region or None)
        region = session.region_name
    except botocore.ProfileNotFound as exc:
        raise errors.UsageError(f"AWS profile: {exc}") from None
    if not region:
        raise errors.UsageError(f"no AWS region: {_REGION_HINT}")
    if not settings.endpoint_url and region not in known_regions(session):
        raise errors.UsageError(
            f"unknown AWS region {region!r} (from {_region_source(settings)}): EC2 has no such "
            "region; for another EC2-compatible API pass --endpoint-url")
    try:
        credentials = session.get_credentials()
    except botocore.BotoCoreError as exc:
        raise errors.UsageError(f"AWS credentials: {exc}") from None
    if credentials is None:
        raise errors.UsageError(f"no AWS credentials found: {_CREDENTIALS_HINT}")
    options = config.Config(
        region_name=region, connect_timeout=CONNECT_TIMEOUT, read_timeout=settings.timeout,
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=settings.workers, user_agent_extra="infrakit-instance-aws")
    try:
        return session.client("ec2", endpoint_url=settings.endpoint_url or None, config=options)
    except ValueError as exc:  # botocore's word for a malformed endpoint URL
        raise errors.UsageError(f"--endpoint-url: {exc}") from None


def known_regions(session: Any) -> set[str]:
    """Every region botocore knows EC2 in, across partitions (China, GovCloud …)."""
    return {region for partition in session.get_available_partitions()
            for region in session.get_available_regions("ec2", partition_name=partition)}


def _region_source(settings: Settings) -> str:
    if settings.region:
        return "--region"
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(name):
            return name
    return "the AWS config file"
