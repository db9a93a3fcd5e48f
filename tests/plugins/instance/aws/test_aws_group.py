"""Groups of EC2 instances end to end: infrakit-group-default (polling every second),
infrakit-instance-aws and infrakit-flavor-vanilla as their own processes, the plugin on a
real moto_server through our fault proxy, driven by the ``infrakit`` CLI; what EC2 holds is
read straight from moto with boto3."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from infrakit import testing, testing_aws
from infrakit.rpc import sockets, sync
from infrakit.testing import wait_for

pytestmark = pytest.mark.slow

BIN = pathlib.Path(sys.executable).parent
GONE = ("shutting-down", "terminated")


class Stack:
    """The three plugin processes on a private plugins dir, and the CLI."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.sockets = pathlib.Path(tempfile.mkdtemp(prefix="ika-"))
        self.env = {**testing_aws.environment(), "INFRAKIT_PLUGINS_DIR": str(self.sockets),
                    "INFRAKIT_HOME": str(self.sockets)}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, *names: str) -> None:
        argvs = {
            "instance-aws": ["infrakit-instance-aws", "--endpoint-url", self.endpoint,
                             "--log", "4"],
            "flavor-vanilla": ["infrakit-flavor-vanilla", "--log", "2"],
            "group": ["infrakit-group-default", "--poll-interval", "1s", "--log", "4"]}
        for name in names or tuple(argvs):
            argv = argvs[name]
            with (self.sockets / f"{name}.log").open("ab") as log:
                self.processes[name] = subprocess.Popen(
                    [str(BIN / argv[0]), *argv[1:]], env=self.env, stdout=log, stderr=log,
                    stdin=subprocess.DEVNULL)
            wait_for(lambda n=name: sockets.is_live(self.sockets / n),  # type: ignore[misc]
                     what=f"{name} listening", timeout=30)

    def stop(self, name: str) -> None:
        testing.stop_processes([self.processes.pop(name)], timeout=10)

    def close(self) -> None:
        testing.stop_processes(list(self.processes.values()), timeout=10)
        shutil.rmtree(self.sockets, ignore_errors=True)

    def log(self, name: str) -> str:
        return (self.sockets / f"{name}.log").read_text(errors="replace")[-3000:]

    def cli(self, *args: str) -> str:
        done = subprocess.run([str(BIN / "infrakit"), *args], env=self.env, text=True,
                              capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, f"infrakit {' '.join(args)}: {done.stderr}"
        return done.stdout

    def commit(self, spec: dict[str, Any]) -> None:
        path = self.sockets / f"{spec['ID']}-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(spec))
        self.cli("group", "commit", str(path))

    def members(self, gid: str) -> tuple[bool, set[str]]:
        client = sync.Client(self.sockets / "group", timeout=30.0)
        found = client.call("Group.DescribeGroup", {"ID": gid})["Description"]
        return bool(found["Converged"]), {m["ID"] for m in found["Instances"] or []}


@pytest.fixture(scope="module")
def proxy(moto: testing_aws.MotoServer) -> Iterator[testing_aws.FaultProxy]:
    with testing_aws.FaultProxy(moto.url) as started:
        yield started


@pytest.fixture(scope="module")
def stack(proxy: testing_aws.FaultProxy) -> Iterator[Stack]:
    started = Stack(proxy.url)
    try:
        started.start()
        yield started
    finally:
        for name in ("group", "instance-aws"):  # shown when a test failed
            print(f"--- {name} log\n{started.log(name)}")
        started.close()


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
    done, ids = stack.members(gid)
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
                                  "infrakit.group=web", "--properties", "-o", "json"))
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
    stack.stop("instance-aws")
    stack.start("instance-aws")
    proxy.clear()
    wait_for(lambda: proxy.answers().get("DescribeInstances", 0) >= 3,
             what="a few polls of the group through the new plugin")
    assert converged(stack, ec2, "phoenix", 3) == before
    assert len(instances(ec2, "phoenix")) == 3
    stack.cli("group", "destroy", "phoenix")
    wait_for(lambda: live(ec2, "phoenix") == {}, what="nothing of phoenix left", timeout=60)
