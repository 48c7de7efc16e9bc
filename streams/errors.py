"""Errors raised by :mod:`streams`.

Everything :mod:`streams` raises on purpose derives from one root, and errors of the
Kafka client underneath are translated into it at the boundary (``streams/kafka.py``),
so callers never import aiokafka to handle a failure::

    StreamsError                  root; ``retriable = False``
    ├── KafkaUnavailable          the broker could not be reached or did not answer in time;
    │                             ``retriable = True``
    ├── KafkaRequestFailed        the broker answered with an error; ``retriable`` copies the
    │   │                         Kafka error's own flag (e.g. NOT_LEADER is, INVALID_CONFIG
    │   │                         is not)
    │   ├── TopicMismatch         a topic exists but differs from what was asked for
    │   │                         (partitions, configuration); ``retriable = False``
    │   └── TopicMissing          a topic to write to does not exist (``syncline run``
    │                             creates syncline's topics); ``retriable = False``
    ├── TopicSettingsRejected     the cluster cannot hold topics of the configured settings
    │                             (e.g. more replicas than brokers); ``retriable = False``
    └── DecodeError               bytes that are not an event we can read (to the DLQ)
        ├── Undecodable           not a JSON object with a ``schema``
        ├── UnknownSchema         a schema name or version this build does not know
        ├── InvalidEvent          does not fit its schema
        └── UnexpectedEvent       a valid event on a topic that does not carry it

Whether to try again is data on the error (``retriable``), read by one backoff loop; do not
branch on the exception class to decide it.
"""

from __future__ import annotations


class StreamsError(Exception):
    """Root of everything :mod:`streams` raises on purpose."""

    retriable: bool = False


class KafkaUnavailable(StreamsError):
    """The broker at ``bootstrap`` could not be reached, or did not answer in time."""

    retriable = True

    def __init__(self, bootstrap: str, reason: str) -> None:
        super().__init__(f"cannot reach Kafka at {bootstrap}: {reason}")
        self.bootstrap = bootstrap
        self.reason = reason


class KafkaRequestFailed(StreamsError):
    """The broker answered a request with an error.

    Attributes:
        operation: what was asked, in words (``"create topic syncline.observations"``).
        code: Kafka's error name (``"POLICY_VIOLATION"``), or the client's error class name.
    """

    def __init__(self, operation: str, code: str, detail: str, *, retriable: bool) -> None:
        message = f"{operation} failed: {code}"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.operation = operation
        self.code = code
        self.retriable = retriable


class TopicMissing(KafkaRequestFailed):
    """A topic to write to does not exist: syncline never has the broker create one with
    its defaults (streams/kafka.py), it creates its own at start (``syncline run``)."""

    def __init__(self, operation: str, topic: str) -> None:
        super().__init__(operation, "UNKNOWN_TOPIC_OR_PARTITION",
                         f"topic {topic} does not exist (`syncline run` creates syncline's "
                         "topics when it starts)", retriable=False)
        self.topic = topic


class TopicMismatch(KafkaRequestFailed):
    """A topic exists with a different shape than the one asked for."""

    def __init__(self, topic: str, detail: str) -> None:
        super().__init__(f"ensure topic {topic}", "TOPIC_MISMATCH", detail, retriable=False)
        self.topic = topic
        self.detail = detail


class TopicSettingsRejected(StreamsError):
    """The topic settings (``kafka.topics``) ask for what the cluster cannot do."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"the topics cannot be created: {detail}")
        self.detail = detail


class DecodeError(StreamsError):
    """Bytes that are not an event syncline can read; the input goes to the dead-letter topic.

    Subclasses say why: :class:`Undecodable` (not a JSON object), :class:`UnknownSchema`
    (a schema name or version this build does not know), :class:`InvalidEvent` (the payload
    does not fit its schema), :class:`UnexpectedEvent` (a valid event on the wrong topic).
    """


class Undecodable(DecodeError):
    """Not JSON, or not a JSON object with a ``schema`` string."""


class UnknownSchema(DecodeError):
    """A schema name, or a version of it, that this build cannot read."""


class InvalidEvent(DecodeError):
    """A payload that does not fit the schema it names."""


class UnexpectedEvent(DecodeError):
    """A valid event of a kind the topic it came from does not carry."""
