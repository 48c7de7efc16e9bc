"""The lane's reading side against the twins: polls, echoes, webhooks, deletes, bad records."""

from __future__ import annotations

import pytest

from daemon.connector.rest import BadRecord
from daemon.http import MalformedResponse, Unavailable
from streams.events import Observed, Written
from tests.daemon.lane.conftest import Rig, endpoint, make_rig


async def test_a_poll_reports_each_record_once_and_a_restart_goes_on_numbering(rig: Rig
                                                                               ) -> None:
    ids = [rig.system.put(email=f"P{i}@Example.com", full_name=f"P {i}") for i in range(3)]
    assert await rig.lane.poll() == 3
    assert await rig.lane.poll() == 0  # nothing new: nothing reported
    rig.system.edit(ids[1], full_name="P one")
    lane = rig.restart()
    assert lane.log.head.cursor is not None
    assert await lane.poll() == 1
    seen = rig.reported()
    assert [o.external_id for o in seen] == [*ids, ids[1]]  # type: ignore[attr-defined]
    assert [o.seq for o in seen] == [1, 2, 3, 4]  # type: ignore[attr-defined]
    first = seen[0]
    assert isinstance(first, Observed)
    assert first.fields == {"email": "p0@example.com", "name": "P 0"}  # canonical names
    assert isinstance(seen[3], Observed) and seen[3].fields["name"] == "P one"


async def test_sequence_numbers_not_committed_are_used_again_after_a_restart(rig: Rig
                                                                             ) -> None:
    rig.system.put(email="a@x.org", full_name="A")
    await rig.lane.poll()
    rig.lane.log.next_seq()  # taken, never committed: the process dies
    rig.system.put(email="b@x.org", full_name="B")
    await rig.restart().poll()
    assert [o.seq for o in rig.reported()] == [1, 2]  # type: ignore[attr-defined]


async def test_the_cursor_stays_when_the_listing_fails_and_nothing_is_skipped(rig: Rig
                                                                             ) -> None:
    rig.system.put(email="a@x.org", full_name="A")
    await rig.lane.poll()
    cursor = rig.lane.log.head.cursor
    late = rig.system.put(email="late@x.org", full_name="Late")
    rig.system.fail("changes", "garbled")
    with pytest.raises(MalformedResponse):
        await rig.lane.poll()
    assert rig.lane.log.head.cursor == cursor
    assert await rig.lane.poll() == 1
    assert [o.external_id for o in rig.reported()][-1] == late  # type: ignore[attr-defined]


async def test_a_failure_on_a_later_page_commits_the_pages_read_but_not_the_cursor() -> None:
    rig = make_rig(page_size=1)
    ids = [rig.system.put(email=f"p{i}@x.org", full_name=f"P{i}") for i in range(3)]
    rig.system.fail("changes", "down", after=1)  # page 1 is read, page 2 fails
    with pytest.raises(Unavailable):
        await rig.lane.poll()
    assert [o.external_id for o in rig.reported()] == ids[:1]  # type: ignore[attr-defined]
    assert rig.lane.log.head.cursor is None
    assert await rig.lane.poll() == 2
    assert rig.lane.log.head.cursor is not None


async def test_a_walk_under_which_a_record_moved_is_walked_again() -> None:
    """A record edited during a paged walk moves to the end, and the records after it shift
    one page up: the walk misses one. Seeing a record twice tells, and the walk is repeated:
    nothing is skipped (the cursor, past the missed record's time, would never go back)."""
    rig = make_rig(page_size=1)
    a, b, c = (rig.system.put(email=f"{n}@x.org", full_name=n) for n in "abc")
    rig.system.before("changes", lambda: rig.system.before(
        "changes", lambda: rig.system.edit(a, full_name="A moved")))  # before page 2
    assert await rig.lane.poll() == 4  # a, c, a moved; then b on the second walk
    reported = {o.external_id for o in rig.reported()}  # type: ignore[attr-defined]
    assert reported == {a, b, c}
    assert await rig.lane.poll() == 0


async def test_the_lanes_own_write_read_back_is_an_echo_and_not_reported(rig: Rig) -> None:
    ann = rig.system.put(email="ann@x.org", full_name="Ann")
    await rig.lane.poll()
    rig.intent("update", ann, values={"name": "Ann Lee"}, expected={"name": "Ann"})
    assert await rig.lane.execute_intents() == 1
    assert await rig.lane.poll() == 0
    assert rig.kinds() == ["Observed", "Written"]


async def test_a_bad_record_and_a_bad_value_are_dead_letters_and_the_rest_is_read(rig: Rig
                                                                                  ) -> None:
    rig.system.broken = [BadRecord("the record has no id at 'id'", {"full_name": "No Id"})]
    rig.system.put(email="a@x.org", full_name="A")
    cy = rig.system.put(email="cy@x.org", full_name="Cy", company_id="9")  # no company 9
    assert await rig.lane.poll() == 2
    observed = [o for o in rig.reported() if isinstance(o, Observed)]
    assert observed[1].external_id == cy
    assert observed[1].fields == {"email": "cy@x.org", "name": "Cy"}  # the rest of Cy
    reasons = sorted(letter.reason for letter in rig.letters())
    assert reasons == [
        f"crm contact {cy}: field company: refers to company 9, which crm does not have",
        "crm contact: the record has no id at 'id' (from memory://crm/contact?page=1)"]


async def test_a_record_a_webhook_names_is_read_and_one_gone_is_a_delete(rig: Rig) -> None:
    ann = rig.system.put(email="ann@x.org", full_name="Ann")
    await rig.lane.round()  # the first round polls
    rig.system.edit(ann, full_name="Ann B")
    rig.lane.request_read(ann)
    await rig.lane.round()  # no poll is due: only the webhook's record is read
    rig.system.remove(ann)
    rig.lane.request_read(ann, deleted_hint=True)
    await rig.lane.round()
    rig.lane.request_read("404")  # a record the lane never knew: nothing to report
    await rig.lane.round()
    assert rig.kinds() == ["Observed", "Observed", "Observed-deleted"]


async def test_records_webhooks_name_are_read_concurrency_at_a_time_and_reported_in_order(
        ) -> None:
    """100 webhooks a second, one read after another at 10 ms each, leave a lane seconds
    behind: the reads overlap, up to ``concurrency``, and are reported in id order."""
    rig = make_rig(endpoint(concurrency=3))
    ids = [rig.system.put(email=f"p{i}@x.org", full_name=f"P {i}") for i in range(7)]
    await rig.lane.round()  # the first round polls
    rig.system.read_latency = 0.05
    for external_id in ids:
        rig.system.edit(external_id, full_name=f"P {external_id} B")
        rig.lane.request_read(external_id)
    await rig.lane.round()
    assert rig.system.most_reads_at_once == 3
    read = [o for o in rig.reported() if isinstance(o, Observed)][len(ids):]
    assert [o.external_id for o in read] == sorted(ids)
    assert [o.fields["name"] for o in read] == [f"P {i} B" for i in sorted(ids)]


async def test_a_record_a_webhook_named_whose_read_failed_is_read_next_round(rig: Rig
                                                                          ) -> None:
    ann, bob, cy = (rig.system.put(email=f"{n}@x.org", full_name=n) for n in ("ann", "bob", "cy"))
    await rig.lane.round()
    for external_id in (ann, bob, cy):
        rig.system.edit(external_id, full_name=f"{external_id} edited")
        rig.lane.request_read(external_id)
    rig.system.fail("fetch", "down", after=1)  # bob's read: 503
    with pytest.raises(Unavailable):
        await rig.lane.round()
    assert [o.external_id for o in rig.reported()][3:] == [ann, cy]  # type: ignore[attr-defined]
    await rig.lane.round()  # no poll due: bob's read again, not lost until the next poll
    assert [o.external_id for o in rig.reported()][3:] == [ann, cy, bob]  # type: ignore[attr-defined]


async def test_a_record_a_webhook_named_whose_answer_is_garbled_is_left_to_the_next_poll(
        rig: Rig) -> None:
    """Not read again each round: a record whose read keeps failing that way would stop the
    lane's rounds, and its writes, for good."""
    ann, bob = (rig.system.put(email=f"{n}@x.org", full_name=n) for n in ("ann", "bob"))
    await rig.lane.round()
    for external_id in (ann, bob):
        rig.system.edit(external_id, full_name=f"{external_id} edited")
        rig.lane.request_read(external_id)
    rig.system.fail("fetch", "garbled")  # ann's read: not JSON
    with pytest.raises(MalformedResponse):
        await rig.lane.round()
    assert [o.external_id for o in rig.reported()][2:] == [bob]  # type: ignore[attr-defined]
    reads = rig.system.calls["fetch"]
    await rig.lane.round()  # no poll due: nothing to read
    assert rig.system.calls["fetch"] == reads


async def test_deletes_from_the_delete_feed_are_reported_once() -> None:
    rig = make_rig(endpoint(deletes={"feed": {"path": "/deleted", "since_param": "since"}}))
    gone = rig.system.put(email="ed@x.org", full_name="Ed")
    rig.system.put(email="flo@x.org", full_name="Flo")
    never_seen = rig.system.put(email="x@x.org", full_name="X")
    rig.system.remove(never_seen)
    await rig.lane.round()
    rig.system.remove(gone)
    for _ in range(2):  # the feed repeats its boundary: reported once all the same
        rig.lane.poll_soon()
        await rig.lane.round()
    deleted = [o.external_id for o in rig.reported() if isinstance(o, Observed) and o.deleted]
    assert deleted == [gone]


async def test_a_sweep_finds_deletes_and_confirms_each_with_a_read(rig: Rig) -> None:
    gone = rig.system.put(email="gus@x.org", full_name="Gus")
    filtered = rig.system.put(email="hal@x.org", full_name="Hal")
    await rig.lane.poll()
    assert await rig.lane.sweep() == 0
    rig.system.unlisted.add(filtered)  # out of the listing, but it answers a read
    rig.system.remove(gone)
    assert await rig.lane.sweep() == 1
    assert await rig.lane.sweep() == 0  # reported once
    deleted = [o.external_id for o in rig.reported() if isinstance(o, Observed) and o.deleted]
    assert deleted == [gone]


async def test_a_sweep_runs_when_it_is_due() -> None:
    rig = make_rig(endpoint(deletes={"reconcile_every_seconds": 60}))
    gone = rig.system.put(email="gus@x.org", full_name="Gus")
    await rig.lane.round()  # polls and sweeps
    rig.system.remove(gone)
    rig.lane.poll_soon()
    await rig.lane.round()  # a poll, but no sweep yet
    assert rig.kinds() == ["Observed"]
    rig.clock.now += 60
    rig.lane.poll_soon()
    await rig.lane.round()
    assert rig.kinds() == ["Observed", "Observed-deleted"]


async def test_a_tombstone_in_a_listing_is_a_delete_of_a_record_the_lane_knew() -> None:
    rig = make_rig(endpoint(deletes={"tombstone": "gone"}))
    ida = rig.system.put(email="ida@x.org", full_name="Ida")
    never = rig.system.put(email="n@x.org", full_name="Never seen")
    rig.system.remove(never)
    assert await rig.lane.poll() == 1  # a tombstone the lane never saw alive: nothing
    rig.system.remove(ida)
    assert await rig.lane.poll() == 1
    assert await rig.lane.poll() == 0
    assert [(o.external_id, o.deleted) for o in rig.reported()  # type: ignore[attr-defined]
            ] == [(ida, False), (ida, True)]


async def test_a_write_is_reported_with_what_the_system_answered(rig: Rig) -> None:
    ann = rig.system.put(email="ann@x.org", full_name="Ann")
    await rig.lane.poll()
    job = rig.intent("update", ann, values={"name": "Ann Lee"}, expected={"name": "Ann"})
    await rig.lane.execute_intents()
    written = rig.reported()[-1]
    assert isinstance(written, Written)
    assert (written.intent_id, written.canonical_id) == (job.intent_id, job.canonical_id)
    assert written.fields == {"email": "ann@x.org", "name": "Ann Lee"}
    assert written.native_version == "2"


async def test_a_record_bad_on_ten_polls_is_one_dead_letter_per_distinct_error() -> None:
    """The documented promise: one dead letter per error, not one per poll that sees it."""
    from daemon.metrics import Metrics

    metrics = Metrics(process=False)
    rig = make_rig(metrics=metrics)
    rig.system.broken = [BadRecord("the record has no updated-at at 'updated_at'",
                                   {"id": "77", "full_name": "New"}, id="77")]
    cy = rig.system.put(email="cy@x.org", full_name="Cy", company_id="9")  # no company 9
    for _ in range(10):
        rig.lane.poll_soon()
        await rig.lane.round()
        rig.system.edit(cy, full_name=f"Cy {rig.lane.polls}")  # seen again on every poll
    assert len(rig.letters()) == 2
    assert rig.lane.status()["dead_letters"] == 2
    rig.system.edit(cy, company_id="10")  # another error of the same record: its own letter
    await rig.lane.poll()
    assert [letter.reason for letter in rig.letters()][2:] == [
        f"crm contact {cy}: field company: refers to company 10, which crm does not have"]
    assert rig.lane.status()["dead_letters"] == 3
    assert metrics.registry.get_sample_value(
        "syncline_dead_letters_total", {"stage": "lane:crm"}) == 3


async def test_a_sweep_that_finds_the_known_records_gone_deletes_nothing_and_says_so() -> None:
    """A token that lost its rights: every listing empty, every read "not found". The
    circuit breaker holds the deletes, and the lane's status says why."""
    from daemon.metrics import Metrics

    metrics = Metrics(process=False)
    rig = make_rig(metrics=metrics)
    ids = [rig.system.put(email=f"p{i}@x.org", full_name=f"P{i}") for i in range(6)]
    await rig.lane.poll()
    assert rig.lane.problems() == []
    rig.system.blind = True
    assert await rig.lane.sweep() == 0
    assert "Observed-deleted" not in rig.kinds()
    problems = rig.lane.status()["problems"]
    assert len(problems) == 1 and "6 of 6 known records missing" in problems[0]
    gauge = {"system": "crm", "entity": "contact"}
    assert metrics.registry.get_sample_value("syncline_delete_breaker_open", gauge) == 1
    assert await rig.lane.sweep() == 0  # holds, sweep after sweep
    rig.system.blind = False
    rig.system.remove(ids[0])
    rig.system.remove(ids[1])  # a person's real deletes, below the bound, go through
    assert await rig.lane.sweep() == 2
    assert rig.lane.problems() == []
    assert metrics.registry.get_sample_value("syncline_delete_breaker_open", gauge) == 0


async def test_the_delete_breaker_can_be_turned_off_for_a_real_mass_delete() -> None:
    rig = make_rig(endpoint(deletes={"max_missing_share": 1}))
    ids = [rig.system.put(email=f"p{i}@x.org", full_name=f"P{i}") for i in range(6)]
    await rig.lane.poll()
    for external_id in ids:
        rig.system.remove(external_id)
    assert await rig.lane.sweep() == 6
    assert rig.lane.problems() == []
