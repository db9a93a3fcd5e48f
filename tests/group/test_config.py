from typing import Any

import pytest

from infrakit import errors
from infrakit.group import config

BASE: dict[str, Any] = {"Instance": {"Plugin": "i"}, "Flavor": {"Plugin": "f"}}


def test_policies_default_to_the_original_behaviour() -> None:
    props = config.parse({**BASE, "Allocation": {"Size": 2}})
    assert props.health.interval == 0  # no probing without a Health section
    assert (props.update.max_surge, props.update.max_unavailable) == (0, 1)
    assert props.scale.policy == config.ScaleOrder.LOWEST_ID
    assert props.provision.failure_threshold == 5


def test_a_health_section_turns_probing_on_with_its_defaults() -> None:
    props = config.parse({**BASE, "Allocation": {"Size": 2}, "Health": {"StartupGrace": "1m"}})
    assert (props.health.interval, props.health.startup_grace) == (10.0, 60.0)
    assert props.health.max_unhealthy == "40%"


def test_every_policy_key_is_read() -> None:
    props = config.parse({**BASE, "Allocation": {"Size": 2},
                          "Health": {"Interval": "5s", "StartupGrace": "1s",
                                     "UnhealthyAfter": "2s", "MaxUnhealthy": 3,
                                     "DrainTimeout": "500ms"},
                          "Update": {"MaxSurge": "25%", "MaxUnavailable": "0%",
                                     "HealthTimeout": "1m"},
                          "Scale": {"Policy": "Oldest", "ProtectTag": "keep"},
                          "Provision": {"BackoffBase": "2s", "BackoffCap": "1m",
                                        "FailureThreshold": 3}})
    assert props.health.drain_timeout == 0.5 and props.health.max_unhealthy == 3
    assert props.update.max_surge == "25%" and props.update.health_timeout == 60
    assert props.scale.policy == config.ScaleOrder.OLDEST and props.scale.protect_tag == "keep"
    assert (props.provision.backoff_base, props.provision.backoff_cap) == (2.0, 60.0)


def test_unknown_keys_are_refused_and_the_plugins_blobs_are_not_looked_into() -> None:
    with pytest.raises(errors.InvalidError, match=r"^Properties\.FromThePeer: unknown field"):
        config.parse({**BASE, "Allocation": {"Size": 1}, "FromThePeer": {"x": 1}})
    blobs = {"Instance": {"Plugin": "i", "Properties": {"Anything": {"goes": 1}}},
             "Flavor": {"Plugin": "f", "Properties": {"Judged": "by the flavor"}}}
    props = config.parse({**blobs, "Allocation": {"Size": 1}})
    assert props.instance.properties == {"Anything": {"goes": 1}}


@pytest.mark.parametrize(("properties", "message"), [
    ({**BASE}, "Allocation must not be blank"),
    ({**BASE, "Allocation": {}}, "Allocation must not be blank"),
    ({**BASE, "Allocation": {"LogicalIDs": []}}, "Allocation must not be blank"),
    ({**BASE, "Allocation": {"Size": 2, "LogicalIDs": ["a"]}},
     "Only one Allocation method may be used"),
    ({**BASE, "Allocation": {"LogicalIDs": ["a", "a"]}},
     "Properties.Allocation.LogicalIDs: each logical ID may appear once"),
    (None, "Properties: expected an object"),
    ({"Flavor": {"Plugin": "f"}, "Allocation": {"Size": 1}}, "Properties.Instance: required"),
    ({**BASE, "Allocation": {"Size": -1}},
     "Properties.Allocation.Size: expected 0 or more, got -1"),
    ({**BASE, "Allocation": {"Size": 1}, "Health": {"Interval": "soon"}},
     "Properties.Health.Interval: expected a duration"),
    ({**BASE, "Allocation": {"Size": 1}, "Update": {"MaxSurge": "150%"}},
     "Properties.Update.MaxSurge: expected a count"),
    ({**BASE, "Allocation": {"Size": 1}, "Scale": {"Policy": "Random"}},
     "Properties.Scale.Policy: expected 'LowestID', 'Oldest', 'Newest' or 'UnhealthyFirst', "
     "got 'Random'"),
])
def test_bad_properties_name_the_field(properties: Any, message: str) -> None:
    with pytest.raises(errors.InvalidError) as caught:
        config.parse(properties)
    assert caught.value.message.startswith(message)


def test_an_explicit_size_of_zero_is_a_group_scaled_to_zero() -> None:
    assert config.parse({**BASE, "Allocation": {"Size": 0}}).size == 0


@pytest.mark.parametrize("gid", ["", "   "])
def test_a_blank_group_id_is_refused(gid: str) -> None:
    with pytest.raises(errors.InvalidError, match=r"^Group ID must not be blank$"):
        config.check_id(gid)


@pytest.mark.parametrize(("amount", "total", "up", "count"), [
    (2, 10, False, 2), ("25%", 10, True, 3), ("25%", 10, False, 2), ("40%", 5, False, 2),
    ("0%", 7, True, 0), ("100%", 3, False, 3),
])
def test_amounts_resolve_against_the_group_size(amount: int | str, total: int, up: bool,
                                                 count: int) -> None:
    assert config.resolve(amount, total, round_up=up) == count
