"""The merge benchmark's input: what the merge stage reads is what running lanes make."""

from __future__ import annotations

import time
from collections import Counter

import conflict
from benchmarks.merge import routed_inputs, synced_observations
from streams.kafka import ConsumedRecord
from streams.merge import Merger
from tests.streams.catalog import CATALOG


def _fold(inputs: list[tuple[bytes, bytes]]) -> Counter[str]:
    """The roles of the merge stage's outputs over ``inputs``, folded in order."""
    merger, records = Merger(CATALOG), dict[str, conflict.RecordState]()
    roles = Counter[str]()
    for offset, (key, value) in enumerate(inputs):
        record = ConsumedRecord("merge", 0, offset, key, value, 0)
        roles.update(out.role for out in merger.handle(record, records, time.time))
    return roles


def test_the_causal_input_has_no_outcome_before_its_cause() -> None:
    events = synced_observations(3000)
    inputs = routed_inputs(events)
    assert len(inputs) == len(events)
    roles = _fold(inputs)
    assert roles["dlq"] == 0 and roles["intents"] > 0 and roles["records"] > 0
    # The same inputs with one lane's first: outcomes come before the reads that caused
    # their writes (what the route stage can make of a pre-loaded backlog), dead letters.
    lanes = sorted(range(len(events)), key=lambda i: events[i].system != "crm")
    assert _fold([inputs[i] for i in lanes])["dlq"] > 0
