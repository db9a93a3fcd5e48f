"""Fixtures of the EC2 tests: one real ``moto_server`` per session (on 127.0.0.1), a fault
proxy of ours in front of it per test, and instance-aws talking to the proxy with dummy
credentials set only in the test's environment."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infrakit import testing, testing_aws
from infrakit.plugins.instance.aws import api, plugin, retry, session

FAST = retry.Policy(retries=5, base=0.01, cap=0.05, rng=random.Random(7))
"""Retries as the plugin's, without the waits."""


@pytest.fixture(scope="session")
def moto() -> Iterator[testing_aws.MotoServer]:
    reason = testing_aws.missing()
    if reason is not None:
        testing.missing_engine(f"aws tests: {reason}")  # make test fails, a developer skips
    server = testing_aws.MotoServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def ec2(moto: testing_aws.MotoServer) -> Any:
    """A boto3 client of the test's own, straight to moto (the world as it is)."""
    return testing_aws.client(moto.url)


@pytest.fixture(scope="session")
def ami(ec2: Any) -> str:
    return testing_aws.image(ec2)


@pytest.fixture(scope="session")
def session_proxy(moto: testing_aws.MotoServer) -> Iterator[testing_aws.FaultProxy]:
    with testing_aws.FaultProxy(moto.url) as started:
        yield started


@pytest.fixture
def proxy(session_proxy: testing_aws.FaultProxy) -> testing_aws.FaultProxy:
    """The fault proxy in front of moto, with no fault left and counts from zero."""
    session_proxy.clear()
    return session_proxy


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and the region, in this test's environment only."""
    for name in testing_aws.UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in testing_aws.ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def boto(session_proxy: testing_aws.FaultProxy) -> Any:
    """The plugin's boto3 client on the proxy, built once (boto3 clients are thread-safe;
    building one loads EC2's whole model)."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in testing_aws.ENV.items():
            env.setenv(name, value)
        return session.client(session.Settings(endpoint_url=session_proxy.url))


Make = Callable[..., plugin.Plugin]


@pytest.fixture
def make(proxy: testing_aws.FaultProxy, aws_env: None, boto: Any) -> Iterator[Make]:
    """``make(timeout=…, policy=…, namespace=…)``: an instance-aws through the fault proxy
    (retrying fast unless told otherwise), closed at the end of the test."""
    made: list[plugin.Plugin] = []

    def build(*, timeout: float | None = None, policy: retry.Policy = FAST,
              namespace: dict[str, str] | None = None) -> plugin.Plugin:
        client = boto if timeout is None else session.client(
            session.Settings(endpoint_url=proxy.url, timeout=timeout))
        made.append(plugin.Plugin(api.Client(client, policy=policy, timeout=timeout or 15.0),
                                  namespace=namespace))
        return made[-1]

    try:
        yield build
    finally:
        for each in made:
            each.close()


@pytest.fixture
def aws(make: Make) -> plugin.Plugin:
    """instance-aws through the fault proxy, retrying fast."""
    return make()
