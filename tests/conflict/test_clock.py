"""The laws of version vectors, over random clocks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conflict import Dot, Order, VClock

actors = st.sampled_from(["crm", "helpdesk", "shop", "review"])
clocks = st.dictionaries(actors, st.integers(min_value=0, max_value=6)).map(VClock)


@given(clocks, clocks)
def test_join_is_commutative(a: VClock, b: VClock) -> None:
    assert a.join(b) == b.join(a)


@given(clocks, clocks, clocks)
def test_join_is_associative(a: VClock, b: VClock, c: VClock) -> None:
    assert a.join(b).join(c) == a.join(b.join(c))


@given(clocks)
def test_join_is_idempotent(a: VClock) -> None:
    assert a.join(a) == a


@given(clocks, clocks)
def test_join_is_the_least_upper_bound(a: VClock, b: VClock) -> None:
    j = a.join(b)
    assert j.dominates(a) and j.dominates(b)
    assert all(j.get(x) == max(a.get(x), b.get(x)) for x in set(a) | set(b))


@given(clocks, clocks)
def test_dominance_is_antisymmetric(a: VClock, b: VClock) -> None:
    if a.dominates(b) and b.dominates(a):
        assert a == b and hash(a) == hash(b)


@given(clocks, clocks, clocks)
def test_dominance_is_transitive(a: VClock, b: VClock, c: VClock) -> None:
    if a.dominates(b) and b.dominates(c):
        assert a.dominates(c)


@given(clocks, clocks)
def test_compare_is_consistent_both_ways(a: VClock, b: VClock) -> None:
    mirror = {Order.EQUAL: Order.EQUAL, Order.BEFORE: Order.AFTER,
              Order.AFTER: Order.BEFORE, Order.CONCURRENT: Order.CONCURRENT}
    assert b.compare(a) is mirror[a.compare(b)]


@given(clocks, actors)
def test_increment_gives_a_new_dot_the_clock_now_covers(a: VClock, actor: str) -> None:
    b, dot = a.increment(actor)
    assert dot == Dot(actor, a.get(actor) + 1)
    assert b.covers(dot) and not a.covers(dot)
    assert a.compare(b) is Order.BEFORE
    assert a.add(dot) == b


@given(clocks)
def test_serialised_form_is_stable_and_round_trips(a: VClock) -> None:
    data = a.to_dict()
    assert list(data) == sorted(data)
    assert VClock(data) == a
    assert all(n > 0 for n in data.values())  # zeros are never stored


@given(clocks, st.lists(st.tuples(st.sampled_from(["increment", "add", "join"]), actors,
                              st.integers(min_value=1, max_value=9), clocks), max_size=8))
def test_serialised_form_stays_sorted_through_every_operation(
        a: VClock, steps: list[tuple[str, str, int, VClock]]) -> None:
    # Whichever operations made a clock, its serialised form is in actor order.
    for op, actor, counter, other in steps:
        if op == "increment":
            a = a.increment(actor)[0]
        elif op == "add":
            a = a.add(Dot(actor, counter))
        else:
            a = a.join(other)
        data = a.to_dict()
        assert list(data) == sorted(data)
        assert VClock(data) == a


def test_examples() -> None:
    a = VClock({"crm": 2, "helpdesk": 1})
    assert a.compare(VClock({"crm": 2, "helpdesk": 1})) is Order.EQUAL
    assert a.compare(VClock({"crm": 3, "helpdesk": 1})) is Order.BEFORE
    assert a.compare(VClock({"crm": 1})) is Order.AFTER
    assert a.compare(VClock({"crm": 1, "shop": 1})) is Order.CONCURRENT
    assert str(Dot("crm", 3)) == "crm:3" and Dot.parse("crm:3") == Dot("crm", 3)
    assert VClock({"crm": 0}) == VClock()
