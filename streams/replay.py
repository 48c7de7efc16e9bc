"""Replay: rebuild the records table from the log and compare it with the live one.

The ``merge`` topic holds every input of the fold (routed observations and resolutions) in
the order the merge stage took them, per partition, forever. Folding it again into empty
state must give the live table bit for bit (DESIGN.md "Determinism"); :func:`replay` does
that and reports every record that differs. Run it when the merge stage has caught up
(a worker still processing makes the live table newer than what was read of the log).

``python -m streams.replay --bootstrap HOST:PORT --prefix P --catalog module:attribute``
exits 0 when the rebuilt table equals the live one, 1 when not.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field

import conflict
from streams.kafka import KafkaSettings, read_to_end
from streams.merge import REJECTED, Catalog, Merger, decode_merge_input
from streams.topics import Topics
from streams.worker import decode_state, load_object


@dataclass
class ReplayResult:
    """What a replay rebuilt, next to what the live table holds."""

    rebuilt: dict[str, conflict.RecordState] = field(default_factory=dict)
    live: dict[str, conflict.RecordState] = field(default_factory=dict)
    inputs: int = 0
    rejected: int = 0

    @property
    def differences(self) -> list[str]:
        """Canonical ids whose rebuilt state is not the live one (or exists on one side)."""
        ids = sorted(set(self.rebuilt) | set(self.live))
        return [cid for cid in ids
                if cid not in self.rebuilt or cid not in self.live
                or self.rebuilt[cid].to_dict() != self.live[cid].to_dict()]


async def rebuild(settings: KafkaSettings, topics: Topics, catalog: Catalog) -> ReplayResult:
    """Fold the whole ``merge`` topic into fresh state."""
    result = ReplayResult()
    merger = Merger(catalog)
    for record in await read_to_end(settings, topics.merge):
        result.inputs += 1
        try:
            merger.apply(decode_merge_input(record.value), result.rebuilt)
        except REJECTED:
            result.rejected += 1  # the live merge sent it to the dead-letter topic too
    return result


async def live_table(settings: KafkaSettings, topics: Topics) -> dict[str, conflict.RecordState]:
    """The live records table: the latest value per key of its changelog."""
    latest: dict[str, bytes | None] = {}
    for record in await read_to_end(settings, topics.name("records_changelog")):
        if record.key is not None:
            latest[record.key.decode()] = record.value
    return {cid: decode_state(value) for cid, value in latest.items() if value is not None}


async def replay(settings: KafkaSettings, topics: Topics, catalog: Catalog) -> ReplayResult:
    """Rebuild the table from the log and read the live one beside it."""
    result = await rebuild(settings, topics, catalog)
    result.live = await live_table(settings, topics)
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
    print(f"replayed {result.inputs} inputs ({result.rejected} rejected) into "
          f"{len(result.rebuilt)} records; live table: {len(result.live)} records; "
          f"{len(differences)} differ")
    for cid in differences[:20]:
        print(f"  differs: {cid}")
    sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()
