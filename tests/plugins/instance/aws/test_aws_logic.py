"""instance-aws's pure parts, without EC2: the Properties and the request they make, the
idempotency tokens, backoff, and what each EC2 failure becomes."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from infrakit import errors
from infrakit.plugins.instance.aws import api, failures, properties, retry, tokens
from infrakit.spi import instance

AMI = "ami-0abcdef1234567890"


def spec(props: Any, *, init: str = "", logical_id: str | None = None) -> instance.Spec:
    return instance.Spec(properties=props, tags={"infrakit.group": "g"}, init=init,
                         logical_id=logical_id)


def request(props: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return properties.request(properties.parse(props), spec(props, **kwargs),
                              tags={"infrakit.group": "g", "tier": "web"})


def tags_of(params: dict[str, Any], resource: str) -> dict[str, str]:
    entry = next(e for e in params["TagSpecifications"] if e["ResourceType"] == resource)
    return {tag["Key"]: tag["Value"] for tag in entry["Tags"]}


# Properties ---------------------------------------------------------------------------

def test_the_originals_document_with_nulls_reads() -> None:
    props = properties.parse({"RunInstancesInput": {
        "ImageId": AMI, "RamdiskId": None, "Placement": {"AvailabilityZone": "a", "Tenancy": None},
        "NetworkInterfaces": [{"DeviceIndex": 0, "NetworkInterfaceId": None}]},
        "Tags": None})
    assert props.run_instances_input == {"ImageId": AMI, "Placement": {"AvailabilityZone": "a"},
                                         "NetworkInterfaces": [{"DeviceIndex": 0}]}
    assert props.tags == {}


@pytest.mark.parametrize(("raw", "field", "words"), [
    (None, "Properties.RunInstancesInput", "required"),
    ([], "Properties", "object"),
    ({"RunInstancesInput": "ami-1"}, "Properties.RunInstancesInput", "object"),
    ({"RunInstancesInput": {}}, "Properties.RunInstancesInput.ImageId", "required"),
    ({"RunInstancesInput": {"ImageId": 7}}, "Properties.RunInstancesInput.ImageId", "AMI"),
    ({"RunInstancesInput": {"ImageId": AMI}, "Tag": {}}, "Properties.Tag", "did you mean Tags"),
    ({"RunInstancesInput": {"ImageId": AMI}, "Tags": {"a": 1}}, "Properties.Tags.a", "string"),
    ({"RunInstancesInput": {"ImageId": AMI, "MaxCount": 3}},
     "Properties.RunInstancesInput.MaxCount", "one instance"),
    ({"RunInstancesInput": {"ImageId": AMI, "ClientToken": "x"}},
     "Properties.RunInstancesInput.ClientToken", "set by the plugin"),
])
def test_bad_properties_name_the_field(raw: Any, field: str, words: str) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        properties.parse(raw)
    assert caught.value.message.startswith(field), caught.value.message
    assert words in caught.value.message
    assert "\n" not in caught.value.message


def test_a_launch_template_may_name_the_image() -> None:
    props = properties.parse({"RunInstancesInput": {
        "LaunchTemplate": {"LaunchTemplateId": "lt-1"}}})
    assert "ImageId" not in props.run_instances_input


def test_the_request_launches_one_instance_with_init_as_user_data_and_tags_on_both() -> None:
    params = request({"RunInstancesInput": {"ImageId": AMI, "UserData": "old"}}, init="echo hi")
    assert (params["MinCount"], params["MaxCount"], params["UserData"]) == (1, 1, "echo hi")
    assert tags_of(params, "instance") == tags_of(params, "volume") == {
        "infrakit.group": "g", "tier": "web"}


def test_a_given_tag_specification_without_tags_gets_ours() -> None:
    given = [{"ResourceType": "instance"}]
    params = request({"RunInstancesInput": {"ImageId": AMI, "TagSpecifications": given}})
    assert tags_of(params, "instance") == {"infrakit.group": "g", "tier": "web"}


def test_given_tag_specifications_are_merged_and_ours_win() -> None:
    given = [{"ResourceType": "instance", "Tags": [{"Key": "tier", "Value": "db"},
                                                  {"Key": "owner", "Value": "ops"}]},
             {"ResourceType": "network-interface", "Tags": [{"Key": "n", "Value": "1"}]}]
    params = request({"RunInstancesInput": {"ImageId": AMI, "TagSpecifications": given}})
    assert tags_of(params, "instance") == {"owner": "ops", "infrakit.group": "g", "tier": "web"}
    assert tags_of(params, "network-interface") == {"n": "1"}
    assert tags_of(params, "volume") == {"infrakit.group": "g", "tier": "web"}
    assert given[0]["Tags"][0] == {"Key": "tier", "Value": "db"}  # the Properties untouched


@pytest.mark.parametrize(("given", "logical_id", "where"), [
    ({}, "10.0.0.7", ("PrivateIpAddress",)),
    ({"NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": "subnet-1"}]}, "10.0.0.7",
     ("NetworkInterfaces", 0, "PrivateIpAddress")),
    ({}, "db-1", None),
])
def test_a_logical_id_that_is_an_ip_is_the_private_ip(given: dict[str, Any], logical_id: str,
                                                      where: tuple[Any, ...] | None) -> None:
    params = request({"RunInstancesInput": {"ImageId": AMI, **given}}, logical_id=logical_id)
    if where is None:
        assert "PrivateIpAddress" not in params
        return
    found: Any = params
    for step in where:
        found = found[step]
    assert found == logical_id


# Tokens -------------------------------------------------------------------------------

def test_a_stamp_carries_the_token_as_client_token_and_instance_tag_only() -> None:
    params = request({"RunInstancesInput": {"ImageId": AMI}})
    stamped = tokens.stamp(params, "t1")
    assert stamped["ClientToken"] == "t1"
    assert tags_of(stamped, "instance")[tokens.TAG] == "t1"
    assert tokens.TAG not in tags_of(stamped, "volume")
    assert tokens.TAG not in tags_of(params, "instance")  # the request itself unchanged
    assert tokens.fingerprint(params) == tokens.fingerprint(
        request({"RunInstancesInput": {"ImageId": AMI}}))


def test_the_ledger_hands_a_kept_token_to_the_next_identical_request_once() -> None:
    now = [0.0]
    ledger = tokens.Ledger(keep=60.0, clock=lambda: now[0])
    ledger.keep("spec-a", "t1")
    ledger.keep("spec-a", "t2")
    assert ledger.take("spec-b") is None
    assert [ledger.take("spec-a"), ledger.take("spec-a"), ledger.take("spec-a")] == [
        "t1", "t2", None]
    ledger.keep("spec-a", "t3")
    now[0] = 61.0
    assert ledger.take("spec-a") is None and len(ledger) == 0


def test_the_ledger_is_bounded() -> None:
    ledger = tokens.Ledger(limit=2)
    for token in ("t1", "t2", "t3"):
        ledger.keep("k", token)
    assert len(ledger) == 2 and ledger.take("k") == "t2"


# Backoff ------------------------------------------------------------------------------

def test_backoff_grows_is_capped_and_jittered() -> None:
    policy = retry.Policy(base=0.25, cap=4.0, rng=random.Random(1))
    waits = [policy.delay(attempt) for attempt in range(8)]
    for attempt, wait in enumerate(waits):
        step = min(4.0, 0.25 * 2 ** attempt)
        assert step / 2 <= wait <= step
    other = retry.Policy(base=0.25, cap=4.0, rng=random.Random(2))
    assert waits != [other.delay(attempt) for attempt in range(8)]


def test_attempts_end_after_the_retries_or_the_budget() -> None:
    attempts = retry.Policy(retries=2, base=0.01).attempts()
    assert [attempts.next_delay() is not None for _ in range(3)] == [True, True, False]
    broke = retry.Policy(retries=9, base=10.0, cap=10.0, budget=1.0).attempts()
    assert broke.next_delay() is None


# Failures -----------------------------------------------------------------------------

def client_error(code: str, status: int, message: str = "m") -> Exception:
    botocore = pytest.importorskip("botocore.exceptions")
    return botocore.ClientError(  # type: ignore[no-any-return]
        {"Error": {"Code": code, "Message": message},
         "ResponseMetadata": {"HTTPStatusCode": status}}, "RunInstances")


@pytest.mark.parametrize(("code", "status", "kind", "error"), [
    ("RequestLimitExceeded", 400, failures.Kind.THROTTLED, errors.TemporaryError),
    ("Unavailable", 503, failures.Kind.UNCERTAIN, errors.TemporaryError),
    ("SomethingNew", 500, failures.Kind.UNCERTAIN, errors.TemporaryError),
    ("InsufficientInstanceCapacity", 500, failures.Kind.CAPACITY, errors.TemporaryError),
    ("InsufficientInstanceCapacity", 400, failures.Kind.CAPACITY, errors.TemporaryError),
    ("AuthFailure", 401, failures.Kind.CREDENTIALS, errors.PermanentError),
    ("UnauthorizedOperation", 403, failures.Kind.DENIED, errors.PermanentError),
    ("InvalidInstanceID.NotFound", 400, failures.Kind.NOT_FOUND, errors.NotFoundError),
    ("InvalidAMIID.Malformed", 400, failures.Kind.INVALID, errors.InvalidError),
    ("InstanceLimitExceeded", 400, failures.Kind.REFUSED, errors.PermanentError),
])
def test_each_ec2_error_becomes_the_right_failure(code: str, status: int, kind: failures.Kind,
                                                  error: type[errors.InfrakitError]) -> None:
    failure = failures.classify(client_error(code, status), operation="RunInstances")
    assert failure.kind is kind
    made = failure.error(attempts=3)
    assert type(made) is error
    assert code in made.message or kind is failures.Kind.CREDENTIALS
    assert "\n" not in made.message


def test_missing_credentials_say_where_to_put_them() -> None:
    botocore = pytest.importorskip("botocore.exceptions")
    made = failures.classify(botocore.NoCredentialsError(), operation="DescribeInstances").error()
    assert isinstance(made, errors.PermanentError)
    assert "AWS_ACCESS_KEY_ID" in made.message and "\n" not in made.message


def test_connection_failures_say_whether_the_request_may_have_been_applied() -> None:
    botocore = pytest.importorskip("botocore.exceptions")
    refused = botocore.EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    closed = botocore.ConnectionClosedError(endpoint_url="http://127.0.0.1:1")
    assert failures.classify(refused, operation="RunInstances").kind is failures.Kind.UNREACHABLE
    assert failures.classify(closed, operation="RunInstances").uncertain
    assert failures.classify(TimeoutError(), operation="RunInstances").uncertain


def test_botocores_report_names_each_field_under_the_root() -> None:
    report = ('Parameter validation failed:\n'
              'Unknown parameter in input: "InstanceTyp", must be one of: ImageId, InstanceType\n'
              'Missing required parameter in BlockDeviceMappings[0]: "DeviceName"\n'
              'Invalid type for parameter BlockDeviceMappings[0].Ebs.VolumeSize, value: x, '
              "type: <class 'str'>, valid types: <class 'int'>")
    found = [str(p) for p in failures.param_problems(report, root="Properties.RunInstancesInput")]
    assert found == [
        "Properties.RunInstancesInput.InstanceTyp: unknown field; did you mean InstanceType?",
        "Properties.RunInstancesInput.BlockDeviceMappings[0].DeviceName: required",
        "Properties.RunInstancesInput.BlockDeviceMappings[0].Ebs.VolumeSize: invalid type: "
        "value: x, type: <class 'str'>, valid types: <class 'int'>"]


# A request we stopped waiting for -----------------------------------------------------

class _Events:
    def register(self, *_: Any) -> None:
        pass

    def unregister(self, *_: Any) -> None:
        pass


class BlockedEC2:
    """A stand-in boto3 client whose RunInstances answers only once released."""

    def __init__(self) -> None:
        self.meta = type("Meta", (), {"events": _Events()})()
        self.release = threading.Event()

    def run_instances(self, **_: Any) -> dict[str, Any]:
        self.release.wait(30)
        return {"Instances": [{"InstanceId": "i-0123456789abcdef0"}]}


async def test_a_request_past_its_timeout_is_kept_and_its_answer_still_used(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "MARGIN", 0.0)
    ec2 = BlockedEC2()
    client = api.Client(ec2, timeout=0.05, workers=2)
    try:
        with pytest.raises(failures.Failure) as caught:
            await client.once("RunInstances", {})
        failure = caught.value
        assert failure.uncertain and failure.pending is not None
        with pytest.raises(TimeoutError):  # still running: nothing to use yet
            await client.settle(failure.pending)
        ec2.release.set()
        client.timeout = 30.0
        answer = await client.settle(failure.pending)
        assert answer == {"Instances": [{"InstanceId": "i-0123456789abcdef0"}]}
    finally:
        ec2.release.set()
        client.close()
