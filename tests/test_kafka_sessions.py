"""Two test sessions on one broker: the one ending first leaves the other's topics alone.

The failure this guards against (docs/RELIABILITY.md, "Runs sharing a broker"): a session
ended and deleted every topic made since it began — the other session's live topics too —
whose workers then had them auto-created empty by the broker: a chaos run read its
``conflicts`` topic back empty (22 false lost edits) or never settled.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.kafka_sessions import Session, made_since, topics_of

pytestmark = pytest.mark.kafka


async def create(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1)])
    finally:
        await admin.close()
    # A broker busy loading thousands of partitions lists a new topic a moment later.
    for _ in range(300):
        if name in await topics_of(bootstrap):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} created but not listed after 30 s")


def test_a_session_ending_first_leaves_the_running_sessions_topics_to_the_last(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    tag = f"sessions{uuid.uuid4().hex[:8]}"

    def mine(topic: str) -> bool:  # this test's topics only: the broker is shared
        return topic.startswith(tag)

    first = Session(kafka_bootstrap, tmp_path, only=mine)
    first.begin()
    asyncio.run(create(kafka_bootstrap, f"{tag}.first"))
    second = Session(kafka_bootstrap, tmp_path, only=mine)
    second.begin()
    asyncio.run(create(kafka_bootstrap, f"{tag}.second"))

    assert first.end() == []  # the second still runs: nothing deleted
    assert {f"{tag}.first", f"{tag}.second"} <= asyncio.run(topics_of(kafka_bootstrap))

    # The last deletes both: everything made since the earlier of the two began.
    assert second.end() == [f"{tag}.first", f"{tag}.second"]
    assert not {t for t in asyncio.run(topics_of(kafka_bootstrap)) if mine(t)}


def test_a_dead_sessions_claim_does_not_stop_the_cleanup(kafka_bootstrap: str,
                                                          tmp_path: Path) -> None:
    tag = f"sessions{uuid.uuid4().hex[:8]}"
    dead = Session(kafka_bootstrap, tmp_path)
    dead.begin()
    claim = json.loads(dead.file.read_text())
    dead.file.write_text(json.dumps({**claim, "pid": 99_999_999}))  # no such process
    alive = Session(kafka_bootstrap, tmp_path, only=lambda t: t.startswith(tag))
    alive.begin()
    asyncio.run(create(kafka_bootstrap, f"{tag}.x"))
    assert alive.end() == [f"{tag}.x"]
    assert not dead.file.exists()


def test_internal_topics_are_never_deleted() -> None:
    # A session that began on a fresh broker saw no __consumer_offsets; it must not delete it.
    assert made_since({"a"}, {"a", "b", "__consumer_offsets", "__transaction_state"}) == ["b"]
