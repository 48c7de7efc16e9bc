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
from streams.errors import StreamsError
from streams.events import Observed, Written
from tests.daemon.lane.conftest import Rig, endpoint, make_rig

BARE = endpoint(lookup=None)  # no lookup, no idempotency key: only the content tells


def marked() -> EntityEndpointConfig:
    return endpoint(lookup=None, create={"method": "POST",
                                         "canonical_id_field": "meta.syncline_id"})


async def crash_mid_burst(rig: Rig, creates: int, landed: int) -> list[str]:
    """Send ``creates`` creates; the first ``landed`` POSTs land, then the process dies before
    any outcome is committed. Returns the intents' canonical ids."""
    jobs = [rig.intent("create", values={"email": f"p{i}@x.org", "name": f"P {i}"})
            for i in range(creates)]
    rig.system.fail("create", "down", after=landed, times=None)  # the crash stops the rest
    rig.journal.fail_commits = True
    with pytest.raises(StreamsError):
        await rig.lane.execute_intents()
    rig.system.heal()
    rig.journal.fail_commits = False
    return [job.canonical_id for job in jobs]


@pytest.mark.parametrize("landed", [0, 1, 17, 40])
async def test_a_crash_in_a_burst_of_creates_duplicates_nothing(landed: int) -> None:
    rig = make_rig(BARE)
    theirs = rig.system.put(email="someone@x.org", full_name="Someone")  # a person's, meanwhile
    canonical = await crash_mid_burst(rig, 40, landed)
    assert len(rig.system.live()) == landed + 1
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


async def test_a_record_the_lane_reported_is_someones_and_never_taken_for_a_copy() -> None:
    """Two people may hold equal records; a copy a create lost was never reported."""
    rig = make_rig(BARE)
    theirs = rig.system.put(email="eve@x.org", full_name="Eve")
    await rig.lane.poll()
    job = rig.intent("create", values={"email": "eve@x.org", "name": "Eve"})
    work = await rig.lane.execute(job, rerun=True)  # as after a restart
    [ours] = [r["id"] for r in rig.system.live() if r["id"] != theirs]
    [written] = work.events
    assert isinstance(written, Written) and written.external_id == ours


async def test_two_equal_creates_lost_in_a_crash_each_find_their_own_copy() -> None:
    rig = make_rig(BARE)
    values = {"email": "twin@x.org", "name": "Twin"}
    rig.intent("create", values=values)
    rig.intent("create", values=values)
    rig.journal.fail_commits = True
    with pytest.raises(StreamsError):
        await rig.lane.execute_intents()
    rig.journal.fail_commits = False
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
    await rig.lane.execute(job)  # created; the lane dies before its commit
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
    await crash_mid_burst(rig, 3, 3)
    lane = rig.restart()
    rig.system.fail("*", "down", times=None)
    with pytest.raises(HttpError):  # HttpError: the loop backs off
        await lane.round()
    rig.system.heal()
    await lane.round()
    assert rig.kinds() == ["Written"] * 3
    assert len(rig.system.live()) == 3
