"""Replay: rebuild the records table from the log and compare it with the live one.

The ``merge`` topic holds every input of the fold (routed observations and resolutions) in
the order the merge stage took them, per partition, forever. The fold is deterministic (no
clock, no random ids: time and actor are in the inputs), so folding the log again into empty
state must give the live table bit for bit; :func:`replay` does that and reports every
record that differs. The changelog says which offset of each ``merge`` partition its states
reflect (the merge stage's checkpoint marker, :mod:`streams.checkpoint`), and the rebuild
stops there, so a replay is exact even while the merge stage is working through a backlog.

``python -m streams.replay --bootstrap HOST:PORT --prefix P --catalog module:attribute``
exits 0 when the rebuilt table equals the live one, 1 when not.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import conflict
from streams.kafka import KafkaSettings, read_to_end
from streams.merge import REJECTED, Catalog, Merger, decode_merge_input
from streams.table import read_table
from streams.topics import Topics
from streams.worker import load_object


@dataclass
class ReplayResult:
    """What a replay rebuilt, next to what the live table holds."""

    rebuilt: dict[str, conflict.RecordState] = field(default_factory=dict)
    live: dict[str, conflict.RecordState] = field(default_factory=dict)
    inputs: int = 0
    rejected: int = 0
    later: int = 0  # inputs after the live table's checkpoint: not folded

    def summary(self) -> str:
        """One line: what was replayed and how many records differ."""
        later = (f" ({self.later} newer inputs, which the live table does not reflect yet, "
                 "left out)") if self.later else ""
        return (f"replayed {self.inputs} inputs{later} ({self.rejected} rejected) into "
                f"{len(self.rebuilt)} records; live table: {len(self.live)} records; "
                f"{len(self.differences)} differ")

    @property
    def differences(self) -> list[str]:
        """Canonical ids whose rebuilt state is not the live one (or exists on one side)."""
        ids = sorted(set(self.rebuilt) | set(self.live))
        return [cid for cid in ids
                if cid not in self.rebuilt or cid not in self.live
                or self.rebuilt[cid].to_dict() != self.live[cid].to_dict()]


async def rebuild(settings: KafkaSettings, topics: Topics, catalog: Catalog,
                  until: Mapping[int, int] | None = None) -> ReplayResult:
    """Fold the ``merge`` topic into fresh state: all of it, or in each partition named in
    ``until`` the inputs before that offset."""
    result = ReplayResult()
    merger = Merger(catalog)
    for record in await read_to_end(settings, topics.merge):
        if until is not None and record.offset >= until.get(record.partition, record.offset + 1):
            result.later += 1
            continue
        result.inputs += 1
        try:
            merger.apply(decode_merge_input(record.value), result.rebuilt)
        except REJECTED:
            result.rejected += 1  # the live merge sent it to the dead-letter topic too
    return result


async def live_table(settings: KafkaSettings, topics: Topics
                     ) -> tuple[dict[str, conflict.RecordState], dict[int, int]]:
    """The live records table (the latest value per key of its changelog), and per partition
    the ``merge`` offset its states reflect, where the changelog has a checkpoint marker."""
    table = await read_table(settings, topics)
    states = {cid: state for cid in table.raw if (state := table.state(cid)) is not None}
    return states, dict(table.checkpoints)


async def replay(settings: KafkaSettings, topics: Topics, catalog: Catalog) -> ReplayResult:
    """Read the live table, and rebuild it from the log up to the offsets it reflects."""
    live, checkpoints = await live_table(settings, topics)
    result = await rebuild(settings, topics, catalog, checkpoints)
    result.live = live
    return result


def main(argv: list[str] | None = None) -> None:
    """Replay from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", default="syncline")
    parser.add_argument("--catalog", required=True, help="module:attribute of a Catalog")
    args = parser.parse_args(argv)
    result = asyncio.run(replay(KafkaSettings(bootstrap=args.bootstrap), Topics(args.prefix),
                                load_object(args.catalog)))
    differences = result.differences
    print(result.summary())
    for cid in differences[:20]:
        print(f"  differs: {cid}")
    sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()
