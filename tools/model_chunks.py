"""Run the fold's model over random schedules in chunks, one seed per chunk, and count them.

    .venv/bin/python tools/model_chunks.py --kind repeated --chunks 10 [--size 500] [--seed N]

Each chunk is the ``slow`` test of ``tests/conflict/test_model.py`` (the same machine and
settings, shrinking included) with a seed of its own, without pytest's per-test timeout, so
that chunks can run side by side on a loaded machine (one process per core). A chunk that
finds a broken law prints the shrunk schedule and the run stops there (exit code 1); each
clean chunk prints a line, and the last line sums up: schedules, chunks, wall time.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hypothesis.core
from hypothesis.stateful import run_state_machine_as_test

from tests.conflict.test_model import RepeatedValuesMachine, SyncMachine, _settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["repeated", "unique"], default="repeated")
    parser.add_argument("--chunks", type=int, default=1)
    parser.add_argument("--size", type=int, default=500, help="schedules per chunk")
    parser.add_argument("--seed", type=int, help="the first chunk's seed (default: random)")
    args = parser.parse_args()
    machine = RepeatedValuesMachine if args.kind == "repeated" else SyncMachine
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    started = time.monotonic()
    for i in range(args.chunks):
        chunk_seed = seed + i
        # what pytest's --hypothesis-seed sets (typed None in hypothesis)
        hypothesis.core.global_force_seed = chunk_seed  # type: ignore[assignment]
        t0 = time.monotonic()
        try:
            run_state_machine_as_test(machine, settings=_settings(args.size))
        except Exception:
            print(f"chunk {i + 1}: seed {chunk_seed}: a law broke (shrunk schedule below)",
                  flush=True)
            raise
        print(f"chunk {i + 1}: seed {chunk_seed}: {args.size} {args.kind} schedules clean "
              f"in {time.monotonic() - t0:.0f} s", flush=True)
    print(f"clean: {args.chunks * args.size} {args.kind} schedules in {args.chunks} chunks, "
          f"{time.monotonic() - started:.0f} s wall", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
