"""``instance-aws``'s Properties, as InfraKit's AWS plugin took them, and the RunInstances
request they make with a Spec::

    {"RunInstancesInput": {"ImageId": "ami-0abcdef1234567890", "InstanceType": "t3.micro",
                           "SubnetId": "subnet-…", "SecurityGroupIds": ["sg-…"],
                           "KeyName": "ops", "IamInstanceProfile": {"Name": "web"},
                           "BlockDeviceMappings": [{"DeviceName": "/dev/xvda",
                                                    "Ebs": {"VolumeSize": 20}}],
                           "Placement": {"AvailabilityZone": "eu-west-1a"}},
     "Tags": {"project": "web"}}

``RunInstancesInput`` is EC2's RunInstances request with the API's field names, passed to
boto3 as it is, except what each Provision sets: ``MinCount``/``MaxCount`` (1),
``UserData`` (the Spec's Init, when there is one), ``ClientToken`` (:mod:`.tokens`), the
private IP (a LogicalID that is an IPv4 address) and the tags (``TagSpecifications`` for the
instance and its volumes, merged into any given). ``null`` values are dropped, so the
original's documents with every field spelled out (``"RamdiskId": null``) still read.

We check what we can (an object, ``ImageId`` a string, no unknown top-level key, no
``ClientToken``, counts of 1); botocore checks the rest of the request against EC2's model
(:meth:`.api.Client.check`), and each problem names its field under
``Properties.RunInstancesInput``.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from infrakit import errors
from infrakit.plugins import properties
from infrakit.spi import instance
from infrakit.spi.wire import Tags, Wire

ROOT = "Properties.RunInstancesInput"
"""Where the fields of a RunInstances request live in a document."""
TAGGED = ("instance", "volume")
"""The resources a Provision tags: the instance and the volumes launched with it."""


def _without_nulls(value: Any) -> Any:
    """``value`` without ``null`` members, at every depth (Go wrote unset fields so)."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value if item is not None]
    return value


class Properties(Wire):
    """What one EC2 instance is."""

    run_instances_input: Annotated[dict[str, Any], BeforeValidator(_without_nulls)]
    """EC2's RunInstances request, with the API's field names."""
    tags: Tags = Field(default_factory=dict)
    """Tags for the instance and its volumes (the Spec's tags win)."""


def parse(raw: Any) -> Properties:
    """``raw`` as :class:`Properties`, or ``InvalidError`` naming each bad field."""
    props = properties.parse(Properties, raw)
    given = props.run_instances_input
    image = given.get("ImageId")
    if image is None and "LaunchTemplate" not in given:
        raise errors.InvalidError(f"{ROOT}.ImageId: required (the AMI to launch), unless "
                                  "LaunchTemplate names one", field=f"{ROOT}.ImageId")
    if image is not None and (not isinstance(image, str) or not image.strip()):
        raise errors.InvalidError(f"{ROOT}.ImageId: expected an AMI ID such as "
                                  f"ami-0abcdef1234567890, got {image!r}",
                                  field=f"{ROOT}.ImageId")
    for name in ("MinCount", "MaxCount"):
        if given.get(name, 1) != 1:
            raise errors.InvalidError(f"{ROOT}.{name}: a Provision launches one instance; "
                                      f"expected 1 or nothing, got {given[name]!r}",
                                      field=f"{ROOT}.{name}")
    if "ClientToken" in given:
        raise errors.InvalidError(f"{ROOT}.ClientToken: set by the plugin, one per Provision "
                                  "(the same token on every instance would launch only one); "
                                  "remove it", field=f"{ROOT}.ClientToken")
    return props


def request(props: Properties, spec: instance.Spec, *, tags: dict[str, str]) -> dict[str, Any]:
    """The RunInstances request for ``spec``: ``props``' input with one instance, the Init
    as user data, the LogicalID's private IP and ``tags`` on the instance and its volumes."""
    params = copy.deepcopy(props.run_instances_input)
    params["MinCount"] = params["MaxCount"] = 1
    if spec.init.strip():
        params["UserData"] = spec.init  # boto3 encodes it in base64
    if spec.logical_id is not None and is_ipv4(spec.logical_id):
        _set_private_ip(params, spec.logical_id)
    params["TagSpecifications"] = tag_specifications(params.get("TagSpecifications"), tags)
    return params


def is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _set_private_ip(params: dict[str, Any], address: str) -> None:
    """The pet's IP on its first network interface when the input declares interfaces (EC2
    refuses both), else on the instance."""
    interfaces = params.get("NetworkInterfaces")
    if isinstance(interfaces, list) and interfaces and isinstance(interfaces[0], dict):
        interfaces[0]["PrivateIpAddress"] = address
    else:
        params["PrivateIpAddress"] = address


def tag_specifications(given: Any, tags: dict[str, str]) -> Any:
    """``given`` TagSpecifications with ``tags`` merged into those for the instance and its
    volumes (added when missing); ours win. Something malformed is left for botocore to
    name."""
    if given is not None and not (isinstance(given, list)
                                  and all(isinstance(item, dict) for item in given)):
        return given
    merged = [dict(item) for item in given or []]
    for resource in TAGGED:
        entry = next((item for item in merged if item.get("ResourceType") == resource), None)
        if entry is None:
            entry = {"ResourceType": resource, "Tags": []}
            merged.append(entry)
        theirs = entry.get("Tags") or []
        if not isinstance(theirs, list):
            continue
        kept = [tag for tag in theirs if not (isinstance(tag, dict) and tag.get("Key") in tags)]
        entry["Tags"] = [*kept, *({"Key": key, "Value": value}
                                  for key, value in sorted(tags.items()))]
    return merged
