"""The merge worker: the route and merge stages of one deployment, run together.

``python -m streams.worker --bootstrap HOST:PORT --prefix P --catalog module:attribute`` runs
them until SIGTERM or SIGINT (``syncline run`` does the same from the YAML config). Several
workers with the same prefix form one consumer group per stage and share the partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import importlib
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.kafka import Admin, KafkaSettings
from streams.merge import (
    Catalog,
    Merger,
    Router,
)
from streams.runner import CHECKPOINT_IDLE, NEVER, StageRunner
from streams.stores import AnyStore, RocksStore, Store
from streams.table import decode_state, encode_state
from streams.topics import Topics, TopicSettings

MAX_BATCH = 2000
"""Inputs per partition and transaction, at most. Batches are this large only with a
backlog; the larger they are, the more of a record's changes one changelog write and one
record event cover (docs/BENCHMARKS.md)."""

CHECKPOINT_INTERVAL = 5.0
"""Seconds of a partition's work (CPU time handling its batches, not wall time): while the
merge stage works through a backlog, it writes a partition's changelog at most this often
(and whenever the partition falls idle); a new owner folds the inputs
since then again, reading them from the ``merge`` topic: ~35 µs an input (92,000 inputs of
four partitions in 3.3 s), against ~60 µs to handle one (nothing is encoded or sent).
A record changed in several batches of that time is written once, and its record event
produced once, with the changelog (docs/BENCHMARKS.md, docs/DECISIONS.md)."""


class MergeWorker:
    """Routes observations to canonical ids and folds them, exactly once."""

    def __init__(self, settings: KafkaSettings, topics: Topics, catalog: Catalog, *,
                 topic_settings: TopicSettings | None = None,
                 clock: Callable[[], float] = time.time, max_batch: int = MAX_BATCH,
                 checkpoint_interval: float = CHECKPOINT_INTERVAL,
                 checkpoint_idle: float | None = CHECKPOINT_IDLE,
                 state_dir: Path | None = None) -> None:
        self.settings = settings
        self.topics = topics
        self.topic_settings = topic_settings or settings.topics
        self.clock = clock
        self.router = Router(catalog)
        self.merger = Merger(catalog)
        # In memory by default; in RocksDB under ``state_dir`` for large record counts.
        self.links: AnyStore
        self.records: AnyStore
        if state_dir is None:
            self.links = Store(encode=str.encode, decode=bytes.decode)
            self.records = Store(encode=encode_state, decode=decode_state)
        else:
            self.links = RocksStore(state_dir / "links", str.encode, bytes.decode)
            self.records = RocksStore(state_dir / "records", encode_state, decode_state)
        self.route_stage = StageRunner(
            settings, group_id=f"{topics.prefix}.route",
            sources=[topics.observations, topics.resolutions],
            changelog=topics.name("links_changelog"), store=self.links,
            handle=functools.partial(self.router.handle, clock=clock),
            topic_of=topics.name, max_batch=max_batch, output_roles=("merge", "dlq"))
        self.merge_stage = StageRunner(
            settings, group_id=f"{topics.prefix}.merge",
            sources=[topics.merge],
            changelog=topics.name("records_changelog"), store=self.records,
            handle=functools.partial(self.merger.handle, clock=clock),
            topic_of=topics.name, max_batch=max_batch,
            compacted=frozenset({"records"}),
            output_roles=("records", "intents", "conflicts", "dlq"),
            checkpoint_interval=checkpoint_interval, checkpoint_idle=checkpoint_idle)

    async def ensure_topics(self) -> list[str]:
        """Create the deployment's topics where missing."""
        async with Admin(self.settings) as admin:
            return await self.topics.ensure(admin, self.topic_settings)

    async def run(self, stop: asyncio.Event, roles: tuple[str, ...] = ("route", "merge")
                  ) -> None:
        """Run the stages named in ``roles`` until ``stop`` is set.

        One process can run both, or each its own (``--role``), to use more cores: the
        stages share nothing but topics.
        """
        await self.ensure_topics()
        stages = {"route": self.route_stage, "merge": self.merge_stage}
        async with asyncio.TaskGroup() as group:
            for role in roles:
                group.create_task(stages[role].run(stop))


def tune_gc() -> None:
    """Garbage-collector settings for a long-running worker.

    The fold allocates many short-lived objects and makes no reference cycles, so the default
    first-generation threshold (700) runs the cyclic collector thousands of times a second over
    a large, long-lived heap (the record states). Freezing what exists at start-up and raising
    the threshold took the fold from 75,000 to 100,000 inputs/s (docs/BENCHMARKS.md).
    Every record state the merge keeps survives its first two collections, so fewer, larger
    young collections (100,000 objects, and a middle one every 50 of them instead of 20) took
    the merge stage's own code from ~59 to ~51 µs an input when most inputs change a record
    that no other input of the batch touches (nearly the cost without a collector).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _seconds_or_never(text: str) -> float | None:
    if text == "never":
        return NEVER
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds or 'never': {text!r}") from None


def load_object(path: str) -> Any:
    """``package.module:attribute``."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


async def _main(args: argparse.Namespace) -> None:
    settings = KafkaSettings(bootstrap=args.bootstrap,
                             topics=TopicSettings(partitions=args.partitions))
    worker = MergeWorker(settings, Topics(args.prefix), load_object(args.catalog),
                         max_batch=args.max_batch, checkpoint_interval=args.checkpoint_interval,
                         checkpoint_idle=args.checkpoint_idle,
                         state_dir=args.state_dir)
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await worker.run(stop, ("route", "merge") if args.role == "all" else (args.role,))


def main(argv: list[str] | None = None) -> None:
    """Run a merge worker from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", default="syncline")
    parser.add_argument("--catalog", required=True, help="module:attribute of a Catalog")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-batch", type=int, default=MAX_BATCH,
                        help="inputs per partition and transaction, at most")
    parser.add_argument("--checkpoint-interval", type=float, default=CHECKPOINT_INTERVAL,
                        help="seconds of a partition's work (CPU time): with a backlog, "
                             "write the merge's changelog at most this often (0: in every "
                             "transaction)")
    parser.add_argument("--checkpoint-idle", type=_seconds_or_never, default=CHECKPOINT_IDLE,
                        help="seconds without input after which a partition's lagging "
                             "changelog is written; 'never': only every checkpoint interval, "
                             "even once caught up (for tests)")
    parser.add_argument("--role", choices=("all", "route", "merge"), default="all",
                        help="which stages this process runs (default: both)")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="keep the tables in RocksDB under this directory (default: memory)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
