"""The daemon's Prometheus metrics, all in one place.

Every metric lives on the :class:`~prometheus_client.CollectorRegistry` of one
:class:`Metrics` object (never on the process-wide default registry), so a test, or a process
that runs two workers, can hold several side by side. Names carry the ``syncline_`` namespace:
``observations`` is exported as ``syncline_observations_total``.

Label values that form a closed set (an observation's kind, a write's outcome, a webhook's
outcome) have a ``Literal`` type and a counting method that takes it, so a typo is a mypy error
rather than a new time series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Final, Literal, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

NAMESPACE: Final = "syncline"

ObservationKind = Literal["observed", "deleted", "written", "stale", "failed"]
WriteOp = Literal["create", "update", "delete"]
WriteOutcome = Literal["written", "stale", "failed", "done"]
WebhookOutcome = Literal[
    "accepted", "ignored", "bad_signature", "bad_secret", "stale_timestamp", "malformed",
    "unknown_system", "trigger_failed"
]

WEBHOOK_OUTCOMES: Final[tuple[WebhookOutcome, ...]] = (
    "accepted",
    "ignored",
    "bad_signature",
    "bad_secret",
    "stale_timestamp",
    "malformed",
    "unknown_system",
    "trigger_failed",
)

# One request: from a millisecond on a LAN to the client's timeout (30 s by default).
HTTP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# A poll is one walk over every page since the cursor: from milliseconds to a minute or so.
POLL_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class StageStats(Protocol):
    """What a stage runner counts (:class:`streams.partition.Stats`)."""

    committed: int
    dead_letters: int
    lag: dict[tuple[str, int], int]


class Stages(Collector):
    """The merge stages' own counters, read when /metrics is scraped (the stages count in
    plain integers: they know nothing of Prometheus), and the lanes' dead letters with theirs.
    """

    def __init__(self, lane_letters: Counter) -> None:
        self.stages: dict[str, StageStats] = {}
        self.conflicts: Mapping[tuple[str, str, str], int] = {}
        self.open_conflicts: Callable[[], Mapping[str, int]] | None = None
        # "lane:<system>/<entity>" -> the lane's intents not executed yet
        self.lanes: dict[str, Callable[[], int | None]] = {}
        self.lane_letters = lane_letters

    def collect(self) -> Iterator[Metric]:
        inputs = CounterMetricFamily(f"{NAMESPACE}_merge_inputs",
                                     "Inputs the stages consumed and committed.", labels=["stage"])
        letters = CounterMetricFamily(f"{NAMESPACE}_dead_letters", "Events sent to the "
                                      "dead-letter topic, by the stage that gave up.",
                                      labels=["stage"])
        lag = GaugeMetricFamily(f"{NAMESPACE}_consumer_lag", "Records a stage has not "
                                "consumed yet: its source partitions' ends less its positions.",
                                labels=["stage"])
        for stage, stats in sorted(self.stages.items()):
            inputs.add_metric([stage], stats.committed)
            letters.add_metric([stage], stats.dead_letters)
            lag.add_metric([stage], sum(stats.lag.values()))
        for stage, behind in sorted(self.lanes.items()):
            intents = behind()
            if intents is not None:
                lag.add_metric([stage], intents)
        for family in self.lane_letters.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    letters.add_metric([sample.labels["stage"]], sample.value)
        conflicts = CounterMetricFamily(f"{NAMESPACE}_conflicts", "Conflicts the merge stage "
                                        "found or settled, by the policy and the status it "
                                        "gave them.", labels=["entity", "policy", "status"])
        for (entity, policy, status), count in sorted(self.conflicts.items()):
            conflicts.add_metric([entity, policy, status], count)
        yield from (inputs, letters, lag, conflicts)
        if self.open_conflicts is not None:
            opened = GaugeMetricFamily(f"{NAMESPACE}_conflicts_open",
                                       "Conflicts waiting for a person.", labels=["entity"])
            for entity, count in sorted(self.open_conflicts().items()):
                opened.add_metric([entity], count)
            yield opened


class Metrics:
    """The daemon's metrics on a registry of their own.

    Args:
        process: also export the ``process_*`` metrics (CPU, memory, open files) of this
            process; off in tests that only look at syncline's own metrics.

    Attributes:
        registry: the registry every metric below is registered on.
        observations: ``observations_total{system,entity,kind}``, what the lanes reported.
        writes: ``writes_total{system,entity,op,outcome}``, what the lanes' writes came to.
        echoes_suppressed: ``echoes_suppressed_total{system,entity}``, reads skipped because
            the lane saw nothing new.
        http_requests: ``http_requests_total{system,status}``, answers from systems' APIs
            (``status`` is the HTTP status, or ``error`` when no answer came).
        http_request_seconds: ``http_request_seconds{system}``, how long each attempt took.
        lane_poll_seconds: ``lane_poll_seconds{system,entity}``, how long one poll took.
        lane_behind: ``lane_behind{system,entity}``, intents that failed past their budget.
        lane_cursor_lag_seconds: ``lane_cursor_lag_seconds{system,entity}``, how far the
            durable cursor is behind now.
        webhooks: ``webhooks_total{system,outcome}``, webhook deliveries received.
        dead_letters: ``dead_letters_total{stage}``, events sent to the dead-letter topic
            (the lanes' here; the merge stages' read from their counters by :attr:`stages`).
        stages: ``merge_inputs_total{stage}``, ``consumer_lag{stage}``,
            ``conflicts_total{entity,policy,status}`` and ``conflicts_open{entity}``, read
            from the stages and the links view when scraped.
        rate_limit_waits: ``rate_limit_waits_total{system}``, requests that waited for the
            rate limit; ``rate_limit_wait_seconds_total{system}``, how long in all.
        writes_not_taken: ``writes_not_taken_total{system,entity,field}``, fields a system
            answered a write for but did not keep.
        loop_breakers_open: ``loop_breakers_open{system,entity}``, records whose writes a
            lane stopped because they kept coming back.
        delete_breaker_open: ``delete_breaker_open{system,entity}``, 1 while a sweep found too
            many records missing to believe it, and deletes nothing.
        lane_unsettled_create_seconds: ``lane_unsettled_create_seconds{system,entity}``, how
            long the oldest create that may have landed unseen has waited (0: none).
    """

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.observations = Counter(
            "observations", "Observations the lanes reported, by kind.",
            ["system", "entity", "kind"], namespace=NAMESPACE, registry=registry,
        )
        self.writes = Counter(
            "writes", "Writes the lanes made to systems, by operation and outcome.",
            ["system", "entity", "op", "outcome"], namespace=NAMESPACE, registry=registry,
        )
        self.echoes_suppressed = Counter(
            "echoes_suppressed", "Reads skipped because the lane saw nothing new.",
            ["system", "entity"], namespace=NAMESPACE, registry=registry,
        )
        self.http_requests = Counter(
            "http_requests", "Requests to systems' APIs, by answer status.",
            ["system", "status"], namespace=NAMESPACE, registry=registry,
        )
        self.http_request_seconds = Histogram(
            "http_request_seconds", "How long one request to a system's API took (each "
            "attempt, answered or not).",
            ["system"], buckets=HTTP_BUCKETS, namespace=NAMESPACE, registry=registry,
        )
        self.lane_poll_seconds = Histogram(
            "lane_poll_seconds", "How long one poll of a system (every page) took.",
            ["system", "entity"], buckets=POLL_BUCKETS, namespace=NAMESPACE, registry=registry,
        )
        self.lane_behind = Gauge(
            "lane_behind", "Intents that failed past their retry budget; the record is behind.",
            ["system", "entity"], namespace=NAMESPACE, registry=registry,
        )
        self.lane_cursor_lag_seconds = Gauge(
            "lane_cursor_lag_seconds", "How far the lane's durable cursor is behind now.",
            ["system", "entity"], namespace=NAMESPACE, registry=registry,
        )
        self.webhooks = Counter(
            "webhooks", "Webhook deliveries received, by outcome.",
            ["system", "outcome"], namespace=NAMESPACE, registry=registry,
        )
        # Exported by :attr:`stages` together with the merge stages' letters.
        self.dead_letters = Counter(
            "dead_letters", "Events sent to the dead-letter topic, by the stage that gave up.",
            ["stage"], namespace=NAMESPACE, registry=None,
        )
        self.stages = Stages(self.dead_letters)
        registry.register(self.stages)
        self.rate_limit_waits = Counter(
            "rate_limit_waits", "Requests that waited for a system's rate limit.",
            ["system"], namespace=NAMESPACE, registry=registry,
        )
        self.rate_limit_wait_seconds = Counter(
            "rate_limit_wait_seconds", "Seconds requests waited for a system's rate limit.",
            ["system"], namespace=NAMESPACE, registry=registry,
        )
        self.delete_breaker_open = Gauge(
            "delete_breaker_open",
            "1 while a lane's sweep finds too many records missing to believe, and holds.",
            ["system", "entity"], namespace=NAMESPACE, registry=registry,
        )
        self.writes_not_taken = Counter(
            "writes_not_taken", "Fields a system answered a write for but did not keep.",
            ["system", "entity", "field"], namespace=NAMESPACE, registry=registry,
        )
        self.loop_breakers_open = Gauge(
            "loop_breakers_open", "Records a lane stopped writing to: its writes kept "
            "coming back without a person's edit in between.",
            ["system", "entity"], namespace=NAMESPACE, registry=registry,
        )
        self.lane_unsettled_create_seconds = Gauge(
            "lane_unsettled_create_seconds", "How long the oldest create a lane sent that may "
            "have landed unseen has waited (0: none); the lane reads nothing meanwhile.",
            ["system", "entity"], namespace=NAMESPACE, registry=registry,
        )
        if process:
            ProcessCollector(registry=registry)

    def count_observation(self, system: str, entity: str, kind: ObservationKind) -> None:
        """Count one observation a lane reported."""
        self.observations.labels(system, entity, kind).inc()

    def count_write(self, system: str, entity: str, op: WriteOp, outcome: WriteOutcome) -> None:
        """Count one write a lane made (or found already done)."""
        self.writes.labels(system, entity, op, outcome).inc()

    def count_wait(self, system: str, seconds: float) -> None:
        """Count one request's wait for the rate limit."""
        self.rate_limit_waits.labels(system).inc()
        self.rate_limit_wait_seconds.labels(system).inc(seconds)

    def count_webhook(self, system: str, outcome: WebhookOutcome) -> None:
        """Count one webhook delivery received."""
        self.webhooks.labels(system, outcome).inc()

    def render(self) -> tuple[bytes, str]:
        """The registry in Prometheus text format, and its ``Content-Type``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
