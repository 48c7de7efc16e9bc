"""syncline's edge to Kafka: every aiokafka client is made here, and the patterns built on them
are written once.

- the clients: :func:`new_producer` (idempotent, ``acks=all``, transactional with an id),
  :func:`new_reader` (no group, committed records only, from the beginning),
  :func:`new_group_consumer` (the stages' consumer group), :func:`new_admin`;
- thin wrappers for one-off work: :class:`Producer`, :class:`Consumer`, :class:`Admin`;
- :func:`read_partition` reads one partition from an offset (default: its beginning) to its
  end, and :func:`read_to_end` every partition of a topic;
- :func:`transaction` begins, commits, or aborts on any error, one producer's transaction;
- :func:`follow` keeps reading topics for as long as a worker runs, and says when it caught
  up with what was there when it started.

So there is one place where a client is configured and one where its errors become
:mod:`streams.errors`. The edge moves bytes; turning events into bytes is the codec's job.

Example::

    settings = KafkaSettings(bootstrap="127.0.0.1:19092")
    async with Admin(settings) as admin:
        await admin.ensure_topic(TopicSpec("records", config={"cleanup.policy": "compact"}))
    async with Producer(settings) as producer:
        partition, offset = await producer.send("records", b"key", b"value")
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NamedTuple, Self, TypeVar

import aiokafka
import aiokafka.admin.client
import aiokafka.client
import aiokafka.errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.protocol.metadata import MetadataRequest

from streams.errors import (
    KafkaRequestFailed,
    KafkaUnavailable,
    StreamsError,
    TopicMismatch,
    TopicMissing,
)
from streams.settings import KafkaSettings as KafkaSettings  # re-exported

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_TOPIC_ALREADY_EXISTS = 36
# Errors that mean "nobody answered" rather than "the broker said no".
_UNREACHABLE = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.NoBrokersAvailable,
)


class _MetadataRequestNoAutoCreate(MetadataRequest):  # type: ignore[misc]
    """A metadata request that never asks the broker to create the topics it names.

    aiokafka asks for it on every metadata request (``allow_auto_topic_creation=True``) and
    has no setting to stop it (Java's consumers have ``allow.auto.create.topics``). On a
    broker with ``auto.create.topics.enable`` (Kafka's default, and many production
    brokers'), a producer, a reader or a refresh of metadata naming a missing topic then
    creates it with the broker's defaults — ``delete``, not ``compact``; a week's retention,
    not forever — and syncline refuses that topic at its next start (``TOPIC_MISMATCH``).
    A topic goes missing under a running worker when someone deletes it; syncline's topics
    are created by :meth:`streams.topics.Topics.ensure` alone. Tested by
    tests/streams/test_auto_create.py.
    """

    def __init__(self, topics: list[str] | None = None,
                 allow_auto_topic_creation: bool | None = False) -> None:
        super().__init__(topics, allow_auto_topic_creation)


# Every aiokafka client of this process (they are syncline's: this module makes them) builds
# its metadata requests with these names.
aiokafka.client.MetadataRequest = _MetadataRequestNoAutoCreate
aiokafka.admin.client.MetadataRequest = _MetadataRequestNoAutoCreate


class Delivery(NamedTuple):
    """Where the broker stored a record that it acknowledged."""

    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    """One record read from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as it should exist: name, partitions, replication and topic configuration.

    ``config`` holds Kafka topic settings as strings, e.g. ``{"cleanup.policy": "compact"}``
    or ``{"retention.ms": "-1"}`` (keep forever).
    """

    name: str
    partitions: int = 1
    replication: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TopicShape:
    """An existing topic's partition count and replication factor (its smallest, per
    partition), as the cluster reports them."""

    name: str
    partitions: int
    replication: int


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """What a broker said about its cluster."""

    bootstrap: str
    cluster_id: str | None
    controller_id: int
    brokers: tuple[str, ...]


@contextmanager
def translated(settings: KafkaSettings, operation: str) -> Iterator[None]:
    """Turn aiokafka's errors raised inside the block into :mod:`streams.errors`."""
    try:
        yield
    except StreamsError:
        raise
    except _UNREACHABLE as exc:
        reason = _describe(exc)
        if reason.startswith("Unable to bootstrap"):  # aiokafka lists the resolved addresses
            reason = "no broker accepted a connection"
        raise KafkaUnavailable(settings.bootstrap, reason) from exc
    except kafka_errors.KafkaError as exc:
        code = getattr(exc, "message", None) or type(exc).__name__
        # aiokafka marks its client-side timeout as final; waiting longer may well help.
        retriable = bool(exc.retriable) or isinstance(exc, kafka_errors.KafkaTimeoutError)
        raise KafkaRequestFailed(operation, str(code), _describe(exc), retriable=retriable) from exc


def _describe(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return text.removeprefix(f"{name}: ") if text != name else name


def consumed(message: Any) -> ConsumedRecord:
    """An aiokafka record as a :class:`ConsumedRecord`."""
    return ConsumedRecord(topic=message.topic, partition=message.partition,
                          offset=message.offset, key=message.key, value=message.value,
                          timestamp_ms=message.timestamp)


# -- the clients: every aiokafka client syncline makes is made by one of these -----------------
def new_producer(settings: KafkaSettings, *, transactional_id: str | None = None,
                 **options: Any) -> aiokafka.AIOKafkaProducer:
    """A producer that waits until every in-sync replica has a record (``acks=all``),
    idempotent (a retry inside the client never writes a record twice); transactional when
    given a ``transactional_id`` (starting it fences an older producer of that id)."""
    return aiokafka.AIOKafkaProducer(**settings.client_options(), acks="all",
                                     enable_idempotence=True,
                                     transactional_id=transactional_id, **options)


def new_reader(settings: KafkaSettings, *topics: str, **options: Any
               ) -> aiokafka.AIOKafkaConsumer:
    """A consumer without a group that reads only committed records (``read_committed``:
    never those of an aborted or open transaction), from the beginning unless told where.
    Subscribed to ``topics`` if given; otherwise assign it partitions. ``options`` go to
    aiokafka (fetch sizes)."""
    return aiokafka.AIOKafkaConsumer(*topics, **settings.client_options(), group_id=None,
                                     enable_auto_commit=False, auto_offset_reset="earliest",
                                     isolation_level="read_committed", **options)


def new_group_consumer(settings: KafkaSettings, group_id: str, **options: Any
                       ) -> aiokafka.AIOKafkaConsumer:
    """A consumer in group ``group_id`` that reads only committed records and commits no
    offsets itself: the stage commits them in its transactions."""
    return aiokafka.AIOKafkaConsumer(**settings.client_options(), group_id=group_id,
                                     isolation_level="read_committed",
                                     enable_auto_commit=False, auto_offset_reset="earliest",
                                     **options)


def new_admin(settings: KafkaSettings) -> AIOKafkaAdminClient:
    """An admin client (topics, configuration, the cluster)."""
    return AIOKafkaAdminClient(**settings.client_options())


class _Client:
    """What the wrappers share: start (errors translated, nothing left half open), stop, and
    use as ``async with``. Subclasses say how to make, start and close their aiokafka client."""

    _operation = "connect"
    _not_started = "the client is not started"

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._client: Any = None

    def _make(self) -> Any:
        raise NotImplementedError  # pragma: no cover - every subclass makes its client

    async def _close(self, client: Any) -> None:
        await client.stop()

    async def start(self) -> None:
        """Connect; raises :class:`KafkaUnavailable` if nobody answers."""
        client = self._make()
        try:
            with translated(self._settings, self._operation):
                await client.start()
        except BaseException:
            await self._close(client)
            raise
        self._client = client

    async def stop(self) -> None:
        """Flush what is pending and disconnect."""
        client, self._client = self._client, None
        if client is not None:
            await self._close(client)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _started(self) -> Any:
        if self._client is None:
            raise StreamsError(self._not_started)
        return self._client


class Producer(_Client):
    """Sends records and waits until every in-sync replica has them (``acks=all``).

    Idempotent, so a retry inside the client never writes a record twice. Use as
    ``async with Producer(settings) as producer``.
    """

    _operation = "start producer"
    _not_started = "the producer is not started"

    def __init__(self, settings: KafkaSettings) -> None:
        super().__init__(settings)
        self._existing: set[str] = set()

    def _make(self) -> Any:
        return new_producer(self._settings)

    async def send(self, topic: str, key: bytes, value: bytes) -> Delivery:
        """Send one record and return where it was stored once the broker acknowledged it.

        Raises:
            TopicMissing: ``topic`` does not exist (the client would wait for it in vain:
                it never has the broker create a topic).
        """
        producer = self._started()
        operation = f"send to {topic}"
        with translated(self._settings, operation):
            if topic not in self._existing:
                # Metadata of every topic names none, so it creates none.
                if topic not in (await producer.client.fetch_all_metadata()).topics():
                    raise TopicMissing(operation, topic)
                self._existing.add(topic)
            metadata = await producer.send_and_wait(topic, value, key=key)
        return Delivery(int(metadata.partition), int(metadata.offset))


class Consumer(_Client):
    """Reads every partition of one topic from its beginning, without a consumer group.

    Only committed records are returned (``isolation_level=read_committed``): records of
    an aborted or still open transaction are never seen. Iterating waits for new records
    forever; bound it with ``asyncio.timeout`` or stop after what you expect.
    """

    _not_started = "the consumer is not started"

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        super().__init__(settings)
        self._topic = topic
        self._operation = f"read {topic}"

    def _make(self) -> Any:
        return new_reader(self._settings, self._topic)

    def __aiter__(self) -> AsyncIterator[ConsumedRecord]:
        return self._records()

    async def _records(self) -> AsyncIterator[ConsumedRecord]:
        consumer = self._started()
        while True:
            with translated(self._settings, f"read {self._topic}"):
                try:
                    message = await consumer.getone()
                except kafka_errors.ConsumerStoppedError:
                    return
            yield consumed(message)


class Admin(_Client):
    """Creates topics idempotently and describes topics and the cluster."""

    _operation = "connect admin client"
    _not_started = "the admin client is not started"

    def _make(self) -> Any:
        return new_admin(self._settings)

    async def _close(self, client: Any) -> None:
        await client.close()

    async def describe_cluster(self) -> ClusterInfo:
        """The cluster id, the active controller and the brokers, as the cluster reports them."""
        with translated(self._settings, "describe cluster"):
            cluster = await self._started().describe_cluster()
        return ClusterInfo(
            bootstrap=self._settings.bootstrap,
            cluster_id=cluster.get("cluster_id"),
            controller_id=int(cluster.get("controller_id", -1)),
            brokers=tuple(f"{b['host']}:{b['port']}" for b in cluster.get("brokers", ())),
        )

    async def describe_topics(self, names: list[str]) -> dict[str, TopicShape]:
        """The shape of each topic of ``names`` that exists (missing ones are left out)."""
        client = self._started()
        with translated(self._settings, "list topics"):
            existing = set(await client.list_topics())
        # Asking for a missing topic's metadata could create it (auto.create.topics.enable).
        wanted = [name for name in names if name in existing]
        if not wanted:
            return {}
        with translated(self._settings, "describe topics"):
            described = await client.describe_topics(wanted)
        shapes = {}
        for topic in described:
            partitions = topic.get("partitions") or []
            if topic.get("error_code") or not partitions:
                continue
            shapes[topic["topic"]] = TopicShape(
                topic["topic"], len(partitions),
                min(len(partition["replicas"]) for partition in partitions))
        return shapes

    async def wait_for_topics(self, names: list[str]) -> None:
        """Return once every topic of ``names`` is in the cluster's metadata, with its
        partitions: a topic just created is not in every answer at once, and a reader that
        asks for it then would find it missing."""
        async def visible() -> None:
            missing = sorted(set(names) - set(await self.describe_topics(names)))
            if missing:
                raise KafkaRequestFailed("wait for new topics", "UNKNOWN_TOPIC_OR_PARTITION",
                                         f"not in the metadata yet: {', '.join(missing)}",
                                         retriable=True)

        await retried(visible, attempts=120)

    async def ensure_topic(self, spec: TopicSpec) -> bool:
        """Create the topic unless it exists; return whether it was created.

        An existing topic must carry every configuration value in ``spec.config``, or
        :class:`TopicMismatch` is raised: a log that should be compacted or kept forever
        must not silently be neither. Its partition count is left as it is (operators
        may have added partitions to scale out).
        """
        new_topic = NewTopic(
            spec.name, spec.partitions, spec.replication, topic_configs=dict(spec.config)
        )
        operation = f"create topic {spec.name}"
        with translated(self._settings, operation):
            response = await self._started().create_topics([new_topic])
        for _topic, code, *rest in response.topic_errors:
            if code == 0:
                return True
            if code == _TOPIC_ALREADY_EXISTS:
                await self._check_config(spec)
                return False
            error = kafka_errors.for_code(code)
            detail = (rest[0] if rest else None) or error.description
            raise KafkaRequestFailed(
                operation, error.message, detail, retriable=bool(error.retriable)
            )
        raise KafkaRequestFailed(operation, "NO_ANSWER", "no result for the topic", retriable=True)

    async def topic_config(self, topic: str) -> dict[str, str]:
        """Every configuration value of a topic, defaults included."""
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        operation = f"describe configuration of topic {topic}"
        with translated(self._settings, operation):
            responses = await self._started().describe_configs([resource])
        result = responses[0].to_object()["resources"][0]
        if result["error_code"]:
            error = kafka_errors.for_code(result["error_code"])
            raise KafkaRequestFailed(
                operation,
                error.message,
                result["error_message"] or error.description,
                retriable=bool(error.retriable),
            )
        return {
            entry["config_names"]: entry["config_value"]
            for entry in result["config_entries"]
            if entry["config_value"] is not None
        }

    async def _check_config(self, spec: TopicSpec) -> None:
        # A topic created a moment ago (by another worker starting at the same time) can
        # exist for CreateTopics and not yet for DescribeConfigs: ask again for a while.
        actual = await retried(lambda: self.topic_config(spec.name))
        wrong = [
            f"{key} is {actual.get(key)!r}, expected {value!r}"
            for key, value in sorted(spec.config.items())
            if actual.get(key) != value
        ]
        if wrong:
            raise TopicMismatch(spec.name, "; ".join(wrong))


async def retried(call: Callable[[], Awaitable[_T]], attempts: int = 20,
                  pause: float = 0.25) -> _T:
    """``call()``, made again after ``pause`` seconds while it raises a retriable
    :class:`StreamsError`, up to ``attempts`` times (then its last error is raised)."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except StreamsError as exc:
            if not exc.retriable or attempt == attempts:
                raise
            await asyncio.sleep(pause)
    raise AssertionError("unreachable: the last attempt returns or raises")


# The deadline is the point of a probe, so it is a parameter rather than left to the caller.
async def probe(target: KafkaSettings | str, timeout: float = 5.0) -> ClusterInfo:  # noqa: ASYNC109
    """Ask the cluster for its metadata within ``timeout`` seconds.

    Args:
        target: the settings of the cluster, or just its bootstrap address (plaintext).
        timeout: seconds for connecting and answering together.

    Raises:
        KafkaUnavailable: nobody answered in time; the message names the bootstrap address.
    """
    settings = target if isinstance(target, KafkaSettings) else KafkaSettings(bootstrap=target)
    try:
        async with asyncio.timeout(timeout), Admin(settings) as admin:
            return await admin.describe_cluster()
    except TimeoutError as exc:
        raise KafkaUnavailable(settings.bootstrap, f"no answer within {timeout:g}s") from exc


async def read_partition(reader: aiokafka.AIOKafkaConsumer, tp: aiokafka.TopicPartition,
                         start: int | None = None, end: int | None = None
                         ) -> AsyncIterator[Any]:
    """The records of one partition from ``start`` (default: its beginning) up to ``end``
    (exclusive; default: its end as of now), read with ``reader`` (a :func:`new_reader`,
    started), which is assigned to that partition alone. Yields aiokafka's records, which have
    the attributes of :class:`ConsumedRecord` (``timestamp`` for ``timestamp_ms``).

    With ``read_committed`` the end is the last stable offset: the records of a transaction
    still open are neither returned nor waited for.
    """
    async for batch in read_batches(reader, tp, start, end):
        for record in batch:
            yield record


async def read_batches(reader: aiokafka.AIOKafkaConsumer, tp: aiokafka.TopicPartition,
                       start: int | None = None, end: int | None = None
                       ) -> AsyncIterator[list[Any]]:
    """:func:`read_partition`, a fetched batch at a time (none empty)."""
    reader.assign([tp])
    if start is None:
        await reader.seek_to_beginning(tp)
    else:
        reader.seek(tp, start)
    if end is None:
        end = (await reader.end_offsets([tp]))[tp]
    while await reader.position(tp) < end:
        batch = (await reader.getmany(tp, timeout_ms=500, max_records=5000)).get(tp, [])
        if batch and batch[-1].offset >= end:
            batch = [record for record in batch if record.offset < end]
        if batch:
            yield batch


async def partitions_of(reader: aiokafka.AIOKafkaConsumer, topic: str) -> list[int]:
    """The partitions of ``topic`` (none if it does not exist), without creating it."""
    if topic not in await reader.topics():
        return []  # asking for a missing topic's metadata could auto-create it
    # aiokafka has no public call that loads one topic's partitions without a group.
    return sorted(await reader._client._wait_on_metadata(topic))


def position_now(consumer: Any, tp: aiokafka.TopicPartition) -> int | None:
    """The consumer's position in ``tp`` if it has one now: ``consumer.position()`` would
    wait for one (a partition being restored has none), and stall the stage meanwhile."""
    try:
        state = consumer._subscription.subscription.assignment.state_value(tp)
    except AttributeError:  # not assigned any more, or another aiokafka
        return None
    if state is None or not state.has_valid_position:
        return None
    position: int = state.position
    return position


async def read_to_end(settings: KafkaSettings, topic: str) -> list[ConsumedRecord]:
    """Every committed record of ``topic`` up to its end now, partition by partition.

    Records of one partition come in offset order. Without a consumer group and with
    ``read_committed``, so records of aborted or open transactions are never returned.
    """
    reader = new_reader(settings)
    out: list[ConsumedRecord] = []
    with translated(settings, f"read {topic}"):
        await reader.start()
        try:
            for p in await partitions_of(reader, topic):
                tp = aiokafka.TopicPartition(topic, p)
                out.extend([consumed(m) async for m in read_partition(reader, tp)])
        finally:
            await reader.stop()
    return out


@asynccontextmanager
async def transaction(settings: KafkaSettings, producer: aiokafka.AIOKafkaProducer,
                      operation: str) -> AsyncIterator[None]:
    """One transaction of ``producer`` (transactional, started) around the block: begun,
    committed when the block ends, aborted when it raises (then the error is raised, as
    :mod:`streams.errors`). What the block sends, and the offsets it adds, commit together
    or not at all."""
    with translated(settings, operation):
        await producer.begin_transaction()
        try:
            yield
            await producer.commit_transaction()
        except BaseException:
            # Whatever failed, abort, so the next owner of the transactional id need not
            # wait for the transaction to time out; an abort that fails changes nothing.
            with contextlib.suppress(Exception):
                await producer.abort_transaction()
            raise


async def follow(settings: KafkaSettings, topics: Sequence[str],
                 apply: Callable[[ConsumedRecord], None], stop: asyncio.Event,
                 caught_up: asyncio.Event, what: str) -> None:
    """Read ``topics`` from their beginning and hand every committed record to ``apply``,
    until ``stop`` is set. ``caught_up`` is set once every partition has been read up to
    where it ended when the reading started. ``what`` names the reading in errors."""
    reader = new_reader(settings, *topics)
    with translated(settings, what):
        await reader.start()
    try:
        partitions = reader.assignment()
        while not partitions:  # without a group, the reader assigns itself every partition
            await asyncio.sleep(0.05)
            partitions = reader.assignment()
        with translated(settings, what):
            ends = await reader.end_offsets(list(partitions))
        while not stop.is_set():
            with translated(settings, what):
                batch = await reader.getmany(timeout_ms=200, max_records=5000)
            for records in batch.values():
                for record in records:
                    apply(consumed(record))
            if not caught_up.is_set():
                positions = [await reader.position(tp) for tp in ends]
                if all(at >= end for at, end in zip(positions, ends.values(), strict=True)):
                    log.info("%s: caught up", what)
                    caught_up.set()
    finally:
        await reader.stop()
