"""The lane's loop against the twins: rounds, errors reported once, status."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.daemon.lane.conftest import Rig, endpoint, make_rig


async def eventually(check: Callable[[], bool], what: str, nudge: Callable[[], None],
                     seconds: float = 10.0) -> None:
    """Wait until ``check()`` holds, waking the loop with ``nudge`` (fails after ``seconds``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        nudge()
        await asyncio.sleep(0.01)


async def test_the_running_lane_reads_writes_and_reports_an_error_once(rig: Rig) -> None:
    ann = rig.system.put(email="ann@x.org", full_name="Ann")
    stop = asyncio.Event()
    running = asyncio.create_task(rig.lane.run(stop))
    nudge = rig.lane.poll_soon
    try:
        await eventually(lambda: rig.lane.polls >= 1, "the first poll", nudge)
        rig.intent("update", ann, values={"name": "Ann Lee"}, expected={"name": "Ann"})
        await eventually(lambda: "Written" in rig.kinds(), "the write", nudge)
        rig.system.fail("changes", "garbled", times=None)  # an HTML page, poll after poll
        listed = rig.system.calls["changes"]
        await eventually(lambda: rig.system.calls["changes"] >= listed + 3,
                         "three polls that fail", nudge)
        assert rig.lane.status()["last_error"] is not None
        rig.system.heal()
        bob = rig.system.put(email="bob@x.org", full_name="Bob")
        await eventually(lambda: bob in rig.journal.index, "the lane to go on", nudge)
        assert rig.lane.status()["last_error"] is None
    finally:
        stop.set()
        await running
    [letter] = rig.letters()  # once, however many rounds it failed
    assert letter.error == "MalformedResponse" and letter.stage == "lane:crm"
    assert rig.kinds() == ["Observed", "Written", "Observed"]


async def test_status_says_where_the_lane_is() -> None:
    rig = make_rig(required=("full_name",))
    rig.system.put(email="ann@x.org", full_name="Ann")
    rig.intent("create", values={"email": "x@x.org"}, attempt=5)  # refused: no name
    await rig.lane.round()
    status = rig.lane.status()
    cursor = rig.lane.log.head.cursor
    assert cursor is not None
    assert status == {
        "system": "crm", "entity": "contact", "healthy": True, "polls": 1, "seq": 2,
        "cursor": cursor, "cursor_lag_seconds": round(rig.clock.now - cursor, 1),
        "known_records": 1, "waiting_for_links": 0, "behind": 1, "last_error": None,
        "not_kept": [], "not_kept_count": 0, "loop_breakers": {}, "loop_breakers_open": 0,
        "dead_letters": 1, "problems": [], "creates_unsettled": 0,
        "oldest_unsettled_create_seconds": None, "creates_settled_without_intent": 0}


async def test_a_webhook_ends_the_wait_for_intents_and_its_record_is_read_at_once() -> None:
    rig = make_rig(endpoint(poll_every_seconds=60))  # no poll due: the lane waits for intents
    ann = rig.system.put(email="ann@x.org", full_name="Ann")
    stop = asyncio.Event()
    running = asyncio.create_task(rig.lane.run(stop))
    loop = asyncio.get_running_loop()
    try:
        await eventually(lambda: rig.lane.polls >= 1, "the first poll", lambda: None)
        await asyncio.sleep(0.05)  # in its wait for intents now (half a second at most)
        rig.system.edit(ann, full_name="Ann Lee")
        asked = loop.time()
        rig.lane.request_read(ann)  # the system's webhook
        await eventually(lambda: len(rig.reported()) == 2, "the webhook's read", lambda: None)
        waited = loop.time() - asked
    finally:
        stop.set()
        await running
    assert waited < 0.25, f"the webhook's record was read {waited:.3f} s after it"
    assert rig.kinds() == ["Observed", "Observed"]
    assert rig.reported()[-1].fields["name"] == "Ann Lee"  # type: ignore[union-attr]
