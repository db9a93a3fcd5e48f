"""Every request and result in the v0.5 wire samples parses into our types and back, equal."""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

import pytest

from infrakit.spi import flavor, group, handshake, instance
from infrakit.spi.wire import Wire

# Requests and answers recorded from InfraKit v0.5's own plugins, kept beside this test.
SAMPLES = pathlib.Path(__file__).parent / "data" / "wire-samples-v0.5.txt"

# method → (params type, result type)
TYPES: dict[str, tuple[type[Wire] | None, type[Wire]]] = {
    "Handshake.Implements": (None, handshake.ImplementsResponse),
    "Handshake.Types": (None, handshake.TypesResponse),
    "Flavor.Validate": (flavor.ValidateRequest, instance.OKResponse),
    "Flavor.Prepare": (flavor.PrepareRequest, flavor.PrepareResponse),
    "Flavor.Drain": (flavor.InstanceRequest, instance.OKResponse),
    "Group.CommitGroup": (group.CommitRequest, group.CommitResponse),
    "Group.InspectGroups": (group.Empty, group.InspectResponse),
    "Group.DescribeGroup": (group.IDRequest, group.DescribeResponse),
    "Group.DestroyGroup": (group.IDRequest, group.OKResponse),
    "Instance.Validate": (instance.ValidateRequest, instance.OKResponse),
    "Instance.DescribeInstances": (instance.DescribeRequest, instance.DescribeResponse),
    "Instance.Provision": (instance.ProvisionRequest, instance.ProvisionResponse),
    "Instance.Destroy": (instance.DestroyRequest, instance.OKResponse),
}


def samples() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    text = SAMPLES.read_text()
    pairs = re.findall(r"^--> (.*)\n<-- (.*)$", text, flags=re.MULTILINE)
    found = []
    for sent, received in pairs:
        request, response = json.loads(sent), json.loads(received)
        found.append((request["method"], request, response))
    return found


def test_samples_cover_every_core_method() -> None:
    assert {method for method, _, _ in samples()} == set(TYPES)


@pytest.mark.parametrize(("method", "request_", "response"), samples(),
                         ids=[m for m, _, _ in samples()])
def test_sample_round_trips_through_our_types(
    method: str, request_: dict[str, Any], response: dict[str, Any]
) -> None:
    params_type, result_type = TYPES[method]
    if params_type is not None:
        assert params_type.from_wire(request_["params"]).to_wire() == request_["params"]
    assert result_type.from_wire(response["result"]).to_wire() == response["result"]


def test_unknown_fields_from_a_peer_are_kept() -> None:
    wire = {"ID": "i-1", "LogicalID": None, "Tags": {}, "Zone": "a"}
    assert instance.Description.from_wire(wire).to_wire() == wire


def test_go_nil_map_reads_as_empty_tags() -> None:
    assert instance.Description.from_wire({"ID": "i-1", "Tags": None}).tags == {}


def test_properties_are_left_out_unless_present() -> None:
    assert "Properties" not in instance.Description(id=instance.ID("i")).to_wire()
    described = instance.Description(id=instance.ID("i"), properties={"a": 1}).to_wire()
    assert described["Properties"] == {"a": 1}
