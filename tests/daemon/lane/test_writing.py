"""The lane's writing side against the twins: updates, stale writes, creates, deletes, failures.

Each test plays one story a real system can tell: a person's edit the hub has not seen, a
crash between a write and its commit, an answer lost after the write landed.
"""

from __future__ import annotations

import pytest

from daemon.connector.rest import RemoteRecord
from daemon.lane import RETRIABLE_ROUNDS
from streams.errors import StreamsError
from streams.events import Observed, WriteFailed, WriteIntent, WriteStale, Written
from tests.daemon.lane.conftest import IDEMPOTENT, Rig, endpoint, make_rig

# -- updates ---------------------------------------------------------------------------------


async def test_an_update_writes_only_the_fields_still_expected(rig: Rig) -> None:
    ann = rig.system.put(email="ann@x.org", full_name="Ann")
    await rig.lane.poll()
    rig.intent("update", ann, values={"name": "Ann Lee", "email": "ann@x.org"},
               expected={"name": "Ann", "email": "old@x.org"})  # email: there already
    assert await rig.lane.execute_intents() == 1
    assert rig.system.held(ann) == {"email": "ann@x.org", "full_name": "Ann Lee"}
    assert rig.system.writes == [("update", ann)]
    assert rig.kinds() == ["Observed", "Written"]


async def test_an_edit_the_hub_has_not_seen_makes_the_write_stale(rig: Rig) -> None:
    bo = rig.system.put(email="bo@x.org", full_name="Bo")
    await rig.lane.poll()
    rig.system.edit(bo, full_name="Bo (person)")  # before the write
    job = rig.intent("update", bo, values={"name": "Bo (hub)"}, expected={"name": "Bo"})
    assert await rig.lane.execute_intents() == 1
    assert rig.system.held(bo) == {"email": "bo@x.org", "full_name": "Bo (person)"}
    assert rig.system.writes == []
    read, stale = rig.reported()[-2:]
    assert isinstance(read, Observed) and read.fields["name"] == "Bo (person)"  # first
    assert isinstance(stale, WriteStale)
    assert stale.intent_id == job.intent_id and stale.fields_changed == ["name"]


async def test_an_edit_between_the_read_and_the_write_is_caught_by_the_condition() -> None:
    rig = make_rig(endpoint(conditional="etag"))
    cy = rig.system.put(email="cy@x.org", full_name="Cy")
    await rig.lane.poll()
    rig.system.before("update", lambda: rig.system.edit(cy, full_name="Cy (person)"))
    rig.intent("update", cy, values={"name": "Cy (hub)"}, expected={"name": "Cy"})
    assert await rig.lane.execute_intents() == 1
    assert rig.system.held(cy) == {"email": "cy@x.org", "full_name": "Cy (person)"}
    assert rig.kinds()[-2:] == ["Observed", "WriteStale"]  # read again, decided again


async def test_a_write_without_a_condition_held_past_its_read_reads_again(rig: Rig) -> None:
    """No condition to carry: the write goes out only while its read is fresh. Held longer
    (a 429's pause, a slow process) while a person edits, it is not sent; the lane reads
    again and finds the edit, which goes to the hub first."""
    cy = rig.system.put(email="cy@x.org", full_name="Cy")
    await rig.lane.poll()

    def meanwhile() -> None:
        rig.system.edit(cy, full_name="Cy (person)")
        rig.system.hold(1.0)  # the write waits a second after its read

    rig.system.before("update", meanwhile)
    job = rig.intent("update", cy, values={"name": "Cy (hub)"}, expected={"name": "Cy"})
    assert await rig.lane.execute_intents() == 1
    assert rig.system.held(cy) == {"email": "cy@x.org", "full_name": "Cy (person)"}
    assert rig.system.writes == []
    read, stale = rig.reported()[-2:]
    assert isinstance(read, Observed) and read.fields["name"] == "Cy (person)"
    assert isinstance(stale, WriteStale) and stale.intent_id == job.intent_id


async def test_a_write_whose_reads_keep_going_stale_waits_and_runs_again(rig: Rig) -> None:
    """A lane too slow to write within its reads, round after round, writes nothing and
    waits like in an outage; the intent runs again later and writes."""
    cy = rig.system.put(email="cy@x.org", full_name="Cy")
    await rig.lane.poll()
    slow = rig.system.fetch

    async def late_fetch(external_id: str) -> RemoteRecord | None:
        found = await slow(external_id)
        rig.system.hold(1.0)
        return found

    rig.system.fetch = late_fetch  # type: ignore[method-assign]
    rig.intent("update", cy, values={"name": "Cy (hub)"}, expected={"name": "Cy"})
    assert await rig.lane.execute_intents() == 0  # waits
    assert rig.system.writes == []
    rig.system.fetch = slow  # type: ignore[method-assign]
    assert await rig.lane.execute_intents() == 1
    assert rig.system.held(cy) == {"email": "cy@x.org", "full_name": "Cy (hub)"}
    assert rig.kinds()[-1] == "Written"


async def test_a_retried_intent_writes_nothing_twice(rig: Rig) -> None:
    cy = rig.system.put(email="cy@x.org", full_name="Cy")
    await rig.lane.poll()
    job = rig.intent("update", cy, values={"name": "Cy Young"}, expected={"name": "Cy"})
    await rig.lane.execute(job)  # written, but the lane dies before its commit
    assert await rig.restart().execute_intents() == 1
    assert rig.system.writes == [("update", cy)]
    assert isinstance(rig.reported()[-1], Written)


async def test_an_update_of_a_record_gone_is_a_delete_and_stale(rig: Rig) -> None:
    di = rig.system.put(email="di@x.org", full_name="Di")
    await rig.lane.poll()
    rig.system.remove(di)
    rig.intent("update", di, values={"name": "Di B"}, expected={"name": "Di"})
    await rig.lane.execute_intents()
    assert rig.kinds() == ["Observed", "Observed-deleted", "WriteStale"]


# -- creates ---------------------------------------------------------------------------------


async def test_a_create_made_before_a_crash_is_found_by_its_match_key(rig: Rig) -> None:
    job = rig.intent("create", values={"email": "di@x.org", "name": "Di"})
    await rig.lane.execute(job)  # created; the lane dies before its commit
    assert await rig.restart().execute_intents() == 1
    [held] = rig.system.live()
    assert rig.system.writes == [("create", held["id"])]  # not created twice
    written = rig.reported()[-1]
    assert isinstance(written, Written)
    assert (written.external_id, written.canonical_id) == (held["id"], job.canonical_id)


async def test_a_create_adopts_a_persons_record_with_the_same_values(rig: Rig) -> None:
    theirs = rig.system.put(email="eve@x.org", full_name="Eve")
    rig.intent("create", values={"email": "eve@x.org", "name": "Eve"})
    assert await rig.lane.execute_intents() == 1
    assert [r["id"] for r in rig.system.live()] == [theirs]
    assert rig.system.writes == []
    assert rig.kinds() == ["Written"]
    assert rig.reported()[0].external_id == theirs  # type: ignore[attr-defined]


async def test_a_create_that_finds_a_different_record_is_stale(rig: Rig) -> None:
    theirs = rig.system.put(email="eve@x.org", full_name="Eve (person)")
    rig.intent("create", values={"email": "eve@x.org", "name": "Eve"})
    await rig.lane.execute_intents()
    assert [r["id"] for r in rig.system.live()] == [theirs]
    read, stale = rig.reported()
    assert isinstance(read, Observed) and read.fields["name"] == "Eve (person)"
    assert isinstance(stale, WriteStale) and stale.fields_changed == ["name"]
    assert stale.external_id == theirs


async def test_a_create_whose_answer_timed_out_is_found_by_a_lookup(rig: Rig) -> None:
    rig.system.fail("create", "down", landed=True)
    rig.intent("create", values={"email": "fay@x.org", "name": "Fay"})
    assert await rig.lane.execute_intents() == 1
    [held] = rig.system.live()
    assert rig.kinds() == ["Written"]
    assert rig.reported()[0].external_id == held["id"]  # type: ignore[attr-defined]


async def test_a_create_refused_as_a_duplicate_is_found_by_a_lookup() -> None:
    rig = make_rig(unique=("email",))
    rig.system.before("lookup", lambda: rig.system.put(email="gil@x.org", full_name="Gil"))
    rig.intent("create", values={"email": "gil@x.org", "name": "Gil"})  # races a person
    assert await rig.lane.execute_intents() == 1
    assert len(rig.system.live()) == 1
    assert rig.kinds() == ["Written"]


async def test_a_copy_deleted_before_its_create_was_reported_is_not_made_again() -> None:
    """The lane dies between its create and its commit; a person deletes the new copy.

    No lookup finds a deleted copy: only the API's idempotency key tells the re-run that its
    create happened, so the lane reports it written and then deleted, and makes no copy.
    """
    rig = make_rig(endpoint(create=IDEMPOTENT))
    job = rig.intent("create", values={"email": "ida@x.org", "name": "Ida"})
    await rig.lane.execute(job)
    [made] = rig.system.live()
    rig.system.remove(made["id"])
    assert await rig.restart().execute_intents() == 1
    assert rig.system.live() == []
    assert [w[0] for w in rig.system.writes] == ["create"]
    assert rig.kinds() == ["Written", "Observed-deleted"]


async def test_a_create_whose_answer_was_lost_waits_and_its_key_tells_what_happened() -> None:
    rig = make_rig(endpoint(create=IDEMPOTENT, lookup=None))
    rig.intent("create", values={"email": "lou@x.org", "name": "Lou"})
    rig.system.fail("create", "garbled", landed=True)
    assert await rig.lane.execute_intents() == 0  # waits: it may have happened
    assert not rig.lane.healthy
    [made] = rig.system.live()
    rig.system.remove(made["id"])
    await rig.lane.poll()
    assert await rig.lane.execute_intents() == 1
    assert rig.system.live() == []
    assert [w[0] for w in rig.system.writes] == ["create"]
    assert rig.kinds() == ["Written", "Observed-deleted"]


async def test_an_intent_read_again_by_the_same_process_is_not_run_twice() -> None:
    """After an outage the lane rewinds and reads again intents that ran: one that ran and
    was committed is not run again (a copy a person deleted since would come back)."""
    rig = make_rig(endpoint(lookup=None))
    job = rig.intent("create", values={"email": "kim@x.org", "name": "Kim"})
    assert await rig.lane.execute_intents() == 1
    rig.system.remove(rig.system.live()[0]["id"])
    rig.journal.send(job)  # read again, as after a rewind
    await rig.lane.execute_intents()
    assert rig.system.live() == []
    assert rig.kinds() == ["Written"]


async def test_without_idempotent_creates_or_a_lookup_a_rerun_creates_again() -> None:
    """The window the idempotency key closes (docs/DECISIONS.md): shown, not hidden."""
    rig = make_rig(endpoint(lookup=None))
    rig.intent("create", values={"email": "jo@x.org", "name": "Jo"})
    rig.system.before("create", lambda: setattr(rig.journal, "fail_commits", True))
    with pytest.raises(StreamsError):  # created; the process dies before its outcome
        await rig.lane.execute_intents()
    rig.system.remove(rig.system.live()[0]["id"])  # and a person deletes the copy meanwhile
    await rig.restart().execute_intents()
    assert [r["email"] for r in rig.system.live()] == ["jo@x.org"]


async def test_a_create_whose_outcome_committed_is_not_made_again_after_a_delete() -> None:
    """Outside that window (the round trip) the outcome is committed: a person's delete of
    the copy is a delete, never undone by a re-run."""
    rig = make_rig(endpoint(lookup=None))
    job = rig.intent("create", values={"email": "jo@x.org", "name": "Jo"})
    await rig.lane.execute(job)  # the outcome is committed; the batch is not
    rig.system.remove(rig.system.live()[0]["id"])
    await rig.restart().execute_intents()
    assert rig.system.live() == []


# -- deletes ---------------------------------------------------------------------------------


async def test_a_delete_removes_the_record_and_is_reported_written(rig: Rig) -> None:
    gus = rig.system.put(email="gus@x.org", full_name="Gus")
    await rig.lane.poll()
    rig.intent("delete", gus, expected={"email": "gus@x.org", "name": "Gus"})
    assert await rig.lane.execute_intents() == 1
    assert rig.system.live() == []
    written = rig.reported()[-1]
    assert isinstance(written, Written) and written.fields is None


async def test_a_delete_of_a_record_edited_since_is_stale_and_deletes_nothing(rig: Rig
                                                                             ) -> None:
    hal = rig.system.put(email="hal@x.org", full_name="Hal")
    await rig.lane.poll()
    rig.system.edit(hal, full_name="Hal (person)")
    rig.intent("delete", hal, expected={"email": "hal@x.org", "name": "Hal"})
    assert await rig.lane.execute_intents() == 1
    assert rig.system.held(hal) is not None
    assert rig.system.writes == []
    stale = rig.reported()[-1]
    assert isinstance(stale, WriteStale) and stale.fields_changed == ["name"]


async def test_a_delete_of_a_record_already_gone_is_written(rig: Rig) -> None:
    ivy = rig.system.put(email="ivy@x.org", full_name="Ivy")
    await rig.lane.poll()
    rig.system.remove(ivy)
    rig.intent("delete", ivy, expected={"email": "ivy@x.org", "name": "Ivy"})
    await rig.lane.execute_intents()
    assert rig.kinds() == ["Observed", "Written"]


async def test_a_delete_whose_answer_is_garbled_is_settled_by_a_read(rig: Rig) -> None:
    jan = rig.system.put(email="jan@x.org", full_name="Jan")
    await rig.lane.poll()
    rig.system.fail("delete", "garbled", landed=True)  # deleted, and the answer is HTML
    rig.intent("delete", jan, expected={"email": "jan@x.org", "name": "Jan"})
    assert await rig.lane.execute_intents() == 1
    assert rig.system.live() == []
    assert rig.kinds() == ["Observed", "Written"]  # not WriteFailed


async def test_a_delete_that_lands_after_its_rounds_failed_is_reported_written(rig: Rig
                                                                              ) -> None:
    """It fails while the system answers otherwise, round after round; at the last round it
    lands and its answer is lost: a read settles it, and it is written, not failed."""
    kai = rig.system.put(email="kai@x.org", full_name="Kai")
    await rig.lane.poll()
    rig.system.fail("delete", "down", times=RETRIABLE_ROUNDS)
    rig.system.fail("delete", "down", landed=True)
    rig.intent("delete", kai, expected={"email": "kai@x.org", "name": "Kai"})
    for _ in range(RETRIABLE_ROUNDS):
        assert await rig.lane.execute_intents() == 0  # waits
        await rig.lane.poll()
    assert await rig.lane.execute_intents() == 1
    assert rig.system.live() == []
    assert rig.kinds()[-1] == "Written"


async def test_a_delete_whose_every_answer_fails_is_failed_when_a_read_finds_the_copy(
        rig: Rig) -> None:
    lee = rig.system.put(email="lee@x.org", full_name="Lee")
    await rig.lane.poll()
    rig.system.fail("delete", "down", times=None)  # every DELETE: 503, nothing deleted
    rig.intent("delete", lee, expected={"email": "lee@x.org", "name": "Lee"})
    for _ in range(RETRIABLE_ROUNDS):
        assert await rig.lane.execute_intents() == 0
        await rig.lane.poll()
    assert await rig.lane.execute_intents() == 1
    assert rig.system.held(lee) is not None
    assert rig.kinds()[-1] == "WriteFailed"


# -- failures, outages, rewinds --------------------------------------------------------------


async def test_a_record_the_system_refuses_fails_and_the_last_attempt_is_a_dead_letter(
        ) -> None:
    rig = make_rig(required=("full_name",))
    rig.intent("create", values={"email": "jo@x.org"}, attempt=4)
    rig.intent("create", values={"email": "jo@x.org"}, attempt=5)
    assert await rig.lane.execute_intents() == 2
    failed = rig.reported()
    assert [type(f).__name__ for f in failed] == ["WriteFailed", "WriteFailed"]
    assert all(isinstance(f, WriteFailed) and "422" in f.reason for f in failed)
    [letter] = rig.letters()
    assert letter.stage == "lane:crm" and "after 5 attempts" in letter.reason
    assert (letter.topic, letter.offset) == ("intents", 1)  # re-drivable from there
    assert rig.lane.behind == 1


async def test_an_unreadable_intent_is_a_dead_letter_and_the_next_one_runs(rig: Rig) -> None:
    mo = rig.system.put(email="mo@x.org", full_name="Mo")
    await rig.lane.poll()
    rig.journal.send_raw(b'{"schema": "syncline.intent/1", "op": "create"}', key=b"crm/contact")
    rig.intent("update", mo, values={"name": "Mo B"}, expected={"name": "Mo"})
    assert await rig.lane.execute_intents() == 2
    [letter] = rig.letters()
    assert (letter.error, letter.offset) == ("InvalidEvent", 0)
    assert "intent_id: Field required" in letter.reason
    assert rig.kinds() == ["Observed", "Written"]


async def test_another_lanes_intent_in_the_same_partition_is_left_alone(rig: Rig) -> None:
    other = WriteIntent(intent_id="i-x", canonical_id="c-x", entity="contact",
                        system="helpdesk", op="create", external_id=None,
                        values={"email": "x@x.org"}, expected={}, native_version=None,
                        clock={}, attempt=1)
    rig.journal.send(other)
    await rig.lane.execute_intents()
    assert rig.reported() == [] and rig.system.writes == []
    assert rig.lane.log.head.intents_offset == 1


async def test_intents_wait_while_the_system_is_down_and_run_once_it_answers(rig: Rig
                                                                            ) -> None:
    ida = rig.system.put(email="ida@x.org", full_name="Ida")
    await rig.lane.round()
    rig.system.fail("fetch", "down", times=None)
    rig.intent("update", ida, values={"name": "Ida B"}, expected={"name": "Ida"})
    assert await rig.lane.execute_intents() == 0  # waits, not failed
    assert not rig.lane.healthy
    tried = rig.system.calls["fetch"]
    await rig.lane.round()  # no poll is due, and the system did not answer: nothing tried
    assert rig.system.calls["fetch"] == tried
    assert rig.kinds() == ["Observed"]
    rig.system.heal()
    await rig.lane.poll()
    assert rig.lane.healthy
    assert await rig.lane.execute_intents() == 1
    assert rig.system.held(ida) == {"email": "ida@x.org", "full_name": "Ida B"}
    assert rig.kinds() == ["Observed", "Written"]


async def test_an_outage_rewinds_to_the_first_intent_that_waits_and_runs_nothing_twice(
        rig: Rig) -> None:
    a = rig.system.put(email="a@x.org", full_name="A")
    b = rig.system.put(email="b@x.org", full_name="B")
    await rig.lane.poll()
    rig.system.fail("fetch", "down")  # the first intent's read fails; the second's does not
    first = rig.intent("update", a, values={"name": "A2"}, expected={"name": "A"})
    second = rig.intent("update", b, values={"name": "B2"}, expected={"name": "B"})
    assert await rig.lane.execute_intents() == 1
    assert rig.lane.log.head.intents_offset == 0  # back to the first, which waits
    await rig.lane.poll()
    assert await rig.lane.execute_intents() == 2  # both read again; the second is known done
    assert sorted(rig.system.writes) == [("update", a), ("update", b)]
    written = [e.intent_id for e in rig.reported() if isinstance(e, Written)]
    assert written == [second.intent_id, first.intent_id]
    assert rig.lane.log.head.intents_offset == 2


async def test_what_was_not_committed_is_not_there_after_a_restart() -> None:
    rig = make_rig()
    ann = rig.system.put(email="ann@x.org", full_name="Ann")
    await rig.lane.poll()
    rig.intent("update", ann, values={"name": "Ann B"}, expected={"name": "Ann"})
    rig.journal.fail_commits = True  # the broker goes away: the write lands, its report not
    with pytest.raises(StreamsError, match="not answering"):
        await rig.lane.execute_intents()
    assert rig.kinds() == ["Observed"]
    lane = rig.restart()
    assert lane.log.head.intents_offset is None  # the intent runs again
    assert await lane.execute_intents() == 1
    assert rig.kinds() == ["Observed", "Written"]  # done already: reported, not rewritten
    assert rig.system.writes == [("update", ann)]
