"""Creates never duplicate, with or without an idempotency key or a match key.

A create can land without its outcome being committed: the process dies between the POST and
the commit (a crash point in the middle of a burst), or the answer is lost or unreadable.
Each test plays one of these against the twins on an API with neither an idempotency key nor
a lookup, and counts the records in the system.
"""

from __future__ import annotations

import pytest

from daemon.connector.config import EntityEndpointConfig
from daemon.http import HttpError
from daemon.metrics import Metrics
from streams.errors import StreamsError
from streams.events import Observed, WriteFailed, Written
from tests.daemon.lane.conftest import Rig, endpoint, make_rig
from tests.daemon.lane.test_safety_writes import status_command

BARE = endpoint(lookup=None)  # no lookup, no idempotency key: only the content tells


def marked() -> EntityEndpointConfig:
    return endpoint(lookup=None, create={"method": "POST",
                                         "canonical_id_field": "meta.syncline_id"})


class Crash(Exception):
    """The process dies here (kill -9): nothing after this point happens."""


def crash() -> None:
    raise Crash


async def crash_mid_burst(rig: Rig, creates: int, commits: int) -> list[str]:
    """Send ``creates`` creates; the lane's first ``commits`` commits land, then the process
    dies (every later commit fails; a request in flight lands or not). Returns the intents'
    canonical ids."""
    jobs = [rig.intent("create", values={"email": f"p{i}@x.org", "name": f"P {i}"})
            for i in range(creates)]
    rig.journal.commits_left = commits
    with pytest.raises(StreamsError):
        await rig.lane.execute_intents()
    return [job.canonical_id for job in jobs]


@pytest.mark.parametrize("commits", [0, 1, 2, 3, 17, 40])
async def test_a_crash_at_any_commit_of_a_burst_of_creates_duplicates_nothing(
        commits: int) -> None:
    """The batch's creates commit their entries at once, then each its outcome: a crash at
    any commit of a burst loses at most the round trips in flight, and each of those is
    found by its content (40 creates: 42 commits, the last the batch's)."""
    rig = make_rig(BARE)
    theirs = rig.system.put(email="someone@x.org", full_name="Someone")  # a person's, meanwhile
    canonical = await crash_mid_burst(rig, 40, commits)
    lane = rig.restart()
    for _ in range(3):
        await lane.round()
    live = rig.system.live()
    assert sorted(r["email"] for r in live) == sorted(
        [f"p{i}@x.org" for i in range(40)] + ["someone@x.org"])  # each once
    written = {e.canonical_id: e.external_id for e in rig.reported() if isinstance(e, Written)}
    assert sorted(written) == sorted(canonical)
    assert len(set(written.values())) == 40  # every record linked to its own create
    observed = {e.external_id for e in rig.reported() if isinstance(e, Observed)}
    assert observed == {theirs}  # no copy of a create reported as a person's new record
    assert [w for w, _ in rig.system.writes].count("create") == 40
    assert rig.journal.creating == {}  # every entry forgotten once its batch committed


async def test_a_create_is_journalled_before_its_request() -> None:
    """A crash between the entry and the POST: the entry is there, the record is not, and
    the restarted lane creates it once."""
    rig = make_rig(BARE)
    job = rig.intent("create", values={"email": "ann@x.org", "name": "Ann"})
    rig.system.before("create", crash)
    with pytest.raises(Crash):
        await rig.lane.execute_intents()
    assert list(rig.journal.restart().creating) == [job.intent_id]
    assert rig.system.live() == []
    await rig.restart().round()
    [made] = rig.system.live()
    assert [(e.canonical_id, e.external_id) for e in rig.reported()
            if isinstance(e, Written)] == [(job.canonical_id, made["id"])]


async def test_a_create_that_landed_before_a_crash_is_found_by_its_entry() -> None:
    """A crash between the POST and its outcome: the entry says it may have landed, and the
    copy is found by its content, not made again."""
    rig = make_rig(BARE)
    job = rig.intent("create", values={"email": "bo@x.org", "name": "Bo"})
    rig.system.before("create", lambda: setattr(rig.journal, "fail_commits", True))
    with pytest.raises(StreamsError):
        await rig.lane.execute_intents()
    [made] = rig.system.live()
    assert rig.reported() == []  # the outcome was lost with the process
    await rig.restart().round()
    assert [r["id"] for r in rig.system.live()] == [made["id"]]
    assert [(e.canonical_id, e.external_id) for e in rig.reported()
            if isinstance(e, Written)] == [(job.canonical_id, made["id"])]
    assert rig.system.writes == [("create", made["id"])]


async def test_a_create_never_journalled_was_never_sent_and_is_not_searched_for() -> None:
    """The entry drives the search: a re-run create without one is made at once."""
    rig = make_rig(BARE)
    rig.intent("create", values={"email": "cy@x.org", "name": "Cy"})
    rig.journal.commits_left = 0  # the process dies at its first commit: the entry
    with pytest.raises(StreamsError):
        await rig.lane.execute_intents()
    assert rig.system.live() == []
    assert await rig.restart().execute_intents() == 1
    assert len(rig.system.live()) == 1
    assert rig.system.calls["changes"] == 0  # no listing: nothing was searched for


async def test_a_create_outcome_is_committed_at_once_not_with_its_batch() -> None:
    """The batch's own commit fails after the create: its outcome is committed already, and
    the restarted lane does not run it again."""
    rig = make_rig(BARE)
    other = rig.system.put(email="dee@x.org", full_name="Dee")
    job = rig.intent("create", values={"email": "eli@x.org", "name": "Eli"})
    rig.intent("update", other, values={"name": "Dee B"}, expected={"name": "Dee"})
    rig.journal.commits_left = 2  # the create's entry and outcome; then the batch dies
    with pytest.raises(StreamsError):
        await rig.lane.execute_intents()
    [written] = rig.reported()
    assert isinstance(written, Written) and written.canonical_id == job.canonical_id
    await rig.restart().round()
    assert [w for w, _ in rig.system.writes].count("create") == 1
    assert len(rig.system.live()) == 2
    assert rig.journal.creating == {}


async def test_a_create_whose_answer_was_unreadable_is_found_by_its_content() -> None:
    rig = make_rig(BARE)
    job = rig.intent("create", values={"email": "lou@x.org", "name": "Lou"})
    rig.system.fail("create", "garbled", landed=True)
    assert await rig.lane.execute_intents() == 1
    [made] = rig.system.live()
    [written] = rig.reported()
    assert isinstance(written, Written)
    assert (written.external_id, written.canonical_id) == (made["id"], job.canonical_id)


async def test_a_create_whose_answer_timed_out_waits_and_then_finds_its_copy() -> None:
    rig = make_rig(BARE)
    rig.intent("create", values={"email": "tim@x.org", "name": "Tim"})
    rig.system.fail("create", "down", landed=True)  # it landed; a timeout said otherwise
    rig.system.fail("changes", "down")  # and the search for its copy fails too: it waits
    assert await rig.lane.execute_intents() == 0
    assert await rig.lane.execute_intents() == 1
    assert len(rig.system.live()) == 1
    assert rig.kinds() == ["Written"]


async def test_a_restarted_lane_whose_intents_come_late_reads_nothing_before_its_creates(
        ) -> None:
    """The restarted lane's first fetch of intents came back empty (a loaded broker): it
    must not poll before its creates settle, or it reports their copies as new records."""
    rig = make_rig(BARE)
    rig.intent("create", values={"email": "al@x.org", "name": "Al"})
    rig.system.before("create", lambda: setattr(rig.journal, "fail_commits", True))
    with pytest.raises(StreamsError):  # created; the process dies before its outcome
        await rig.lane.execute_intents()
    lane = rig.restart()
    rig.journal.empty_fetches = 1
    for _ in range(3):
        await lane.round()
    assert len(rig.system.live()) == 1
    assert rig.kinds() == ["Written"]


@pytest.mark.parametrize("how", ["poll", "webhook"])
async def test_nothing_is_read_while_a_create_sent_may_have_landed_unseen(how: str) -> None:
    """A create whose answer was lost waits; a poll or a webhook's read in the meantime
    would report its copy as someone's new record (and the create would then make another):
    the create runs again first."""
    rig = make_rig(BARE)
    job = rig.intent("create", values={"email": "vi@x.org", "name": "Vi"})
    rig.system.fail("create", "down", landed=True)  # it landed; a timeout said otherwise
    rig.system.fail("changes", "down")  # and the search for its copy fails: it waits
    assert await rig.lane.execute_intents() == 0
    [made] = rig.system.live()
    if how == "poll":
        rig.lane.poll_soon()
    else:
        rig.lane.request_read(made["id"])  # the system's webhook: record created
    await rig.lane.round()
    await rig.lane.round()
    assert [r["id"] for r in rig.system.live()] == [made["id"]]
    assert [(type(e).__name__, e.canonical_id) for e in rig.reported()] == [
        ("Written", job.canonical_id)]


async def test_a_record_the_lane_reported_is_someones_and_never_taken_for_a_copy() -> None:
    """Two people may hold equal records; a copy a create lost was never reported."""
    rig = make_rig(BARE)
    theirs = rig.system.put(email="eve@x.org", full_name="Eve")
    await rig.lane.poll()
    rig.intent("create", values={"email": "eve@x.org", "name": "Eve"})
    rig.system.fail("create", "garbled", landed=True)  # it landed; the answer is unreadable
    await rig.lane.execute_intents()
    [ours] = [r["id"] for r in rig.system.live() if r["id"] != theirs]
    [written] = [e for e in rig.reported() if isinstance(e, Written)]
    assert written.external_id == ours


async def test_two_equal_creates_lost_in_a_crash_each_find_their_own_copy() -> None:
    rig = make_rig(BARE)
    values = {"email": "twin@x.org", "name": "Twin"}
    rig.intent("create", values=values)
    rig.intent("create", values=values)
    rig.system.fail("create", "garbled", landed=True, times=2)  # both land, unreadably
    rig.system.fail("changes", "down", times=None)  # and neither copy can be searched for
    assert await rig.lane.execute_intents() == 0  # they wait; then the process dies
    rig.system.heal()
    assert len(rig.system.live()) == 2
    lane = rig.restart()
    await lane.round()
    assert len(rig.system.live()) == 2
    written = [e.external_id for e in rig.reported() if isinstance(e, Written)]
    assert sorted(written) == sorted(r["id"] for r in rig.system.live())


async def test_the_canonical_id_field_finds_a_copy_a_person_edited_since() -> None:
    """Where the API keeps a value of ours, the copy is found by the canonical id, even when
    its content changed between the crash and the restart."""
    rig = make_rig(marked())
    job = rig.intent("create", values={"email": "ida@x.org", "name": "Ida"})
    rig.system.before("create", lambda: setattr(rig.journal, "fail_commits", True))
    with pytest.raises(StreamsError):  # created; the lane dies before its outcome commits
        await rig.lane.execute_intents()
    rig.journal.fail_commits = False
    [made] = rig.system.live()
    assert made["meta"] == {"syncline_id": job.canonical_id}
    rig.system.edit(made["id"], full_name="Ida B")
    await rig.restart().round()
    assert [r["id"] for r in rig.system.live()] == [made["id"]]
    written = [e for e in rig.reported() if isinstance(e, Written)]
    assert [(e.external_id, e.canonical_id) for e in written] == [(made["id"],
                                                                   job.canonical_id)]


def test_only_a_create_takes_a_canonical_id_field() -> None:
    with pytest.raises(ValueError, match="only a create writes the canonical id"):
        endpoint(update={"method": "PATCH", "canonical_id_field": "meta.id"})


async def test_a_lane_that_cannot_reach_the_system_after_a_restart_does_not_poll() -> None:
    """Its creates must find their copies first: the poll would report them as new."""
    rig = make_rig(BARE)
    await crash_mid_burst(rig, 3, 3)  # some entries and outcomes, then the process dies
    landed = len(rig.system.live())
    assert landed > len([e for e in rig.reported() if isinstance(e, Written)])
    lane = rig.restart()
    rig.system.fail("*", "down", times=None)
    with pytest.raises(HttpError):  # HttpError: the loop backs off
        await lane.round()
    rig.system.heal()
    await lane.round()
    assert rig.kinds() == ["Written"] * 3
    assert len(rig.system.live()) == 3
    assert [w for w, _ in rig.system.writes].count("create") == 3


@pytest.mark.parametrize("landed", [True, False])
async def test_a_create_whose_intent_expired_is_settled_by_the_search_alone(
        landed: bool) -> None:
    """The lane was down past the intents' retention: the create's entry is open and its
    intent never comes again. The entry carries the intent, so the search settles it: the
    copy found is reported as the create's (once, never as someone's new record); none found,
    the create is reported failed and the hub plans it again. Either way the lane reads
    again, and nothing is made from the week-old values."""
    rig = make_rig(BARE)
    job = rig.intent("create", values={"email": "old@x.org", "name": "Old"})
    if landed:  # the POST landed, the process died before its outcome
        rig.system.before("create", lambda: setattr(rig.journal, "fail_commits", True))
        with pytest.raises(StreamsError):
            await rig.lane.execute_intents()
    else:  # the process died between the entry and the POST
        rig.system.before("create", crash)
        with pytest.raises(Crash):
            await rig.lane.execute_intents()
    made = [r["id"] for r in rig.system.live()]
    rig.journal.expire_intents(1)  # seven days pass: the intent is gone from the topic
    lane = rig.restart()
    theirs = rig.system.put(email="new@x.org", full_name="New")  # a person's, meanwhile
    for _ in range(2):
        await lane.round()
    assert [r["id"] for r in rig.system.live()] == [*made, theirs]  # nothing made again
    outcomes = [(type(e).__name__, e.intent_id) for e in rig.reported()
                if isinstance(e, Written | WriteFailed)]
    assert outcomes == [("Written" if landed else "WriteFailed", job.intent_id)]
    if landed:
        [written] = [e for e in rig.reported() if isinstance(e, Written)]
        assert (written.external_id, written.canonical_id) == (made[0], job.canonical_id)
    observed = [e.external_id for e in rig.reported() if isinstance(e, Observed)]
    assert observed == [theirs]  # reads go on; the copy is no one's new record
    assert rig.journal.creating == {}
    assert lane.status()["creates_settled_without_intent"] == 1


async def test_an_unsettled_create_is_a_problem_in_the_status_once_it_is_old() -> None:
    """While a create may have landed unseen the lane reads nothing: for a while that is an
    outage like any, past ten minutes the status says so (and the gauge says how long)."""
    metrics = Metrics(process=False)
    rig = make_rig(BARE, metrics=metrics)
    rig.intent("create", values={"email": "wait@x.org", "name": "Wait"})
    rig.system.before("create", lambda: setattr(rig.journal, "fail_commits", True))
    with pytest.raises(StreamsError):
        await rig.lane.execute_intents()
    lane = rig.restart()
    rig.system.fail("*", "down", times=None)
    with pytest.raises(HttpError):
        await lane.round()
    assert lane.status()["creates_unsettled"] == 1
    assert lane.problems() == []
    rig.clock.now += 601
    with pytest.raises(HttpError):
        await lane.round()
    [problem] = lane.problems()
    assert "1 create sent may have landed unseen for 601 s" in problem
    gauge = metrics.registry.get_sample_value(
        "syncline_lane_unsettled_create_seconds", {"system": "crm", "entity": "contact"})
    assert gauge == 601.0
    rig.system.heal()
    await lane.round()
    assert lane.problems() == [] and lane.status()["creates_unsettled"] == 0


async def test_an_entry_that_cannot_settle_is_never_silent() -> None:
    """An entry written before entries carried their intent, whose intent is gone: nothing
    can settle it, the lane reads nothing, and `syncline status` says so once it is old
    (the system answering all along)."""
    rig = make_rig(BARE)
    await rig.journal.commit([], creating={"gone": b'{"since": null, "made": null}'})
    lane = rig.restart()
    rig.system.put(email="new@x.org", full_name="New")
    await lane.round()
    assert rig.reported() == []  # held: it may be that create's copy
    rig.clock.now += 601
    await lane.round()
    code, out = status_command({"lanes": {"crm/contact": lane.status()}})
    assert code == 1, out
    assert "1 create sent may have landed unseen for 601 s" in out


@pytest.mark.parametrize(("config", "outcome"), [
    ("lookup", "written"), ("bare", "written"),
    ("lookup", "stale")])  # stale: the lookup found a person's record holding other values
async def test_a_create_committed_behind_an_intent_that_waited_is_not_run_again(
        config: str, outcome: str) -> None:
    """The chaos run's p17-13: in one batch an update waits (the system answered it 503) and
    a later create's outcome is committed, with the batch's intents offset held before the
    update. A person deletes the record the create made (or, for a stale create, their own
    record it found); the process dies (kill -9). The restarted lane is handed the create
    again and must not run it: the person's delete stays, nothing is re-created."""
    rig = make_rig(endpoint() if config == "lookup" else BARE)
    other = rig.system.put(email="dee@x.org", full_name="Dee")
    if outcome == "stale":  # a person made the record first, with another name
        theirs = rig.system.put(email="eli@x.org", full_name="Eli Person")
    rig.intent("update", other, values={"name": "Dee B"}, expected={"name": "Dee"})
    job = rig.intent("create", values={"email": "eli@x.org", "name": "Eli"})
    rig.system.fail("fetch", "down")  # the update's read: it waits; the create runs
    assert await rig.lane.execute_intents() == 1
    assert rig.journal.head.intents_offset == 0  # held before the update that waited
    kinds = [type(e).__name__ for e in rig.reported()
             if getattr(e, "canonical_id", None) == job.canonical_id]
    assert kinds == ["Written" if outcome == "written" else "WriteStale"]
    if outcome == "written":
        [made] = [r["id"] for r in rig.system.live() if r["email"] == "eli@x.org"]
        rig.system.remove(made)  # the person deletes the copy
    else:
        rig.system.remove(theirs)  # the person deletes their own record
    lane = rig.restart()  # kill -9: the in-process memory of what ran is gone
    for _ in range(3):
        await lane.round()
    assert [r["email"] for r in rig.system.live()] == ["dee@x.org"]  # the delete stays
    assert rig.system.held(other) == {"email": "dee@x.org", "full_name": "Dee B"}
    assert [w for w, _ in rig.system.writes].count("create") == (
        1 if outcome == "written" else 0)
    assert [type(e).__name__ for e in rig.reported()
            if getattr(e, "canonical_id", None) == job.canonical_id] == kinds  # once
    assert rig.journal.head.intents_offset == 2
    assert rig.journal.creating == {}
    assert rig.journal.ran == {}  # forgotten once the offset moved past the create


@pytest.mark.parametrize("restart", [False, True])
async def test_a_create_parked_behind_an_intent_that_waited_is_made_once(
        restart: bool) -> None:
    """A create waits for a link (parked) while an earlier update of its batch waits for the
    system: handed out again from the update, it is the parked intents' to run, not run a
    second time (once the link came, that made two records)."""
    rig = make_rig(BARE)
    other = rig.system.put(email="dee@x.org", full_name="Dee")
    rig.intent("update", other, values={"name": "Dee B"}, expected={"name": "Dee"})
    job = rig.intent("create", values={"email": "ed@x.org", "name": "Ed",
                                       "company": "co-later"})
    rig.system.fail("fetch", "down")
    await rig.lane.execute_intents()
    assert list(rig.journal.parked) == [job.intent_id]
    assert rig.journal.head.intents_offset == 0
    rig.links.link("company", "co-later", "crm", "12")
    lane = rig.restart() if restart else rig.lane
    for _ in range(4):
        await lane.round()
    assert sorted(r["email"] for r in rig.system.live()) == ["dee@x.org", "ed@x.org"]
    assert [w for w, _ in rig.system.writes].count("create") == 1
    assert len([e for e in rig.reported()
                if isinstance(e, Written) and e.canonical_id == job.canonical_id]) == 1
    assert (rig.journal.parked, rig.journal.ran, rig.journal.creating) == ({}, {}, {})
