"""Groups of EC2 instances end to end: infrakit-group-default (polling every second),
infrakit-instance-aws and infrakit-flavor-vanilla as their own processes, the plugin on a
real moto_server through our fault proxy, driven by the ``infrakit`` CLI; what EC2 holds is
read straight from moto with boto3."""

from __future__ import annotations

import json
import pathlib
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from infrakit import testing_aws, testing_stack
from infrakit.testing import wait_for

pytestmark = pytest.mark.slow

GONE = ("shutting-down", "terminated")
Stack = testing_stack.Stack


@pytest.fixture(scope="module")
def proxy(moto: testing_aws.MotoServer) -> Iterator[testing_aws.FaultProxy]:
    with testing_aws.FaultProxy(moto.url) as started:
        yield started


@pytest.fixture(scope="module")
def stack(proxy: testing_aws.FaultProxy) -> Iterator[Stack]:
    """The three plugin processes on a private plugins dir, the plugin on the proxy."""
    started = Stack(pathlib.Path(tempfile.mkdtemp(prefix="ika-")),
                    environ=testing_aws.environment(), raw=False, cli_timeout=120.0,
                    rpc_timeout=30.0)
    try:
        started.start("instance-aws", "infrakit-instance-aws", "--endpoint-url", proxy.url,
                      "--log", "4")
        started.start("flavor-vanilla", "infrakit-flavor-vanilla", "--log", "2")
        started.start("group", "infrakit-group-default", "--poll-interval", "1s", "--log", "4")
        started.wait_ready()
        yield started
    finally:
        started.close(show=("group", "instance-aws"))  # the logs, shown when a test failed


def web(gid: str, ami: str, *, size: int, instance_type: str = "t2.micro") -> dict[str, Any]:
    return {"ID": gid, "Properties": {
        "Instance": {"Plugin": "instance-aws", "Properties": {
            "RunInstancesInput": {"ImageId": ami, "InstanceType": instance_type,
                                  "Placement": {"AvailabilityZone": "us-east-1a"}},
            "Tags": {"project": "e2e"}}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {"Init": ["echo hello"]}},
        "Allocation": {"Size": size},
        "Update": {"MaxSurge": 5, "MaxUnavailable": 5},
        # Members terminated on purpose die young: not a crash loop to back off from here.
        "Health": {"Interval": "0s", "CrashLoop": {"Threshold": 100}}}}


def instances(ec2: Any, gid: str) -> list[dict[str, Any]]:
    """Every instance EC2 holds for the group, terminated ones included."""
    found = ec2.describe_instances(Filters=[{"Name": "tag:infrakit.group", "Values": [gid]}])
    return [each for reservation in found["Reservations"] for each in reservation["Instances"]]


def live(ec2: Any, gid: str) -> dict[str, dict[str, Any]]:
    return {each["InstanceId"]: each for each in instances(ec2, gid)
            if each["State"]["Name"] not in GONE}


def settled(stack: Stack, ec2: Any, gid: str, size: int) -> set[str] | None:
    """The members' IDs once the group is converged on ``size`` live instances, else None."""
    done, members = stack.converged(gid)
    ids = {m["ID"] for m in members}
    return ids if done and len(ids) == size and ids == set(live(ec2, gid)) else None


def converged(stack: Stack, ec2: Any, gid: str, size: int) -> set[str]:
    return wait_for(lambda: settled(stack, ec2, gid, size),
                    what=f"{size} live members of {gid}", timeout=90)


def test_a_group_of_10_converges_heals_rolls_and_destroys(
        stack: Stack, ec2: Any, ami: str) -> None:
    stack.commit(web("web", ami, size=10))
    first = converged(stack, ec2, "web", 10)
    assert len(instances(ec2, "web")) == 10  # no launch repeated or wasted

    victim = sorted(first)[0]
    ec2.terminate_instances(InstanceIds=[victim])  # from outside, straight to EC2
    healed = wait_for(lambda: (found := settled(stack, ec2, "web", 10)) and found - first
                      and found, what="the terminated member replaced", timeout=90)
    assert victim not in healed and len(healed & first) == 9

    stack.commit(web("web", ami, size=10, instance_type="t2.small"))
    wait_for(lambda: [i["InstanceType"] for i in live(ec2, "web").values()] == ["t2.small"] * 10,
             what="every member on t2.small", timeout=120)
    rolled = converged(stack, ec2, "web", 10)
    assert not rolled & healed

    listed = json.loads(stack.cli("instance", "--name", "instance-aws", "describe", "--tags",
                                  "infrakit.group=web", "--properties", "-o", "json").stdout)
    assert {d["ID"] for d in listed} == rolled
    assert {d["Properties"]["InstanceType"] for d in listed} == {"t2.small"}
    assert {d["Properties"]["Placement"]["AvailabilityZone"] for d in listed} == {"us-east-1a"}

    stack.cli("group", "destroy", "web")
    wait_for(lambda: live(ec2, "web") == {}, what="no live instance of web left", timeout=60)


def test_a_group_converges_through_throttling_503s_and_lost_answers_without_duplicates(
        stack: Stack, proxy: testing_aws.FaultProxy, ec2: Any, ami: str) -> None:
    proxy.clear()
    proxy.inject("throttle", count=6, action="RunInstances")
    proxy.inject("lost", count=2, action="RunInstances")
    proxy.inject("unavailable", count=3, action="DescribeInstances")
    stack.commit(web("rough", ami, size=5))
    converged(stack, ec2, "rough", 5)
    assert proxy.pending() == 0 and sum(proxy.injected.values()) == 11
    assert len(instances(ec2, "rough")) == 5  # the two lost launches were found, not repeated
    stack.cli("group", "destroy", "rough")
    wait_for(lambda: live(ec2, "rough") == {}, what="nothing of rough left", timeout=60)


def test_a_restarted_plugin_keeps_the_group_it_made(
        stack: Stack, proxy: testing_aws.FaultProxy, ec2: Any, ami: str) -> None:
    stack.commit(web("phoenix", ami, size=3))
    before = converged(stack, ec2, "phoenix", 3)
    stack.restart("instance-aws")
    proxy.clear()
    wait_for(lambda: proxy.answers().get("DescribeInstances", 0) >= 3,
             what="a few polls of the group through the new plugin")
    assert converged(stack, ec2, "phoenix", 3) == before
    assert len(instances(ec2, "phoenix")) == 3
    stack.cli("group", "destroy", "phoenix")
    wait_for(lambda: live(ec2, "phoenix") == {}, what="nothing of phoenix left", timeout=60)
