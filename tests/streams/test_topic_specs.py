"""The topics as docs/ARCHITECTURE.md describes them: what is kept forever, what is compacted,
and one partition count for all."""

from __future__ import annotations

from streams.topics import ROLES, Topics, TopicSettings

FOREVER = ("observations", "resolutions", "merge", "conflicts")
"""The event log (the fold's inputs), and the conflicts: a record may have several, so a
compacted topic would keep one per record and drop the others, open ones included."""

COMPACTED = ("records", "links_changelog", "records_changelog", "lanes")
"""The latest value per key is what matters."""


def test_the_event_log_and_the_conflicts_are_kept_and_the_tables_compacted() -> None:
    topics = Topics("p")
    specs = {spec.name: spec for spec in topics.specs(TopicSettings())}
    assert set(specs) == {topics.name(role) for role in ROLES}
    for role in FOREVER:
        config = specs[topics.name(role)].config
        assert config.get("cleanup.policy", "delete") != "compact", role
        assert config["retention.ms"] == "-1", role
    for role in COMPACTED:
        assert specs[topics.name(role)].config["cleanup.policy"] == "compact", role
    assert specs["p.records-changelog"].name == topics.name("records_changelog")


def test_every_topic_has_the_same_partition_count() -> None:
    specs = Topics("p").specs(TopicSettings(partitions=7))
    assert {spec.partitions for spec in specs} == {7}
