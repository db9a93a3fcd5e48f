"""The one validation-error format: ``<path>: <what was wrong; what was expected>``."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from pydantic import ConfigDict, Field

from infrakit import errors, validation
from infrakit.spi.wire import Wire


class Leaf(Wire):
    """A nested section."""

    size: int = Field(0, ge=0)
    """A count."""
    logical_ids: list[str] | None = None
    """Names."""


class Doc(Wire):
    """A document with every kind of nesting the walker follows."""

    name: str
    """Required."""
    leaf: Leaf | None = None
    """An optional model."""
    leaves: list[Leaf] | None = None
    """A list of models."""
    by_key: dict[str, Leaf] = Field(default_factory=dict)
    """A map of models."""
    either: Leaf | str | None = None
    """A model or a string."""
    blob: Any = None
    """Free-form: never looked into."""


class Forbidding(pydantic.BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=lambda n: n.title())

    kind: str = ""


def parse_error(data: Any, *, root: str = "") -> str:
    with pytest.raises(errors.InvalidError) as caught:
        validation.parse(Doc, data, root=root)
    return caught.value.message


@pytest.mark.parametrize(("data", "message"), [
    ({}, "Name: required"),
    ({"Name": 3}, "Name: expected a string"),
    ({"Name": "x", "Leaf": {"Size": -1}}, "Leaf.Size: expected 0 or more, got -1"),
    ({"Name": "x", "Leaves": [{}, {"LogicalIDs": ["a", 2]}]}, "Leaves[1].LogicalIDs[1]: "
                                                               "expected a string"),
    ({"Name": "x", "ByKey": {"a": {"Size": "many"}}}, "ByKey.a.Size: expected an integer"),
    ([], "expected an object"),
    ({"Name": 1, "Leaf": []}, "Name: expected a string; Leaf: expected an object"),
])
def test_every_problem_is_path_then_what(data: Any, message: str) -> None:
    assert parse_error(data) == message


def test_a_root_prefixes_every_path() -> None:
    assert parse_error({"Leaf": {"Sise": 1}}, root="Properties") == (
        "Properties.Leaf.Sise: unknown field; did you mean Size?; Properties.Name: required")


@pytest.mark.parametrize(("data", "message"), [
    ({"Name": "x", "Nmae": "y"}, "Nmae: unknown field; did you mean Name?"),
    ({"Name": "x", "Leaf": {"Sise": 1}}, "Leaf.Sise: unknown field; did you mean Size?"),
    ({"Name": "x", "Leaves": [{}, {"LogicalIds": []}]},
     "Leaves[1].LogicalIds: unknown field; did you mean LogicalIDs?"),
    ({"Name": "x", "ByKey": {"k": {"size": 1}}}, "ByKey.k.size: unknown field; did you mean Size?"),
    ({"Name": "x", "Either": {"Sizes": 1}}, "Either.Sizes: unknown field; did you mean Size?"),
    ({"Name": "x", "Zzz": 1}, "Zzz: unknown field; expected one of Blob, ByKey, Either, Leaf, "
                              "Leaves, Name"),
    ({"Name": "x", "name": "y"}, "name: unknown field; did you mean Name?"),
])
def test_unknown_keys_are_refused_with_the_closest_known_key(data: Any, message: str) -> None:
    assert parse_error(data) == message


def test_free_form_values_and_wrong_types_are_not_walked() -> None:
    doc = validation.parse(Doc, {"Name": "x", "Blob": {"Anything": {"at": "all"}},
                                 "Either": "text"})
    assert doc.blob == {"Anything": {"at": "all"}}
    assert validation.unknown_fields(Doc, {"Name": "x", "Leaves": "not a list"}) == []


def test_without_strict_unknown_keys_are_kept() -> None:
    doc = validation.parse(Doc, {"Name": "x", "Extra": 1}, strict=False)
    assert doc.to_wire()["Extra"] == 1


def test_a_model_that_forbids_extras_is_reported_once_with_the_suggestion() -> None:
    with pytest.raises(errors.InvalidError) as caught:
        validation.parse(Forbidding, {"Kinds": "a"})
    assert caught.value.message == "Kinds: unknown field; did you mean Kind?"
    with pytest.raises(pydantic.ValidationError) as raw:
        Forbidding.model_validate({"Kinds": "a"})
    assert validation.describe(raw.value) == "Kinds: unknown field"


def test_where_prefixes_the_message_and_field_names_the_first_problem() -> None:
    with pytest.raises(errors.InvalidError) as caught:
        validation.parse(Doc, {"Leaf": {"Size": -1}}, where="g.yml")
    assert caught.value.message == "g.yml: Name: required; Leaf.Size: expected 0 or more, got -1"
    with pytest.raises(errors.InvalidError) as caught:
        validation.parse(Doc, {"Name": "x", "Leaf": {"Size": -1}})
    assert caught.value.data["field"] == "Leaf.Size"


def test_a_long_list_of_problems_can_be_cut_short() -> None:
    found = [validation.Problem(f"A[{n}]", "bad") for n in range(7)]
    assert validation.message(found, limit=2) == "A[0]: bad; A[1]: bad; and 5 more"
    assert validation.message(found[:2], limit=2) == "A[0]: bad; A[1]: bad"
    assert str(validation.Problem("", "expected an object")) == "expected an object"


@pytest.mark.parametrize(("root", "loc", "path"), [
    ("", ("Init", 2), "Init[2]"), ("Properties", ("Init", 2), "Properties.Init[2]"),
    ("", (0, "Plugin"), "[0].Plugin"), ("Groups", ("web", "Plugin"), "Groups.web.Plugin"),
    ("Properties", (), "Properties"),
])
def test_paths_are_dotted_with_list_indices_in_brackets(root: str, loc: tuple[int | str, ...],
                                                        path: str) -> None:
    assert validation.join(root, loc) == path


@pytest.mark.parametrize(("key", "choice"), [
    ("Helth", "Health"), ("MaxSurg", "MaxSurge"), ("Inits", "Init"), ("Tag", "Tags"),
    ("StopTimout", "StopTimeout"), ("Sise", "Size"), ("allocation", "Allocation"),
    ("Banana", None),
])
def test_the_closest_key_is_suggested(key: str, choice: str | None) -> None:
    known = ["Health", "MaxSurge", "Init", "Tags", "StopTimeout", "Size", "Allocation"]
    assert validation.closest(key, known) == choice
