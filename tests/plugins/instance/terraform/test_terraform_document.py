"""The properties and the per-instance document, without Terraform: checks that name the
field, renaming, placeholders, tags where each type keeps them, v0.5 files, metadata."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from infrakit import errors
from infrakit.plugins.instance.terraform import document, state
from infrakit.spi import instance

IID = instance.ID("instance-1234")


def build(props: dict[str, Any], *, tags: dict[str, str] | None = None, init: str = "",
          logical_id: str | None = None, style: str | None = None) -> dict[str, Any]:
    spec = instance.Spec(properties=props, tags=tags or {"infrakit.group": "g"}, init=init,
                         logical_id=logical_id)
    return document.build(document.parse(props), spec, IID,
                          tag_style=lambda kind: style)  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize(("raw", "field"), [
    ([], "Properties"),
    ({"resource": {}}, "Properties.resource"),
    ({"resource": {"aws_instance": {"a": {}}}, "data": {}}, "Properties.data"),
    ({"resource": {"aws instance": {"a": {}}}}, "Properties.resource.aws instance"),
    ({"resource": {"aws_instance": {"1a": {}}}}, "Properties.resource.aws_instance.1a"),
    ({"resource": {"aws_instance": {"a": []}}}, "Properties.resource.aws_instance.a"),
    ({"resource": {"aws_instance": {"a": {"@instance": "yes"}}}},
     "Properties.resource.aws_instance.a.@instance"),
    ({"resource": {"terraform_data": {"a": {"@instance": True}, "b": {"@instance": True}}}},
     "Properties.resource"),
    ({"resource": {"terraform_data": {"infrakit-x": {}}}},
     "Properties.resource.terraform_data.infrakit-x"),
])
def test_bad_properties_are_refused_naming_the_field(raw: Any, field: str) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        document.parse(raw)
    assert caught.value.data["field"] == field
    assert caught.value.message.startswith(f"{field}: ")


def test_the_instance_is_the_first_resource_others_are_renamed_and_references_follow() -> None:
    made = build({"resource": {
        "terraform_data": {"vm": {"input": "${terraform_data.disk.id}",
                                  "depends_on": ["terraform_data.disk"]},
                           "disk": {"input": "{{ var \"/self/instId\" }}"}}}})
    resources = made["resource"]["terraform_data"]
    assert set(resources) == {IID, f"{IID}-disk", f"infrakit-{IID}"}
    assert resources[IID]["input"] == f"${{terraform_data.{IID}-disk.id}}"
    assert resources[IID]["depends_on"] == [f"terraform_data.{IID}-disk"]
    assert resources[f"{IID}-disk"]["input"] == IID


def test_a_marked_resource_is_the_instance() -> None:
    made = build({"resource": {"terraform_data": {"a": {}, "b": {"@instance": True}}}})
    assert set(made["resource"]["terraform_data"]) == {f"{IID}-a", IID, f"infrakit-{IID}"}
    assert "@instance" not in made["resource"]["terraform_data"][IID]


def test_tags_of_a_type_without_a_tags_attribute_live_in_the_metadata() -> None:
    made = build({"resource": {"terraform_data": {"vm": {"input": 1}}}}, style="none",
                 tags={"infrakit.group": "web", "x": "${not.a.reference}"}, logical_id="db1")
    assert "tags" not in made["resource"]["terraform_data"][IID]
    found = document.read(IID, made)
    assert found is not None
    assert found.tags == {"infrakit.group": "web", "x": "${not.a.reference}", "Name": IID,
                          "LogicalID": "db1"}
    assert found.logical_id == "db1"
    meta = made["resource"]["terraform_data"][f"infrakit-{IID}"]["input"]
    assert meta["Tags"]["x"] == "$${not.a.reference}"  # literal for Terraform


def test_aws_gets_v05_tags_init_and_private_ip() -> None:
    made = build({"resource": {"aws_instance": {"host": {
        "private_ip": "INSTANCE_LOGICAL_ID", "tags": {"Tier": "web"}, "user_data": "a"}}}},
        init="b", logical_id="10.0.0.5")
    body = made["resource"]["aws_instance"][IID]
    assert body["tags"] == {"Tier": "web", "infrakit.group": "g", "Name": IID,
                            "LogicalID": "10.0.0.5"}
    assert body["private_ip"] == "10.0.0.5"
    assert base64.b64decode(body["user_data"]).decode() == "a\nb"


def test_softlayer_tags_are_a_lower_cased_list_and_the_hostname_is_set() -> None:
    made = build({"resource": {"softlayer_virtual_guest": {"host": {
        "@hostname_prefix": "web", "tags": ["Keep:Me"]}}}})
    body = made["resource"]["softlayer_virtual_guest"][IID]
    assert body["hostname"] == "web-1234"
    assert sorted(body["tags"]) == sorted(["keep:me", "infrakit.group:g", f"name:{IID}"])


def test_local_exec_provisioners_get_the_instance_environment() -> None:
    made = build({"resource": {"terraform_data": {"vm": {"provisioner": [
        {"local-exec": {"command": "true", "environment": {"OWN": "1"}}}]}}}})
    env = made["resource"]["terraform_data"][IID]["provisioner"][0]["local-exec"]["environment"]
    assert env["OWN"] == "1"
    assert env["INFRAKIT_INSTANCE_ID"] == IID
    assert env["INFRAKIT_TAG_INFRAKIT_GROUP"] == "g"


def test_a_v05_file_reads_its_tags_and_logical_id_from_the_vm() -> None:
    v05 = {"resource": {"aws_instance": {IID: {"tags": {"infrakit.group": "g",
                                                        "LogicalID": "a"}}}}}
    found = document.read(IID, v05)
    assert found is not None
    assert (found.tags, found.logical_id, found.address) == (
        {"infrakit.group": "g", "LogicalID": "a"}, "a", f"aws_instance.{IID}")
    relabelled = document.relabel(IID, v05, {"infrakit.config_sha": "x"},
                                  tag_style=lambda kind: None)
    assert relabelled["resource"]["aws_instance"][IID]["tags"]["infrakit.config_sha"] == "x"


def test_the_state_metadata_restores_the_same_file() -> None:
    made = build({"resource": {"terraform_data": {"vm": {
        "provisioner": {"local-exec": {"command": "echo ${self.id} %{if true}x%{endif}"}}}}}})
    meta = made["resource"]["terraform_data"][f"infrakit-{IID}"]["input"]
    # The state holds the input as Terraform read it: literal, unescaped.
    as_stored = json.loads(json.dumps(meta).replace("$${", "${").replace("%%{", "%{"))
    shown = {"values": {"root_module": {"resources": [
        {"mode": "managed", "type": "terraform_data", "name": f"infrakit-{IID}",
         "values": {"input": as_stored}}]}}}
    restored = document.restore(IID, state.State(shown).metadata()[IID])
    assert restored == made


def test_relabel_merges_into_the_metadata() -> None:
    made = build({"resource": {"terraform_data": {"vm": {}}}}, style="none")
    again = document.relabel(IID, made, {"infrakit.config_sha": "abc"},
                             tag_style=lambda kind: "none")
    found = document.read(IID, again)
    assert found is not None and found.tags["infrakit.config_sha"] == "abc"
    assert "tags" not in again["resource"]["terraform_data"][IID]
