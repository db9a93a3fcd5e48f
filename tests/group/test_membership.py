from infrakit.group import membership

from .conftest import member


def test_missing_members_say_the_count() -> None:
    assert [c.reason for c in membership.missing(size=5, total=3)] == ["count 3 < 5", "count 4 < 5"]


def test_surplus_members_go_in_the_given_order() -> None:
    found = membership.surplus(cap=2, total=4, removable=[member("b"), member("a"), member("c")],
                               protect_tag="p")
    assert [(r.member.id, r.reason) for r in found.removals] == [("b", "count 4 > 2"),
                                                                 ("a", "count 4 > 2")]


def test_surplus_that_is_protected_is_held_with_a_reason() -> None:
    found = membership.surplus(cap=2, total=4, removable=[member("a")], protect_tag="keep")
    assert [r.member.id for r in found.removals] == ["a"]
    assert found.holds == ["holding 1 surplus members: they are protected (tag keep=true) or "
                           "not yet listed"]


def pets(ids: list[str], present: list[tuple[str, str | None]], *, pending: tuple[str, ...] = (),
         removing: int = 0) -> membership.Pets:
    return membership.pets(ids=ids, members=[member(i, lid=lid, sha="s") for i, lid in present],
                           pending=pending, removing=removing, sha="s", protect_tag="p",
                           locked=())


def test_each_logical_id_without_a_member_is_created_with_it() -> None:
    found = pets(["a", "b", "c"], [("1", "a")], pending=("c",))
    assert [c.logical_id for c in found.changes.creates] == ["b"]


def test_duplicates_of_a_logical_id_are_reduced_to_one() -> None:
    found = pets(["a"], [("2", "a"), ("1", "a"), ("3", "a")])
    assert sorted(r.member.id for r in found.changes.removals) == ["2", "3"]
    assert found.chosen["a"].id == "1"


def test_undeclared_logical_ids_go_one_at_a_time_once_all_declared_exist() -> None:
    present = [("1", "a"), ("2", "x"), ("3", None)]
    assert [r.member.id for r in pets(["a"], present).changes.removals] == ["2"]
    assert pets(["a"], present, removing=1).changes.removals == []
    assert pets(["a", "b"], present).changes.removals == []  # b must exist first
