"""The combo flavor over real vanilla flavors and recording fakes (sync and async)."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from infrakit import errors
from infrakit.plugins.flavor import combo, vanilla
from infrakit.rpc import discovery, server
from infrakit.spi import flavor, instance
from infrakit.testing import FakeGatekeeper

SIZE_1 = flavor.AllocationMethod(size=1)
INDEX = flavor.Index(group="g", sequence=7)
MEMBER = instance.Description(id=instance.ID("instance-1"))


class Fixed:
    """A sync flavor with a fixed health answer that records drains, failing when told to."""

    def __init__(self, name: str, verdict: flavor.Health, log: list[str], *,
                 fail: errors.InfrakitError | None = None) -> None:
        self.name, self.verdict, self.log, self.fail = name, verdict, log, fail

    def validate(self, properties: Any, allocation: flavor.AllocationMethod) -> None:
        if properties == "bad":
            raise errors.InvalidError("Properties: no good")

    def healthy(self, properties: Any, inst: instance.Description) -> flavor.Health:
        self.log.append(f"healthy {self.name}")
        return self.verdict

    def drain(self, properties: Any, inst: instance.Description) -> None:
        self.log.append(f"drain {self.name}")
        if self.fail is not None:
            raise self.fail


class Resolver:
    def __init__(self, **plugins: Any) -> None:
        self.plugins = plugins

    def __call__(self, name: str) -> Any:
        if name not in self.plugins:
            raise errors.PluginNotFound(f"no plugin {name!r}")
        return self.plugins[name]


def flavors(*names: str, properties: Any = None) -> dict[str, Any]:
    return {"Flavors": [{"Plugin": name, "Properties": properties} for name in names]}


async def test_prepare_chains_flavors_in_order() -> None:
    subject = combo.Plugin(Resolver(a=vanilla.Plugin(), b=vanilla.Plugin()))
    properties = {"Flavors": [
        {"Plugin": "a", "Properties": {"Init": ["echo a"], "Tags": {"x": "a", "y": "a"},
                                       "Attachments": [{"ID": "vol-a"}]}},
        {"Plugin": "b", "Properties": {"Init": ["echo b1", "echo b2"], "Tags": {"y": "b"},
                                       "Attachments": [{"ID": "vol-b"}]}},
    ]}
    spec = instance.Spec(init="boot", tags={"infrakit.group": "g", "x": "spec"},
                         attachments=[instance.Attachment(id="eth0")],
                         properties={"Note": "v1"})

    prepared = await subject.prepare(properties, spec, SIZE_1, INDEX)

    assert prepared.init == "boot\necho a\necho b1\necho b2"
    assert prepared.tags == {"infrakit.group": "g", "x": "a", "y": "b"}
    assert [a.id for a in prepared.attachments or []] == ["eth0", "vol-a", "vol-b"]
    assert prepared.properties == {"Note": "v1"}


async def test_each_flavor_sees_the_tags_of_the_ones_before() -> None:
    subject = combo.Plugin(Resolver(a=vanilla.Plugin(), b=vanilla.Plugin()))
    properties = {"Flavors": [
        {"Plugin": "a", "Properties": {"Tags": {"port": "{{ 8000 + index.Sequence }}"}}},
        {"Plugin": "b", "Properties": {"Init": ["serve {{ spec.Tags.port }}"]}},
    ]}

    prepared = await subject.prepare(properties, instance.Spec(), SIZE_1, INDEX)

    assert prepared.init == "serve 8007"


async def test_no_flavors_leave_the_spec_alone() -> None:
    spec = instance.Spec(init="boot", tags={"a": "b"})

    assert await combo.Plugin(Resolver()).prepare({"Flavors": []}, spec, SIZE_1, INDEX) == spec


@pytest.mark.parametrize(
    ("properties", "error", "message"),
    [
        ({"Flavors": [{"Plugin": "a"}, {"Plugin": "a", "Properties": {"Init": "x"}}]},
         errors.InvalidError,
         r"^Properties\.Flavors\[1\] \(a\): Properties\.Init: expected a list"),
        ({"Flavors": [{"Plugin": "fixed", "Properties": "bad"}]},
         errors.InvalidError, r"^Properties\.Flavors\[0\] \(fixed\): Properties: no good"),
        ({"Flavors": [{"Plugin": "nope"}]},
         errors.PluginNotFound, r"^Properties\.Flavors\[0\] \(nope\): no plugin 'nope'"),
        ({"Flavors": [{"Properties": {}}]}, errors.InvalidError,
         r"^Properties\.Flavors\[0\]\.Plugin: required"),
        ({"Flavors": {"Plugin": "a"}}, errors.InvalidError,
         r"^Properties\.Flavors: expected a list"),
        ({"Flavor": [{"Plugin": "a"}]}, errors.InvalidError,
         r"^Properties\.Flavor: unknown field; did you mean Flavors\?$"),
        ({"Flavors": [{"Plugin": "a", "Propertes": {}}]}, errors.InvalidError,
         r"^Properties\.Flavors\[0\]\.Propertes: unknown field; did you mean Properties\?$"),
        # Each flavor's own Properties are judged by that flavor (here: vanilla).
        ({"Flavors": [{"Plugin": "a", "Properties": {"Inits": []}}]}, errors.InvalidError,
         r"^Properties\.Flavors\[0\] \(a\): Properties\.Inits: unknown field; did you mean "
         r"Init\?$"),
    ],
)
async def test_validate_names_the_failing_flavor(
    properties: Any, error: type[errors.InfrakitError], message: str
) -> None:
    fixed = Fixed("f", flavor.Health.HEALTHY, [])
    subject = combo.Plugin(Resolver(a=vanilla.Plugin(), fixed=fixed))

    with pytest.raises(error, match=message):
        await subject.validate(properties, SIZE_1)


@pytest.mark.parametrize(
    ("verdicts", "expected", "asked"),
    [
        ([1, 1, 1], flavor.Health.HEALTHY, 3),
        ([1, 0, 2], flavor.Health.UNKNOWN, 2),
        ([2, 0, 1], flavor.Health.UNHEALTHY, 1),
        ([1, 1, 2], flavor.Health.UNHEALTHY, 3),
    ],
)
async def test_healthy_is_the_first_answer_that_is_not_healthy(
    verdicts: list[int], expected: flavor.Health, asked: int
) -> None:
    log: list[str] = []
    names = [f"f{number}" for number in range(len(verdicts))]
    pairs = zip(names, verdicts, strict=True)
    resolver = Resolver(**{name: Fixed(name, flavor.Health(code), log) for name, code in pairs})

    assert await combo.Plugin(resolver).healthy(flavors(*names), MEMBER) == expected
    assert log == [f"healthy {name}" for name in names[:asked]]


async def test_healthy_works_with_async_flavors() -> None:
    resolver = Resolver(a=vanilla.Plugin(), b=vanilla.Plugin())

    assert await combo.Plugin(resolver).healthy(flavors("a", "b"), MEMBER) == flavor.Health.HEALTHY


def probes(*commands: str) -> dict[str, Any]:
    """Combo properties: one vanilla flavor (``v``) per health command, in order."""
    return {"Flavors": [{"Plugin": "v", "Properties": {"Health": {"Command": command}}}
                        for command in commands]}


@pytest.mark.parametrize(
    ("commands", "expected"),
    [
        (["exit 0", "echo down; exit 3", "echo later; exit 4"],
         flavor.Verdict(flavor.Health.UNHEALTHY, "exec 'echo down; exit 3' exited 3: down")),
        (["exit 0", "exit 0"],
         flavor.Verdict(flavor.Health.HEALTHY, "exec 'exit 0' exited 0; exec 'exit 0' exited 0")),
    ],
    ids=["first-unhealthy-decides", "all-healthy"],
)
async def test_judge_gives_the_reason_of_the_flavor_that_decided(
    commands: list[str], expected: flavor.Verdict
) -> None:
    subject = combo.Plugin(Resolver(v=vanilla.Plugin()))

    assert await subject.judge(probes(*commands), MEMBER) == expected
    assert await subject.healthy(probes(*commands), MEMBER) == expected.health


async def test_judge_of_a_flavor_without_judge_decides_without_a_reason() -> None:
    log: list[str] = []
    resolver = Resolver(v=vanilla.Plugin(), old=Fixed("old", flavor.Health.UNHEALTHY, log))
    properties = {"Flavors": [*probes("exit 0")["Flavors"], {"Plugin": "old"}]}

    assert await combo.Plugin(resolver).judge(properties, MEMBER) == flavor.Verdict(
        flavor.Health.UNHEALTHY, "")
    assert log == ["healthy old"]


async def test_healthy_over_rpc_answers_the_reason_of_the_flavor_that_decided(
        plugins_dir: pathlib.Path, plugins: discovery.Plugins) -> None:
    properties = {"Flavors": [
        {"Plugin": "flavor-vanilla", "Properties": {"Health": {"Command": "exit 0"}}},
        {"Plugin": "flavor-vanilla", "Properties": {"Health": {"Command": "echo no; exit 1"}}},
    ]}
    request = {"Type": "", "Properties": properties, "Instance": MEMBER.to_wire()}
    async with (
        server.Server("flavor-vanilla", flavor=vanilla.Plugin(), plugins_dir=plugins_dir),
        server.Server("flavor-combo", flavor=combo.Plugin(plugins.flavor),
                      plugins_dir=plugins_dir),
    ):
        raw = await plugins.client("flavor-combo").call("Flavor.Healthy", request)
        assert raw == {"Type": "", "Health": 2, "Reason": "exec 'echo no; exit 1' exited 1: no"}


async def test_drain_drains_every_flavor_in_reverse_order() -> None:
    log: list[str] = []
    resolver = Resolver(**{name: Fixed(name, flavor.Health.HEALTHY, log) for name in "abc"})

    await combo.Plugin(resolver).drain(flavors("a", "b", "c"), MEMBER)

    assert log == ["drain c", "drain b", "drain a"]


async def test_a_failed_drain_does_not_stop_the_others_and_is_raised() -> None:
    log: list[str] = []
    resolver = Resolver(
        a=Fixed("a", flavor.Health.HEALTHY, log),
        b=Fixed("b", flavor.Health.HEALTHY, log, fail=errors.TemporaryError("busy", delay=5)),
        c=Fixed("c", flavor.Health.HEALTHY, log),
    )

    busy = r"^Properties\.Flavors\[1\] \(b\): busy"
    with pytest.raises(errors.TemporaryError, match=busy) as got:
        await combo.Plugin(resolver).drain(flavors("a", "b", "c"), MEMBER)

    assert log == ["drain c", "drain b", "drain a"]
    assert got.value.delay == 5


async def test_several_failed_drains_are_reported_together() -> None:
    log: list[str] = []
    resolver = Resolver(
        a=Fixed("a", flavor.Health.HEALTHY, log, fail=errors.PermanentError("stuck")),
        b=Fixed("b", flavor.Health.HEALTHY, log, fail=errors.PermanentError("gone")),
    )

    with pytest.raises(errors.PermanentError) as got:
        await combo.Plugin(resolver).drain(flavors("a", "b"), MEMBER)

    assert got.value.message == "Properties.Flavors[1] (b): gone; Properties.Flavors[0] (a): stuck"


async def test_an_unexpected_exception_in_a_flavor_becomes_a_permanent_error() -> None:
    class Broken:
        def drain(self, properties: Any, inst: instance.Description) -> None:
            raise KeyError("oops")

    with pytest.raises(errors.PermanentError, match=r"\(x\): KeyError: 'oops'"):
        await combo.Plugin(Resolver(x=Broken())).drain(flavors("x"), MEMBER)


# (ext) CanRemove and Order --------------------------------------------------------------

ZK = [instance.Description(id=instance.ID(f"zk-{n}")) for n in (1, 2, 3)]


def gatekeeper(*, refuse: str = "", order: list[str] | None = None) -> FakeGatekeeper:
    found = FakeGatekeeper()
    if refuse:
        found.refuse["zk-2"] = refuse
    found.replace_order = order or []
    return found


@pytest.mark.parametrize(("chain", "expected", "asked"), [
    (["", ""], flavor.Removal(), [1, 1]),
    (["", "quorum"], flavor.Removal(allowed=False, reason="quorum"), [1, 1]),
    (["first", "second"], flavor.Removal(allowed=False, reason="first"), [1, 0]),
    ([None, ""], flavor.Removal(), [None, 1]),
    ([None, "quorum"], flavor.Removal(allowed=False, reason="quorum"), [None, 1]),
], ids=["all-allow", "one-refuses", "first-refusal-wins", "without-it-allows",
        "without-it-then-refusal"])
async def test_can_remove_is_allowed_only_when_every_flavor_allows(
        chain: list[str | None], expected: flavor.Removal, asked: list[int | None]) -> None:
    """``None`` in ``chain``: a flavor without can_remove (a v0.5-like one)."""
    parts: dict[str, Any] = {
        f"f{n}": Fixed(f"f{n}", flavor.Health.HEALTHY, []) if refusal is None
        else gatekeeper(refuse=refusal) for n, refusal in enumerate(chain)}
    subject = combo.Plugin(Resolver(**parts))

    assert await subject.can_remove(flavors(*parts), ZK[1], ZK) == expected
    assert [p.calls["can_remove"] if isinstance(p, FakeGatekeeper) else None
            for p in parts.values()] == asked


async def test_can_remove_errors_name_the_flavor() -> None:
    failing = gatekeeper()
    failing.fail = errors.Unavailable("cannot reach plugin")
    subject = combo.Plugin(Resolver(a=gatekeeper(), b=failing))

    with pytest.raises(errors.Unavailable, match=r"^Properties\.Flavors\[1\] \(b\): cannot"):
        await subject.can_remove(flavors("a", "b"), ZK[0], ZK)


async def test_order_is_the_first_non_empty_order() -> None:
    log: list[str] = []
    subject = combo.Plugin(Resolver(
        plain=Fixed("plain", flavor.Health.HEALTHY, log), none=gatekeeper(),
        zk=gatekeeper(order=["zk-3", "zk-1", "zk-2"]), other=gatekeeper(order=["zk-1"])))

    assert await subject.order(flavors("plain", "none", "zk", "other"), ZK) == [
        "zk-3", "zk-1", "zk-2"]
    assert await subject.order(flavors("plain", "none"), ZK) == []


async def test_can_remove_and_order_over_rpc_through_the_combo(
        plugins_dir: pathlib.Path, plugins: discovery.Plugins) -> None:
    zk = gatekeeper(refuse="replacing zk-2 would leave 1 of 3 voting members",
                    order=["zk-1", "zk-3", "zk-2"])
    properties = {"Flavors": [{"Plugin": "flavor-vanilla", "Properties": {}},
                              {"Plugin": "flavor-zk", "Properties": {}}]}
    async with (
        server.Server("flavor-vanilla", flavor=vanilla.Plugin(), plugins_dir=plugins_dir),
        server.Server("flavor-zk", flavor=zk, plugins_dir=plugins_dir),
        server.Server("flavor-combo", flavor=combo.Plugin(plugins.flavor),
                      plugins_dir=plugins_dir),
    ):
        remote = plugins.flavor("flavor-combo")
        assert await remote.can_remove(properties, ZK[1], ZK) == flavor.Removal(
            allowed=False, reason="replacing zk-2 would leave 1 of 3 voting members")
        assert await remote.can_remove(properties, ZK[0], ZK) == flavor.Removal()
        assert await remote.order(properties, ZK) == ["zk-1", "zk-3", "zk-2"]


def test_run_resolves_flavors_through_discovery(served: list[tuple[str, dict[str, Any]]]) -> None:
    combo.run([])

    [(name, kwargs)] = served
    assert name == "flavor-combo"
    assert kwargs["flavor"]._resolve("flavor-vanilla") == "flavor:flavor-vanilla"
