"""instance-aws against a real moto_server, through our fault proxy: what a Provision
launches, Describe's filters and pages, Destroy and Label, bad input, and the failures
EC2 has (throttling, 503s, lost and late answers, refused credentials)."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from infrakit import errors, testing_aws
from infrakit.plugins.instance.aws import plugin, tokens
from infrakit.spi import instance

pytestmark = pytest.mark.slow

Make = Callable[..., plugin.Plugin]
"""The ``make`` fixture: another instance-aws through the proxy."""


def group() -> str:
    """A group ID of this test's own: moto is shared by the session."""
    return f"g-{secrets.token_hex(4)}"


def spec(ami: str, gid: str, *, init: str = "", logical_id: str | None = None,
         **given: Any) -> instance.Spec:
    props = {"RunInstancesInput": {"ImageId": ami, "InstanceType": "t2.micro", **given},
             "Tags": {"project": "infrakit"}}
    return instance.Spec(properties=props, tags={"infrakit.group": gid, "tier": "web"},
                         init=init, logical_id=logical_id)


def live(ec2: Any, gid: str) -> list[dict[str, Any]]:
    """The group's instances as EC2 has them, terminated ones aside."""
    found = ec2.describe_instances(Filters=[{"Name": "tag:infrakit.group", "Values": [gid]}])
    return [each for reservation in found["Reservations"] for each in reservation["Instances"]
            if each["State"]["Name"] not in ("shutting-down", "terminated")]


def tags(found: dict[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in found.get("Tags") or []}


# Provision ----------------------------------------------------------------------------

async def test_an_instance_carries_the_tags_on_itself_and_its_volumes_and_init_as_user_data(
        aws: plugin.Plugin, ec2: Any, ami: str) -> None:
    gid = group()
    iid = await aws.provision(spec(ami, gid, init="#!/bin/sh\necho hello", BlockDeviceMappings=[
        {"DeviceName": "/dev/sdh", "Ebs": {"VolumeSize": 8}}]))
    [found] = live(ec2, gid)
    assert found["InstanceId"] == iid and found["InstanceType"] == "t2.micro"
    assert {k: v for k, v in tags(found).items() if k != tokens.TAG} == {
        "infrakit.group": gid, "tier": "web", "project": "infrakit",
        plugin.MANAGED: "instance-aws"}
    volumes = ec2.describe_volumes(Filters=[{"Name": "tag:infrakit.group", "Values": [gid]}])
    assert [v["Attachments"][0]["InstanceId"] for v in volumes["Volumes"]] == [iid]
    assert tags(volumes["Volumes"][0])["tier"] == "web"
    user_data = ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")
    assert base64.b64decode(user_data["UserData"]["Value"]).decode() == "#!/bin/sh\necho hello"


async def test_a_pet_whose_logical_id_is_an_ip_gets_that_private_ip(
        aws: plugin.Plugin, ec2: Any, ami: str) -> None:
    gid = group()
    ip_pet = await aws.provision(spec(ami, gid, logical_id="172.31.7.9"))
    named_pet = await aws.provision(spec(ami, gid, logical_id="db-1"))
    by_id = {each["InstanceId"]: each for each in live(ec2, gid)}
    assert by_id[ip_pet]["PrivateIpAddress"] == "172.31.7.9"
    assert tags(by_id[named_pet])[plugin.LOGICAL_ID] == "db-1"
    listed = await aws.describe_instances({"infrakit.group": gid})
    assert {(d.id, d.logical_id) for d in listed} == {(ip_pet, "172.31.7.9"),
                                                      (named_pet, "db-1")}


# Describe -----------------------------------------------------------------------------

async def test_describe_matches_every_tag_and_leaves_out_terminated_instances(
        aws: plugin.Plugin, ec2: Any, ami: str) -> None:
    gid = group()
    web = await aws.provision(spec(ami, gid))
    other = instance.Spec(properties=spec(ami, gid).properties,
                          tags={"infrakit.group": gid, "tier": "db"})
    db = await aws.provision(other)
    gone = await aws.provision(spec(ami, gid))
    ec2.terminate_instances(InstanceIds=[gone])
    assert [d.id for d in await aws.describe_instances({"infrakit.group": gid})] == sorted(
        [web, db])
    assert [d.id for d in await aws.describe_instances({"infrakit.group": gid,
                                                        "tier": "db"})] == [db]
    assert await aws.describe_instances({"infrakit.group": gid, "tier": "d*"}) == []
    starred = await aws.provision(instance.Spec(properties=other.properties,
                                                tags={"infrakit.group": gid, "tier": "d*"}))
    assert [d.id for d in await aws.describe_instances({"infrakit.group": gid,
                                                        "tier": "d*"})] == [starred]


async def test_describe_is_one_call_per_page_never_per_instance(
        aws: plugin.Plugin, proxy: testing_aws.FaultProxy, ec2: Any, ami: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    gid = group()
    for _ in range(12):  # one reservation each: EC2 pages by instances, moto by these
        ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "infrakit.group", "Value": gid}]}])
    monkeypatch.setattr(plugin, "PAGE", 5)
    proxy.clear()
    listed = await aws.describe_instances({"infrakit.group": gid}, properties=True)
    assert len(listed) == 12
    assert proxy.counts() == {"DescribeInstances": 3}  # 5 + 5 + 2
    assert aws.api.calls["DescribeInstances"] == 3


async def test_describe_with_properties_gives_the_instance_as_ec2_describes_it(
        aws: plugin.Plugin, ami: str) -> None:
    gid = group()
    iid = await aws.provision(spec(ami, gid))
    [bare] = await aws.describe_instances({"infrakit.group": gid})
    [full] = await aws.describe_instances({"infrakit.group": gid}, properties=True)
    assert bare.properties is None and "Properties" not in bare.to_wire()
    view = json.loads(json.dumps(full.to_wire()))["Properties"]
    assert view["InstanceId"] == iid and view["InstanceType"] == "t2.micro"
    assert view["ImageId"] == ami and view["State"]["Name"] in ("pending", "running")
    assert isinstance(view["LaunchTime"], str)


async def test_namespace_tags_go_on_every_instance_and_limit_every_list(
        make: Make, ec2: Any, ami: str) -> None:
    gid = group()
    ours, theirs = make(namespace={"cluster": "a"}), make(namespace={"cluster": "b"})
    iid = await ours.provision(spec(ami, gid))
    assert tags(live(ec2, gid)[0])["cluster"] == "a"
    assert [d.id for d in await ours.describe_instances({"infrakit.group": gid})] == [iid]
    assert await theirs.describe_instances({"infrakit.group": gid}) == []


async def test_a_restarted_plugin_finds_what_it_made(make: Make, ami: str) -> None:
    gid = group()
    first = make()
    made = sorted([await first.provision(spec(ami, gid)) for _ in range(3)])
    first.close()
    again = make()
    assert [d.id for d in await again.describe_instances({"infrakit.group": gid})] == made


# Destroy and Label --------------------------------------------------------------------

async def test_destroy_terminates_and_a_second_destroy_is_done_already(
        aws: plugin.Plugin, ec2: Any, ami: str) -> None:
    gid = group()
    iid = await aws.provision(spec(ami, gid))
    await aws.destroy(iid)
    assert live(ec2, gid) == []
    await aws.destroy(iid)
    await aws.destroy(instance.ID("i-0123456789abcdef0"))  # never existed: done


async def test_destroy_refuses_an_instance_infrakit_did_not_make(
        aws: plugin.Plugin, ec2: Any, ami: str) -> None:
    made = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    with pytest.raises(errors.PermanentError, match="not made by InfraKit"):
        await aws.destroy(made)
    state = ec2.describe_instances(InstanceIds=[made])["Reservations"][0]["Instances"][0]
    assert state["State"]["Name"] in ("pending", "running")
    ec2.terminate_instances(InstanceIds=[made])
    with pytest.raises(errors.NotFoundError, match="i-0123456789abcdef0"):
        await aws.destroy(instance.ID("web-1"))


async def test_label_adds_tags_and_refuses_aws_keys(aws: plugin.Plugin, ec2: Any,
                                                    ami: str) -> None:
    gid = group()
    iid = await aws.provision(spec(ami, gid))
    await aws.label(iid, {"infrakit.config_sha": "abc", "tier": "db"})
    found = tags(live(ec2, gid)[0])
    assert (found["infrakit.config_sha"], found["tier"], found["project"]) == (
        "abc", "db", "infrakit")
    with pytest.raises(errors.InvalidError, match=r"Labels\.aws:x"):
        await aws.label(iid, {"aws:x": "1"})


# Bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "field", "words"), [
    ({"InstanceTyp": "t2.micro"}, "Properties.RunInstancesInput.InstanceTyp",
     "did you mean InstanceType?"),
    ({"BlockDeviceMappings": [{"DeviceName": "/dev/sdh", "Ebs": {"VolumeSize": "big"}}]},
     "Properties.RunInstancesInput.BlockDeviceMappings[0].Ebs.VolumeSize", "invalid type"),
    ({"SecurityGroupIds": "sg-1"}, "Properties.RunInstancesInput.SecurityGroupIds",
     "invalid type"),
    ({"ClientToken": "same-for-all"}, "Properties.RunInstancesInput.ClientToken",
     "set by the plugin"),
])
async def test_bad_properties_are_refused_naming_the_field_before_any_request(
        aws: plugin.Plugin, proxy: testing_aws.FaultProxy, ami: str, given: dict[str, Any],
        field: str, words: str) -> None:
    proxy.clear()
    bad = spec(ami, group(), **given)
    for attempt in (aws.validate(bad.properties), aws.provision(bad)):
        with pytest.raises(errors.InvalidError) as caught:
            await attempt
        assert caught.value.message.startswith(field) and words in caught.value.message
        assert caught.value.data["field"] == field
    assert proxy.counts() == {}


async def test_valid_properties_validate_without_a_request(
        aws: plugin.Plugin, proxy: testing_aws.FaultProxy, ami: str) -> None:
    proxy.clear()
    await aws.validate(spec(ami, "g", SubnetId="subnet-1", Placement={
        "AvailabilityZone": "us-east-1a"}, IamInstanceProfile={"Name": "web"}).properties)
    assert proxy.counts() == {}


# Failures -----------------------------------------------------------------------------

async def test_throttled_requests_are_retried_then_the_instance_launched_once(
        aws: plugin.Plugin, proxy: testing_aws.FaultProxy, ec2: Any, ami: str) -> None:
    gid = group()
    proxy.clear()
    proxy.inject("throttle", count=2, action="RunInstances")
    proxy.inject("unavailable", count=1, action="DescribeInstances")
    iid = await aws.provision(spec(ami, gid))
    assert [each["InstanceId"] for each in live(ec2, gid)] == [iid]
    # Throttling means "not done": no look before the retry.
    assert proxy.counts() == {"RunInstances": 3}
    assert [d.id for d in await aws.describe_instances({"infrakit.group": gid})] == [iid]
    assert proxy.counts() == {"RunInstances": 3, "DescribeInstances": 2}


async def test_throttling_that_lasts_is_a_temporary_error_after_the_retries(
        aws: plugin.Plugin, proxy: testing_aws.FaultProxy, ec2: Any, ami: str) -> None:
    gid = group()
    proxy.clear()
    proxy.inject("throttle", count=100)
    with pytest.raises(errors.TemporaryError, match="RequestLimitExceeded") as caught:
        await aws.provision(spec(ami, gid))
    assert "after 6 attempts" in caught.value.message
    assert proxy.counts() == {"RunInstances": aws.api.policy.retries + 1}
    with pytest.raises(errors.TemporaryError, match="RequestLimitExceeded"):
        await aws.describe_instances({"infrakit.group": gid})
    proxy.clear()
    assert live(ec2, gid) == []


async def test_a_launch_whose_answer_was_lost_is_found_not_repeated(
        aws: plugin.Plugin, proxy: testing_aws.FaultProxy, ec2: Any, ami: str) -> None:
    gid = group()
    proxy.clear()
    proxy.inject("lost", count=1, action="RunInstances")  # EC2 launched; we heard a 503
    iid = await aws.provision(spec(ami, gid))
    assert [each["InstanceId"] for each in live(ec2, gid)] == [iid]
    assert proxy.counts() == {"RunInstances": 1, "DescribeInstances": 1}


async def test_a_launch_answered_too_late_is_found_not_repeated(
        make: Make, proxy: testing_aws.FaultProxy, ec2: Any, ami: str) -> None:
    slow = make(timeout=1.0)
    gid = group()
    proxy.inject("late", count=1, action="RunInstances", delay=3.0)  # past the read timeout
    iid = await slow.provision(spec(ami, gid))
    assert [each["InstanceId"] for each in live(ec2, gid)] == [iid]


async def test_a_provision_that_gave_up_hands_its_launch_to_the_next(
        aws: plugin.Plugin, proxy: testing_aws.FaultProxy, ec2: Any, ami: str) -> None:
    gid = group()
    proxy.inject("lost", count=1, action="RunInstances")
    proxy.inject("unavailable", count=100, action="DescribeInstances")  # cannot look
    with pytest.raises(errors.TemporaryError):
        await aws.provision(spec(ami, gid))
    [launched] = live(ec2, gid)  # the lost request's instance
    proxy.clear()
    # The group asks again with the same spec: that Provision looks first and finds it.
    assert await aws.provision(spec(ami, gid)) == launched["InstanceId"]
    assert len(live(ec2, gid)) == 1 and "RunInstances" not in proxy.counts()
    # Later identical requests are new instances.
    second = await aws.provision(spec(ami, gid))
    assert second != launched["InstanceId"] and len(live(ec2, gid)) == 2


async def test_refused_credentials_are_one_line_and_not_retried(
        aws: plugin.Plugin, proxy: testing_aws.FaultProxy, ami: str) -> None:
    proxy.clear()
    proxy.inject("auth", count=100)
    with pytest.raises(errors.PermanentError) as caught:
        await aws.describe_instances({"infrakit.group": "g"})
    assert caught.value.message.startswith("AWS credentials: EC2 could not validate")
    assert "\n" not in caught.value.message
    assert proxy.counts() == {"DescribeInstances": 1}
