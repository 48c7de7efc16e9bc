"""syncline's topics: their names under the configurable prefix, and how each is created.

``observations`` and ``resolutions`` are the event log, the source of truth, and ``merge`` is
the same events in the order the fold took them: the three keep their records forever by
default. ``records``, the changelogs and ``lanes`` (each lane's durable state) are compacted
(the latest value per key is what matters). Every topic that a stage reads next to another
is created with the same number of partitions, so one key lands on the same partition number
everywhere (the stages rely on it: a record's state, its inputs and its changelog share a
partition).
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.kafka import Admin, TopicSpec

ROLES = ("observations", "merge", "resolutions", "intents", "records", "conflicts", "dlq",
         "links_changelog", "records_changelog", "lanes")


@dataclass(frozen=True, slots=True)
class TopicSettings:
    """How topics are created (from the ``kafka.topics`` part of the config)."""

    partitions: int = 4
    replication: int = 1
    log_retention_ms: int = -1  # observations and resolutions: keep forever by default
    dlq_retention_ms: int = -1


@dataclass(frozen=True, slots=True)
class Topics:
    """The name of every topic, by role."""

    prefix: str = "syncline"

    def name(self, role: str) -> str:
        """The topic name of a role, e.g. ``syncline.observations``."""
        if role not in ROLES:
            raise KeyError(f"no topic role {role!r}")
        return f"{self.prefix}.{role.replace('_', '-')}"

    @property
    def observations(self) -> str:
        return self.name("observations")

    @property
    def merge(self) -> str:
        return self.name("merge")

    @property
    def resolutions(self) -> str:
        return self.name("resolutions")

    @property
    def intents(self) -> str:
        return self.name("intents")

    @property
    def records(self) -> str:
        return self.name("records")

    @property
    def conflicts(self) -> str:
        return self.name("conflicts")

    @property
    def dlq(self) -> str:
        return self.name("dlq")

    def specs(self, settings: TopicSettings) -> list[TopicSpec]:
        """What to create: every topic with its partitions and configuration."""
        forever = {"retention.ms": str(settings.log_retention_ms)}
        compact = {"cleanup.policy": "compact"}
        config = {
            "observations": forever,
            "resolutions": forever,
            "merge": forever,  # the fold's exact input order: what replay reads
            "intents": {"retention.ms": str(7 * 24 * 3600 * 1000)},
            "records": compact,
            # Keyed by canonical id like the records, but not compacted: compaction would
            # keep one conflict per record and drop the others, open ones included.
            "conflicts": forever,
            "dlq": {"retention.ms": str(settings.dlq_retention_ms)},
            "links_changelog": compact,
            "records_changelog": compact,
            "lanes": compact,  # each lane's cursor, sequence number and known records
        }
        return [TopicSpec(self.name(role), partitions=settings.partitions,
                          replication=settings.replication, config=config[role])
                for role in ROLES]

    async def ensure(self, admin: Admin, settings: TopicSettings) -> list[str]:
        """Create the topics that are missing; the names of those created."""
        created = []
        for spec in self.specs(settings):
            if await admin.ensure_topic(spec):
                created.append(spec.name)
        return created
