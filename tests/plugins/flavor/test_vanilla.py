"""The vanilla flavor: Prepare exactly as the v0.5 sample, templates, validation, health."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from infrakit import errors, testing
from infrakit.plugins.flavor import vanilla
from infrakit.rpc import discovery, server
from infrakit.spi import flavor, instance

# Flavor.Prepare as recorded from InfraKit v0.5's flavor-vanilla (wire-samples-v0.5.txt).
SAMPLE_PARAMS = (
    '{"Type":"","Properties":{"Init":["echo hello"],"Tags":{"tier":"web"}},"Spec":{"Properties":'
    '{"Note":"v1"},"Tags":{"infrakit.config_sha":"rsfonnrfmaykaiytaj26ud5ixjk7m4rd",'
    '"infrakit.group":"workers"},"Init":"","LogicalID":null,"Attachments":null},"Allocation":'
    '{"Size":3,"LogicalIDs":null},"Index":{"Group":"workers","Sequence":3}}'
)
SAMPLE_RESULT = (
    '{"Type":"","Spec":{"Properties":{"Note":"v1"},"Tags":{"infrakit.config_sha":'
    '"rsfonnrfmaykaiytaj26ud5ixjk7m4rd","infrakit.group":"workers","tier":"web"},'
    '"Init":"echo hello","LogicalID":null,"Attachments":null}}'
)
SIZE_3 = flavor.AllocationMethod(size=3)
INDEX = flavor.Index(group="workers", sequence=3)


async def prepare(properties: Any, spec: instance.Spec | None = None) -> instance.Spec:
    return await vanilla.Plugin().prepare(properties, spec or instance.Spec(), SIZE_3, INDEX)


async def test_prepare_reproduces_the_v0_5_sample_exactly() -> None:
    request = flavor.PrepareRequest.from_wire(json.loads(SAMPLE_PARAMS))

    spec = await vanilla.Plugin().prepare(
        request.properties, request.spec, request.allocation, request.index
    )

    result = flavor.PrepareResponse(type=request.type, spec=spec).to_wire()
    assert json.dumps(result, separators=(",", ":")) == SAMPLE_RESULT


@pytest.mark.parametrize(
    ("existing", "lines", "expected"),
    [
        ("", ["echo a"], "echo a"),
        ("", ["echo a", "echo b"], "echo a\necho b"),
        ("boot", ["echo a"], "boot\necho a"),
        ("boot", [], "boot"),
        ("", [], ""),
    ],
)
async def test_init_is_the_existing_script_then_the_flavor_lines(
    existing: str, lines: list[str], expected: str
) -> None:
    spec = await prepare({"Init": lines}, instance.Spec(init=existing))

    assert spec.init == expected


async def test_flavor_tags_are_merged_over_the_spec_tags() -> None:
    spec = await prepare({"Tags": {"tier": "web", "new": "1"}},
                         instance.Spec(tags={"tier": "db", "infrakit.group": "g"}))

    assert spec.tags == {"tier": "web", "new": "1", "infrakit.group": "g"}


@pytest.mark.parametrize(
    ("existing", "added", "expected"),
    [
        (None, None, None),
        (None, [{"ID": "vol-1", "Type": "ebs"}], ["vol-1"]),
        ([{"ID": "eth0"}], [{"ID": "vol-1"}], ["eth0", "vol-1"]),
        ([{"ID": "eth0"}], [], ["eth0"]),
    ],
)
async def test_attachments_are_appended(
    existing: list[dict[str, str]] | None, added: list[dict[str, str]] | None,
    expected: list[str] | None,
) -> None:
    spec = instance.Spec.from_wire({"Attachments": existing})

    prepared = await prepare({"Attachments": added}, spec)

    found = prepared.attachments
    assert (None if found is None else [a.id for a in found]) == expected


async def test_prepare_keeps_properties_and_logical_id() -> None:
    spec = instance.Spec(properties={"Note": "v1"}, logical_id=instance.LogicalID("db-1"))

    prepared = await prepare({"Init": ["x"]}, spec)

    assert prepared.properties == {"Note": "v1"}
    assert prepared.logical_id == "db-1"


async def test_templates_in_init_and_tags_see_the_spec_and_index() -> None:
    spec = instance.Spec(logical_id=instance.LogicalID("db-1"), tags={"tier": "web"})
    properties = {
        "Init": ["serve --port {{ spec.Tags.port }} --name {{ spec.LogicalID }}",
                 "echo ${#array[@]} {not a template}"],
        "Tags": {"port": "{{ 8000 + index.Sequence }}", "group": "{{ index.Group | upper }}"},
    }

    prepared = await prepare(properties, spec)

    assert prepared.init == "serve --port 8003 --name db-1\necho ${#array[@]} {not a template}"
    assert prepared.tags == {"tier": "web", "port": "8003", "group": "WORKERS"}


@pytest.mark.parametrize(
    ("properties", "field"),
    [
        ({"Init": ["ok", "{{ nope }}"]}, r"Properties\.Init\[1\]"),
        ({"Tags": {"port": "{{ spec.Tags['port'] }}"}}, r"Properties\.Tags\.port"),
    ],
)
async def test_a_template_that_cannot_render_is_invalid_naming_the_field(
    properties: Any, field: str
) -> None:
    with pytest.raises(errors.InvalidError, match=f"^{field}:1: undefined value"):
        await prepare(properties)


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"Init": "echo hello"}, r"^Properties\.Init: expected a list$"),
        ({"Init": ["a", "b", 3]}, r"^Properties\.Init\[2\]: expected a string$"),
        ({"Tags": ["tier"]}, r"^Properties\.Tags: expected an object$"),
        ({"Tags": {"port": 80}}, r"^Properties\.Tags\.port: expected a string$"),
        ({"Attachments": [{"Type": "ebs"}]}, r"^Properties\.Attachments\[0\]\.ID: required$"),
        ({"Health": {}}, r"^Properties\.Health: expected exactly one of Command, HTTP, TCP$"),
        ({"Health": {"TCP": "h:1", "Command": "true"}}, r"^Properties\.Health: expected exactly"),
        ({"Health": {"TCP": "h:1", "Timeout": "soon"}},
         r"^Properties\.Health\.Timeout: expected a duration such as 500ms"),
        ({"Health": {"TCP": "h:1", "Timeout": "0s"}}, r"^Properties\.Health\.Timeout: "),
        ({"Health": {"HTTP": "http://{{ x"}}, r"^Properties\.Health\.HTTP: .*syntax error"),
        ({"Health": {"HTTP": {"URL": "u", "ExpectStatus": "ok"}}},
         r"Properties\.Health\.HTTP\.HTTPCheck\.ExpectStatus"),
        (["Init"], r"^Properties: expected an object$"),
        ("text", r"^Properties: expected an object$"),
    ],
)
async def test_bad_properties_are_invalid_naming_the_field(properties: Any, message: str) -> None:
    with pytest.raises(errors.InvalidError, match=message):
        await vanilla.Plugin().validate(properties, SIZE_3)
    with pytest.raises(errors.InvalidError, match=message):
        await prepare(properties)


@pytest.mark.parametrize(
    "properties",
    [None, {}, {"Init": ["echo hello"], "Tags": {"tier": "web"}},
     # InfraKit v0.5's examples/cattle.json, as v0.5's vanilla flavor accepted it.
     {"Init": ["docker pull nginx:alpine", "docker run -d -p 80:80 nginx-alpine"],
      "Tags": {"tier": "web", "project": "infrakit"},
      "Attachments": [{"ID": "attachid", "Type": "attachtype"}]},
     {"Health": {"HTTP": {"URL": "http://127.0.0.1:{{ instance.Tags['port'] }}/",
                          "ExpectStatus": [200, 204]}, "Timeout": "500ms"}}],
)
async def test_good_properties_validate(properties: Any) -> None:
    await vanilla.Plugin().validate(properties, SIZE_3)


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"Inits": ["echo hello"]}, "Properties.Inits: unknown field; did you mean Init?"),
        ({"Tag": {"tier": "web"}}, "Properties.Tag: unknown field; did you mean Tags?"),
        ({"Init": ["x"], "Unknown": 1},
         "Properties.Unknown: unknown field; expected one of Attachments, Health, Init, Tags"),
        ({"Attachments": [{"ID": "a", "Typ": "ebs"}]},
         "Properties.Attachments[0].Typ: unknown field; did you mean Type?"),
        ({"Health": {"TCP": "h:1", "Timout": "1s"}},
         "Properties.Health.Timout: unknown field; did you mean Timeout?"),
        ({"Health": {"HTTP": {"URL": "u", "ExpectedStatus": 200}}},
         "Properties.Health.HTTP.ExpectedStatus: unknown field; did you mean ExpectStatus?"),
        ({"Inits": ["x"], "Tag": {}},
         "Properties.Inits: unknown field; did you mean Init?; "
         "Properties.Tag: unknown field; did you mean Tags?"),
    ],
)
async def test_a_misspelt_key_is_refused_naming_the_closest_one(properties: Any,
                                                               message: str) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        await vanilla.Plugin().validate(properties, SIZE_3)
    assert caught.value.message == message
    with pytest.raises(errors.InvalidError):
        await prepare(properties)


async def test_healthy_without_a_probe_and_drain_does_nothing() -> None:
    plugin = vanilla.Plugin()
    member = instance.Description(id=instance.ID("instance-1"))

    assert await plugin.healthy({"Init": ["x"]}, member) == flavor.Health.HEALTHY
    assert await plugin.drain({"Init": ["x"]}, member) is None


async def test_healthy_asks_the_probe_with_the_instance(listening: int) -> None:
    plugin = vanilla.Plugin()
    properties = {"Health": {"TCP": "127.0.0.1:{{ instance.Tags['port'] }}"}}
    up = instance.Description(id=instance.ID("a"), tags={"port": str(listening)})
    missing = instance.Description(id=instance.ID("b"))

    assert await plugin.healthy(properties, up) == flavor.Health.HEALTHY
    assert await plugin.healthy(properties, missing) == flavor.Health.UNKNOWN


def test_run_serves_a_vanilla_flavor(served: list[tuple[str, dict[str, Any]]]) -> None:
    vanilla.run(["--name", "flavor-web"])

    [(name, kwargs)] = served
    assert name == "flavor-web"
    assert isinstance(kwargs["flavor"], vanilla.Plugin)


async def test_healthy_over_rpc_answers_what_the_probe_said(
        plugins_dir: pathlib.Path, plugins: discovery.Plugins) -> None:
    url = f"http://127.0.0.1:{testing.free_port()}/health"
    props = {"Health": {"HTTP": url}}
    member = instance.Description(id=instance.ID("instance-1"))
    async with server.Server("flavor-vanilla", flavor=vanilla.Plugin(),
                             plugins_dir=plugins_dir):
        raw = await plugins.client("flavor-vanilla").call(
            "Flavor.Healthy", {"Type": "", "Properties": props, "Instance": member.to_wire()})
        assert raw == {"Type": "", "Health": 2, "Reason": f"GET {url}: connection refused"}
        remote = plugins.flavor("flavor-vanilla")
        assert await remote.judge(props, member) == flavor.Verdict(
            flavor.Health.UNHEALTHY, f"GET {url}: connection refused")
        assert await remote.healthy(props, member) is flavor.Health.UNHEALTHY
        # No probe, nothing said: the answer is exactly v0.5's, without a Reason.
        plain = await plugins.client("flavor-vanilla").call(
            "Flavor.Healthy", {"Type": "", "Properties": {}, "Instance": member.to_wire()})
        assert plain == {"Type": "", "Health": 1}


class _V05Flavor:
    """A flavor without ``judge`` (as any v0.5-era plugin)."""

    async def validate(self, properties: Any, allocation: flavor.AllocationMethod) -> None:
        return None

    async def healthy(self, properties: Any, inst: instance.Description) -> flavor.Health:
        return flavor.Health.UNHEALTHY


async def test_a_flavor_without_judge_answers_no_reason(
        plugins_dir: pathlib.Path, plugins: discovery.Plugins) -> None:
    member = instance.Description(id=instance.ID("instance-1"))
    async with server.Server("old", flavor=_V05Flavor(), plugins_dir=plugins_dir):
        assert await plugins.flavor("old").judge({}, member) == flavor.Verdict(
            flavor.Health.UNHEALTHY, "")
