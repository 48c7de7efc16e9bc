"""syncline on a broker that creates a topic for whoever names one
(``auto.create.topics.enable=true``: Kafka's default, and many production brokers').

Such a topic gets the broker's defaults (``delete``, not ``compact``; a week's retention, not
forever) and syncline refuses it at its next start (``TOPIC_MISMATCH``). So nothing of
syncline may name a missing topic in a way that creates it: not a reader following a topic
someone deleted, not a resolution published before the first ``syncline run``, not
``syncline check``. The test broker of the rest of the suite has auto-creation off
(deploy/kafka/kafka.sh); this module starts one of its own with it on, just started, so it
also shows that the write probe's question "do lanes run?" is answered by a broker that has
no group coordinator yet.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from daemon.review.source import load_view, publish
from streams import LanesPresence, LinksView, running_lanes
from streams.dlq import letters
from streams.errors import TopicMissing
from streams.events import Resolution
from streams.kafka import Admin, KafkaSettings, read_to_end
from streams.topics import Topics, TopicSettings, compare_topics
from tests.streams.kafka_helpers import topic_exists, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"
SETTINGS = TopicSettings(partitions=2)


def _free_port_pair() -> int:
    """A port that is free, and the next one too (the broker's controller port)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free ports in a row")


@pytest.fixture(scope="module")
def auto_create_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker started for this module, with ``auto.create.topics.enable=true``."""
    port = _free_port_pair()
    env = {**os.environ, "SYNCLINE_KAFKA_PORT": str(port),
           "SYNCLINE_KAFKA_STATE": str(tmp_path_factory.mktemp("kafka-auto-create")),
           "SYNCLINE_KAFKA_AUTO_CREATE": "true", "SYNCLINE_KAFKA_HEAP": "-Xms128m -Xmx512m"}
    up = subprocess.run([str(KAFKA_SH), "up"], env=env, capture_output=True, text=True,
                        timeout=600, check=False)
    if up.returncode != 0:
        pytest.fail(f"could not start a broker with auto-creation on:\n{up.stdout}{up.stderr}",
                    pytrace=False)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(KAFKA_SH), "down"], env=env, capture_output=True, timeout=120,
                       check=False)


@pytest.fixture
def settings(auto_create_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap=auto_create_bootstrap, client_id="syncline-tests")


def fresh_topics() -> Topics:
    return Topics(f"autocreate{uuid.uuid4().hex[:10]}")


async def topics_of(settings: KafkaSettings, prefix: str = "") -> set[str]:
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        return {name for name in await admin.list_topics() if name.startswith(prefix)}
    finally:
        await admin.close()


# First in the module: it needs the broker as it starts, without a consumer offsets topic.
async def test_a_broker_just_started_says_whether_lanes_run(settings: KafkaSettings) -> None:
    assert "__consumer_offsets" not in await topics_of(settings), "not a fresh broker"
    topics = fresh_topics()

    # Its first answer about a group is "no coordinator yet": asked again, not "none run".
    assert await running_lanes(settings, topics, ["crm", "helpdesk"]) == {}

    presence = LanesPresence(settings, topics, "crm")
    async with Admin(settings) as admin:
        await topics.ensure(admin, SETTINGS)
    await presence.start()
    try:
        running = await running_lanes(settings, topics, ["crm", "helpdesk"])
    finally:
        await presence.stop()
    assert list(running) == ["crm"]


async def test_a_topic_deleted_under_a_running_reader_is_not_created_again(
        settings: KafkaSettings) -> None:
    topics = fresh_topics()
    async with Admin(settings) as admin:
        await topics.ensure(admin, SETTINGS)
    links = LinksView(settings, topics)  # the lanes' follower of `records`
    stop = asyncio.Event()
    task = asyncio.create_task(links.run(stop))
    try:
        await asyncio.wait_for(links.caught_up.wait(), 60)
        admin_client = AIOKafkaAdminClient(**settings.client_options())
        await admin_client.start()
        try:
            await admin_client.delete_topics([topics.records])
        finally:
            await admin_client.close()

        async def gone() -> bool:
            return not await topic_exists(settings, topics.records)

        await wait_for(gone, 30, f"{topics.records} deleted")
        # Without the fix the follower's metadata refresh creates it again within a second
        # (as a `delete` topic). Absence cannot be awaited: watch it for a while.
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            assert not await topic_exists(settings, topics.records), (
                f"{topics.records} was created again by a reader, with the broker's defaults")
            await asyncio.sleep(0.25)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    # The next start creates it as syncline's spec says, and finds nothing to refuse.
    async with Admin(settings) as admin:
        assert await topics.ensure(admin, SETTINGS) == [topics.records]
        assert (await admin.topic_config(topics.records))["cleanup.policy"] == "compact"


async def test_reading_a_deployment_before_its_first_start_creates_none_of_its_topics(
        settings: KafkaSettings) -> None:
    topics = fresh_topics()
    resolution = Resolution(resolution_id="r1", canonical_id="c1", entity="contact",
                            conflict_id="k1", by="dana", at=9, via="cli", take="crm")

    # What `syncline review`, `syncline dlq`, `syncline check` and its write probe do.
    view = await load_view(settings, topics)
    assert view.unreadable == 0
    assert await letters(settings, topics) == []
    assert await read_to_end(settings, topics.records) == []
    assert await running_lanes(settings, topics, ["crm"]) == {}
    async with Admin(settings) as admin:
        report = await compare_topics(admin, topics, SETTINGS)
    assert len(report.missing) == len(topics.specs(SETTINGS))
    # A resolution published before the first start is refused, naming the topic.
    with pytest.raises(TopicMissing, match=f"topic {topics.resolutions} does not exist"):
        await publish(settings, topics, resolution)

    assert await topics_of(settings, topics.prefix + ".") == set()
    # The first start then creates every topic as its spec says.
    async with Admin(settings) as admin:
        await topics.ensure(admin, SETTINGS)
        report = await compare_topics(admin, topics, SETTINGS)
    assert (report.problems, report.missing) == ([], [])
