import json
import pathlib

import pytest

from infrakit.group import config, hashing

EXAMPLES = pathlib.Path(__file__).parents[2] / "examples"
SAMPLE = {"Instance": {"Plugin": "instance-file", "Properties": {"Note": "v1"}},
          "Flavor": {"Plugin": "flavor-vanilla",
                     "Properties": {"Init": ["echo hello"], "Tags": {"tier": "web"}}},
          "Allocation": {"Size": 3}}


def test_the_original_example_hashes_to_the_v05_value() -> None:
    props = json.loads((EXAMPLES / "cattle.json").read_text())["Properties"]
    assert hashing.config_sha(config.parse(props)) == "x4nrsdaibscmj7awpkxzx5vvpt6pilw2"


def test_the_sample_group_hashes_to_the_v05_value() -> None:
    assert hashing.config_sha(config.parse(SAMPLE)) == "rsfonnrfmaykaiytaj26ud5ixjk7m4rd"


def test_the_hash_ignores_allocation_policies_and_unknown_keys() -> None:
    other = {**SAMPLE, "Allocation": {"Size": 9}, "Update": {"MaxSurge": 2}, "Extra": True,
             "Instance": {**SAMPLE["Instance"], "Unknown": 1}}
    # Unknown keys are refused at commit (config.parse); the model alone still carries them.
    assert hashing.config_sha(config.Properties.model_validate(other)) == \
        "rsfonnrfmaykaiytaj26ud5ixjk7m4rd"


def test_the_hash_changes_with_instance_or_flavor_properties() -> None:
    changed = {**SAMPLE, "Instance": {"Plugin": "instance-file", "Properties": {"Note": "v2"}}}
    assert hashing.config_sha(config.parse(changed)) != "rsfonnrfmaykaiytaj26ud5ixjk7m4rd"


def test_canonical_json_is_go_marshal_indent_with_prefix() -> None:
    value = {"b": [1, {"z": None, "a": True}], "a": {}, "c": []}
    assert hashing.canonical_json(value) == (
        '{\n    "a": {},\n    "b": [\n      1,\n      {\n        "a": true,\n'
        '        "z": null\n      }\n    ],\n    "c": []\n  }')


@pytest.mark.parametrize(("text", "encoded"), [
    ("<a & b>", '"\\u003ca \\u0026 b\\u003e"'),
    ('quote " back \\', '"quote \\" back \\\\"'),
    ("tab\tnl\ncr\r", '"tab\\tnl\\ncr\\r"'),
    ("bell\x07", '"bell\\u0007"'),
    ("line\u2028sep", '"line\\u2028sep"'),
    ("héllo ☃", '"héllo ☃"'),
])
def test_strings_are_escaped_as_go_does(text: str, encoded: str) -> None:
    assert hashing.canonical_json(text) == encoded


@pytest.mark.parametrize(("number", "printed"), [
    (1.0, "1"), (1, "1"), (-2.5, "-2.5"), (0.1, "0.1"), (100, "100"),
    (1e20, "100000000000000000000"), (1e21, "1e+21"), (1e16, "10000000000000000"),
    (0.000001, "0.000001"), (1e-7, "1e-7"), (1.5e-7, "1.5e-7"),
    (12345678901234567890, "12345678901234567000"), (0, "0"),
])
def test_numbers_print_as_go_prints_a_float64(number: float, printed: str) -> None:
    assert hashing.go_float(number) == printed
