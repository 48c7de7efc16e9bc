"""Versioned events on Kafka and the merge topology that feeds the fold of :mod:`conflict`.

This module is the package's public face: ``daemon/`` imports from here, never from the
modules inside (``tests/test_imports.py`` holds it to that). Inside, by job:

- ``events``, ``codec``: the versioned events, and the one place bytes become events;
- ``settings``, ``kafka``, ``topics``: the settings, the edge to Kafka (every client, the
  reading, transaction and following patterns), the topics and how they are created;
- ``merge``: the route and merge stages' handlers (decoding, the fold, dead letters);
- ``runner`` (the exactly-once stage runner, with rebalancing) and its parts: ``stores``
  (the state per partition), ``partition`` (what it keeps per partition it owns),
  ``transactions`` (one per batch), ``partitioner``, ``checkpoint`` (the changelog's
  marker), ``restore`` (restore-and-refold); ``worker`` runs the two stages;
- ``table``, ``replay``, ``dlq``: the records table, rebuilding it from the log, and the
  dead letters;
- ``lanelog``, ``links``: a lane's durable side, and the links view lanes translate with.
- ``presence``: a consumer group per system whose members are the workers running its lanes.
"""

from streams import codec
from streams.dlq import Letter
from streams.dlq import letters as dead_letters
from streams.dlq import redrive as redrive_dead_letters
from streams.errors import (
    DecodeError,
    KafkaRequestFailed,
    KafkaUnavailable,
    StreamsError,
    TopicMismatch,
    TopicMissing,
    TopicSettingsRejected,
)
from streams.events import (
    CandidateModel,
    ConflictEvent,
    DeadLetter,
    Event,
    NotTaken,
    ObservationEvent,
    Observed,
    RecordEvent,
    Resolution,
    WriteFailed,
    WriteIntent,
    WriteStale,
    Written,
    json_schemas,
)
from streams.identity import canonical_id
from streams.kafka import (
    Admin,
    ConsumedRecord,
    Delivery,
    Producer,
    follow,
    probe,
    read_to_end,
)
from streams.lanelog import LaneHead, LaneLog, apply_changes
from streams.links import LinksView
from streams.merge import Catalog, EntityModel
from streams.presence import LanesPresence, lanes_group, running_lanes
from streams.replay import ReplayResult, replay
from streams.settings import (
    KafkaSettings,
    SaslMechanism,
    SaslSettings,
    SecurityProtocol,
    TlsSettings,
    TopicSettings,
)
from streams.table import RecordsTable, read_table
from streams.topics import Topics, TopicsReport, compare_topics
from streams.worker import MergeWorker, tune_gc

__all__ = [
    "Admin",
    "CandidateModel",
    "Catalog",
    "ConflictEvent",
    "ConsumedRecord",
    "DeadLetter",
    "DecodeError",
    "Delivery",
    "EntityModel",
    "Event",
    "KafkaRequestFailed",
    "KafkaSettings",
    "KafkaUnavailable",
    "LaneHead",
    "LaneLog",
    "LanesPresence",
    "Letter",
    "LinksView",
    "MergeWorker",
    "NotTaken",
    "ObservationEvent",
    "Observed",
    "Producer",
    "RecordEvent",
    "RecordsTable",
    "ReplayResult",
    "Resolution",
    "SaslMechanism",
    "SaslSettings",
    "SecurityProtocol",
    "StreamsError",
    "TlsSettings",
    "TopicMismatch",
    "TopicMissing",
    "TopicSettings",
    "TopicSettingsRejected",
    "Topics",
    "TopicsReport",
    "WriteFailed",
    "WriteIntent",
    "WriteStale",
    "Written",
    "apply_changes",
    "canonical_id",
    "codec",
    "compare_topics",
    "dead_letters",
    "follow",
    "json_schemas",
    "lanes_group",
    "probe",
    "read_table",
    "read_to_end",
    "redrive_dead_letters",
    "replay",
    "running_lanes",
    "tune_gc",
]
