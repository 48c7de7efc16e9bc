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

from dataclasses import dataclass, field

from streams.errors import TopicMismatch, TopicSettingsRejected
from streams.kafka import Admin, TopicSpec
from streams.settings import TopicSettings as TopicSettings  # re-exported

SETTING = "kafka.topics"
"""Where the topic settings are in the configuration file (named in messages)."""

ROLES = ("observations", "merge", "resolutions", "intents", "records", "conflicts", "dlq",
         "links_changelog", "records_changelog", "lanes")


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
        insync = ({} if settings.min_insync_replicas is None
                  else {"min.insync.replicas": str(settings.min_insync_replicas)})
        forever = {"retention.ms": str(settings.retention_ms)}
        compact = {"cleanup.policy": "compact"}
        config = {
            "observations": forever,
            "resolutions": forever,
            "merge": forever,  # the fold's exact input order: what replay reads
            "intents": {"retention.ms": str(settings.intents_retention_ms)},
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
                          replication=settings.replication_factor,
                          config={**config[role], **insync})
                for role in ROLES]

    async def ensure(self, admin: Admin, settings: TopicSettings) -> list[str]:
        """Create the topics that are missing; the names of those created, once the cluster's
        metadata has them.

        Raises:
            TopicSettingsRejected: the cluster cannot hold topics of these settings (more
                replicas than brokers), before any topic is created.
            TopicMismatch: an existing topic lacks a configuration value of its spec.
        """
        brokers = len((await admin.describe_cluster()).brokers)
        unmet = unmet_settings(settings, brokers)
        if unmet:
            raise TopicSettingsRejected("; ".join(unmet))
        created = []
        for spec in self.specs(settings):
            try:
                if await admin.ensure_topic(spec):
                    created.append(spec.name)
            except TopicMismatch as exc:
                raise TopicMismatch(spec.name, f"{exc.detail} (from {SETTING}: change the "
                                    "setting or the topic; `syncline check` lists every "
                                    "difference)") from exc
        if created:
            await admin.wait_for_topics(created)
        return created


def unmet_settings(settings: TopicSettings, brokers: int) -> list[str]:
    """What a cluster of ``brokers`` brokers cannot do of ``settings``, one line each."""
    if settings.replication_factor <= brokers:
        return []
    return [f"{SETTING}.replication_factor is {settings.replication_factor}, but the cluster "
            f"has {brokers} broker{'s' if brokers != 1 else ''}: every partition needs that "
            f"many brokers (lower the setting, or add brokers)"]


@dataclass
class TopicsReport:
    """The deployment's topics as the cluster has them, against the topic settings."""

    problems: list[str] = field(default_factory=list)  # one line per difference
    missing: list[str] = field(default_factory=list)  # created by the first worker
    matching: list[str] = field(default_factory=list)


async def compare_topics(admin: Admin, topics: Topics, settings: TopicSettings
                         ) -> TopicsReport:
    """Compare every existing topic of the deployment with ``settings``: partition count,
    replication factor and the configuration values syncline sets (retention, compaction,
    ``min.insync.replicas``). Missing topics are listed, not problems."""
    report = TopicsReport()
    brokers = len((await admin.describe_cluster()).brokers)
    report.problems.extend(unmet_settings(settings, brokers))
    specs = topics.specs(settings)
    shapes = await admin.describe_topics([spec.name for spec in specs])
    for spec in specs:
        shape = shapes.get(spec.name)
        if shape is None:
            report.missing.append(spec.name)
            continue
        wrong = []
        if shape.partitions != spec.partitions:
            wrong.append(f"{shape.partitions} partitions, {SETTING}.partitions is "
                         f"{spec.partitions}")
        if shape.replication != spec.replication:
            wrong.append(f"replication factor {shape.replication}, "
                         f"{SETTING}.replication_factor is {spec.replication}")
        actual = await admin.topic_config(spec.name)
        wrong.extend(f"{key} is {actual.get(key)!r}, expected {value!r}"
                     for key, value in sorted(spec.config.items()) if actual.get(key) != value)
        if wrong:
            report.problems.append(f"topic {spec.name}: " + "; ".join(wrong))
        else:
            report.matching.append(spec.name)
    return report
