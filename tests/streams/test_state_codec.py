"""The merge's changelog form of a record state: compact, deterministic, bit for bit.

Every state the fold makes over the conflict model's random schedules (conflicts open and
resolved, deletes, failed and crashed writes, replaced copies) is encoded, decoded and
encoded again: the same state, the same bytes. Changelogs written in the older ``to_dict``
form still decode.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis.stateful import run_state_machine_as_test

import conflict
from conflict import fold as conflict_fold
from streams.worker import decode_state, encode_state
from tests.conflict.test_model import SyncMachine, _settings
from tests.streams.test_merge_kafka import story

CHECKED = 0


def _round_trip(state: conflict.RecordState) -> None:
    global CHECKED
    data = encode_state(state)
    again = decode_state(data)
    assert again == state
    assert encode_state(again) == data  # bit for bit
    assert again.to_dict() == state.to_dict()
    old_form = orjson.dumps(state.to_dict(), option=orjson.OPT_SORT_KEYS)
    assert decode_state(old_form) == state  # a changelog written before the compact form
    CHECKED += 1


def _checked_fold(*args: Any, **kwargs: Any) -> conflict.Step:
    step = conflict_fold(*args, **kwargs)
    _round_trip(step.state)
    return step


class CodecMachine(SyncMachine):
    fold_fn = staticmethod(_checked_fold)


def test_every_state_of_random_schedules_round_trips_bit_for_bit() -> None:
    before = CHECKED
    run_state_machine_as_test(CodecMachine, settings=_settings(150, derandomize=True,
                                                               database=None))
    assert CHECKED - before > 1000


def test_the_compact_form_is_smaller_and_versioned() -> None:
    from streams.merge import Merger, Router
    from tests.streams.catalog import CATALOG

    router, merger = Router(CATALOG), Merger(CATALOG)
    links: dict[str, str] = {}
    records: dict[str, conflict.RecordState] = {}
    for event in story(records=9, edits_per_record=4):
        merger.apply(router.route(event, links).event, records)  # type: ignore[arg-type]
    for state in records.values():
        _round_trip(state)
        compact = len(encode_state(state))
        assert compact < 0.7 * len(orjson.dumps(state.to_dict(), option=orjson.OPT_SORT_KEYS))
        assert orjson.loads(encode_state(state))[0] == conflict.state.COMPACT_VERSION


def test_a_field_not_kept_round_trips_and_older_states_decode_without_one() -> None:
    spec = conflict.EntitySpec.build("contact", ["crm", "helpdesk"], ["status"])
    step = conflict_fold(spec, conflict.RecordState("c1", "contact"),
                         conflict.Observed("crm", 1, "c-1", {"status": "open"}))
    (intent,) = step.intents
    step = conflict_fold(spec, step.state, conflict.Written(
        "helpdesk", 1, intent.intent_id, "h-1", None, 2.0, {"status": "new"},
        {"status": ("open", "new")}))
    peer = step.state.peers["helpdesk"]
    assert peer.not_kept == {"status": ("open", "new")} and peer.shadow == {"status": "new"}
    assert step.intents == () and step.state.fields["status"].value == "open"
    _round_trip(step.state)
    older = orjson.loads(encode_state(step.state))
    for compact_peer in older[5]:
        compact_peer.pop()  # peers written before the marker existed
    decoded = decode_state(orjson.dumps(older))
    assert decoded.peers["helpdesk"].not_kept == {}
    assert decoded.peers["helpdesk"].shadow == {"status": "new"}
