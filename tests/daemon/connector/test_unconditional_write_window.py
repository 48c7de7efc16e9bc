"""A write to an API without conditional writes is never repeated by the HTTP client.

Found by the chaos run (docs/RELIABILITY.md, seed 20261207: four helpdesk edits lost, each
one absent from every conflict report). The lane reads the copy, decides the write against
that read, and sends an unconditional ``PUT``; the client used to repeat it after a 429 (or a
5xx, or a timeout) without reading again, a second or more later, over whatever a person had
changed since. Now the error comes back at once, and the lane runs the intent again later,
which reads the copy and decides again (``daemon/lane/writing.py``, ``_after_error``).
"""

from __future__ import annotations

import asyncio
import contextlib

from daemon.http import RateLimited, ReadTooOld, RetryPolicy
from daemon.sandbox import run_helpdesk
from tests.daemon.connector.conftest import ENV, connector


async def test_a_persons_edit_during_a_retried_unconditional_write_is_not_overwritten(
) -> None:
    async with run_helpdesk(api_key=ENV["HELPDESK_API_KEY"], rate_limit=None) as running:
        helpdesk = running.system
        users = helpdesk.store.spec("users")
        created = helpdesk.create(users, {"name": "Ann", "phone": "1"}, None).record
        rest = connector("helpdesk", running.url)
        try:
            current = await rest.fetch(str(created.id))  # the lane's read: phone "1"
            assert current is not None and current.data["phone"] == "1"
            helpdesk.faults.configure({"burst_429": 1})  # the PUT's first attempt: 429
            write = asyncio.create_task(rest.update(str(created.id), {"phone": "2"},
                                                    current.precondition))
            await asyncio.sleep(0.3)  # within Retry-After: 1, a person changes the phone
            helpdesk.update(users, created.key, {"phone": "3"}, None)
            with contextlib.suppress(RateLimited):  # the lane reads again on this
                await write
        finally:
            await rest.client.aclose()
        held = helpdesk.store.get("users", created.key)
        assert held is not None
        # The person's "3" must survive (the write found stale), not be replaced by "2".
        assert held.fields["phone"] == "3"


async def test_an_unconditional_write_held_by_the_rate_limit_past_its_read_is_not_sent(
) -> None:
    """Another request's 429 pauses every request to the system for its ``Retry-After``:
    a write decided on a read just before it would go out a second later, over whatever a
    person changed meanwhile. It is not sent at all; the lane reads again (ReadTooOld)."""
    async with run_helpdesk(api_key=ENV["HELPDESK_API_KEY"], rate_limit=None) as running:
        helpdesk = running.system
        users = helpdesk.store.spec("users")
        created = helpdesk.create(users, {"name": "Ann", "phone": "1"}, None).record
        other = helpdesk.create(users, {"name": "Bo", "phone": "5"}, None).record
        rest = connector("helpdesk", running.url)
        try:
            current = await rest.fetch(str(created.id))  # the lane's read: phone "1"
            assert current is not None and current.read_at is not None
            helpdesk.faults.configure({"burst_429": 1})
            with contextlib.suppress(RateLimited):  # another request: 429, Retry-After: 1
                await rest.client.request("GET", f"/api/v2/users/{other.id}",
                                          retry=RetryPolicy.never())
            assert rest.client.limiter.blocked_until > rest.client.now()
            write = asyncio.create_task(rest.update(
                str(created.id), {"phone": "2"}, current.precondition,
                read_at=current.read_at))
            await asyncio.sleep(0.3)  # while the write would wait, a person changes the phone
            helpdesk.update(users, created.key, {"phone": "3"}, None)
            [outcome] = await asyncio.gather(write, return_exceptions=True)
        finally:
            await rest.client.aclose()
        held = helpdesk.store.get("users", created.key)
        assert held is not None
        assert held.fields["phone"] == "3"  # the person's, not the write decided before it
        assert isinstance(outcome, ReadTooOld)  # for the lane: read again, decide again


async def test_an_unconditional_write_names_its_read_and_the_time_the_lane_held_it() -> None:
    """The lane's own share of the read-to-write window, as evidence for the system's journal
    (the chaos run's oracle, docs/RELIABILITY.md): the read carries a request id, the write
    decided on it names that id and how long after the read's answer it was sent."""
    async with run_helpdesk(api_key=ENV["HELPDESK_API_KEY"], rate_limit=None,
                            journal=True) as running:
        helpdesk = running.system
        users = helpdesk.store.spec("users")
        created = helpdesk.create(users, {"name": "Ann", "phone": "1"}, None).record
        rest = connector("helpdesk", running.url)
        try:
            current = await rest.fetch(str(created.id))
            assert current is not None and current.read_id is not None
            await asyncio.sleep(0.1)  # the lane holds the read 100 ms before it writes
            await rest.update(str(created.id), {"phone": "2"}, current.precondition,
                              read_at=current.read_at, read_id=current.read_id)
        finally:
            await rest.client.aclose()
        entries = helpdesk.journal.records("users")[str(created.key)]
    read = next(e for e in entries if e["op"] == "read" and e["kind"] == "get")
    write = next(e for e in entries if e["op"] == "write" and e["by"] == "syncline")
    assert read["request_id"] == current.read_id
    assert write["read_id"] == current.read_id
    # The lane's span: at least the 100 ms it held the read, within its guard, and inside the
    # system's own read-to-write time.
    assert 0.1 <= write["read_age"] <= 0.25
    assert write["read_age"] <= write["at"] - read["at"]
