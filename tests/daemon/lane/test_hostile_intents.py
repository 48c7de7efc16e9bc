"""Hostile bytes on the intents topic: each is a dead letter with its reason, the lane goes on,
and the good intents around it are executed."""

from __future__ import annotations

import asyncio
import base64

from hypothesis import given
from hypothesis import strategies as st

from streams import codec
from tests.daemon.lane.conftest import make_rig
from tests.hostile import count, examples
from tests.streams.hostile_events import REFUSED

AREA = "lane intents"


async def test_an_unreadable_intent_with_a_key_that_is_not_utf8_is_a_dead_letter() -> None:
    rig = make_rig()
    rig.journal.send_raw(b"\x00garbage", key=b"crm/\xff\xfe")
    made = rig.intent("create", values={"email": "jo@x.org", "name": "Jo"})
    assert await rig.lane.execute_intents() == 2
    [letter] = rig.letters()
    assert letter.error == "Undecodable" and letter.offset == 0
    assert base64.b64decode(letter.key_b64 or "") == b"crm/\xff\xfe"
    assert [r.data["email"] for r in rig.system.records.values()] == [made.values["email"]]


@examples(25)
@given(poison=st.lists(st.tuples(REFUSED, st.binary(max_size=6) | st.none()),
                       min_size=1, max_size=3))
def test_poison_among_intents_is_dead_lettered_and_the_good_ones_run(
        poison: list[tuple[bytes, bytes | None]]) -> None:
    rig = make_rig()
    emails = []
    for i, (value, key) in enumerate(poison):
        rig.journal.send_raw(value, key=key)
        emails.append(f"p{i}@x.org")
        rig.intent("create", values={"email": emails[-1], "name": f"P {i}"})
    asyncio.run(rig.lane.execute_intents())
    letters = rig.letters()
    assert len(letters) == len(poison)
    assert [base64.b64decode(letter.value_b64 or "") for letter in letters] == \
        [value for value, _ in poison]
    assert all(letter.reason and letter.stage == "lane:crm" for letter in letters)
    assert sorted(r.data["email"] for r in rig.system.records.values()) == emails
    assert rig.kinds() == ["Written"] * len(poison)
    count(AREA, "examples run")
    count(AREA, "dead letters", len(letters))


async def test_a_refused_intent_whose_key_is_not_utf8_is_a_dead_letter() -> None:
    rig = make_rig(required=("full_name",))
    made = rig.intent("create", values={"email": "jo@x.org"}, attempt=5)
    rig.journal.send_raw(codec.encode(made), key=b"\xff")  # the same intent, hostile key
    assert await rig.lane.execute_intents() == 2
    assert [letter.error for letter in rig.letters()] == ["WriteFailed", "WriteFailed"]
    assert base64.b64decode(rig.letters()[1].key_b64 or "") == b"\xff"
