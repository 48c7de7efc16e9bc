"""``python -m chaos --seed N [sizes]``: a chaos run; exit code 1 on any violation.

Needs a broker started by ``deploy/kafka/kafka.sh up`` (it is SIGKILLed and started again
during the run): ``SYNCLINE_KAFKA_PORT`` or ``--kafka-port`` names it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from functools import partial
from pathlib import Path

from chaos.plan import Params
from chaos.run import run


def main(argv: list[str] | None = None) -> int:
    defaults = Params(seed=0)
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000,
                        help="replays a run's schedule (default: from the clock, printed)")
    parser.add_argument("--edits", type=int, default=defaults.edits)
    parser.add_argument("--records", type=int, default=defaults.records,
                        help="people created before the edits start")
    parser.add_argument("--rate", type=float, default=defaults.rate,
                        help="people's actions per second")
    parser.add_argument("--kills", type=int, default=defaults.kills,
                        help="worker SIGKILLs at random moments")
    parser.add_argument("--down-seconds", type=float, default=defaults.down_seconds,
                        help="how long one system is down (0: never)")
    parser.add_argument("--no-broker-kill", action="store_true")
    parser.add_argument("--no-faults", action="store_true",
                        help="no 5xx, timeouts, 429 bursts, garbled bodies")
    parser.add_argument("--settle-seconds", type=float, default=defaults.settle_seconds)
    parser.add_argument("--kafka-port", type=int,
                        default=int(os.environ.get("SYNCLINE_KAFKA_PORT", "19092")))
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the config and the workers' logs go (default: a temp dir)")
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    params = Params(seed=args.seed, records=args.records, edits=args.edits, rate=args.rate,
                    kills=args.kills, down_seconds=args.down_seconds,
                    broker_kill=not args.no_broker_kill, faults=not args.no_faults,
                    settle_seconds=args.settle_seconds)
    logging.basicConfig(level=logging.WARNING)
    # A worker SIGKILLed mid-request is the point of the run, not an error of the systems.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    started = time.monotonic()
    outcome = asyncio.run(run(params, f"127.0.0.1:{args.kafka_port}",
                              broker_port=args.kafka_port, workdir=args.workdir,
                              keep_topics=args.keep_topics, say=partial(print, flush=True)))
    verdict = outcome.verdict
    print(f"\nchaos run, seed {params.seed} ({time.monotonic() - started:.0f} s; "
          f"replay: python -m chaos {' '.join(sys.argv[1:]) or f'--seed {params.seed}'})")
    print("injected:")
    for key, value in outcome.injected.items():
        print(f"  {key}: {value}")
    print("timing:")
    for key, value in outcome.timing.items():
        print(f"  {key}: {value:.1f}")
    print("figures:")
    for key, value in verdict.figures.items():
        print(f"  {key}: {value}")
    if verdict.windowed:
        print(f"\n{len(verdict.windowed)} edits overwritten in an API's window (no conditional "
              "writes; not violations, docs/RELIABILITY.md):")
        for line in verdict.windowed:
            print(f"  {line}")
    if args.json is not None:
        args.json.write_text(json.dumps({"seed": params.seed, "params": vars(args) | {
            "workdir": str(args.workdir), "json": str(args.json)},
            "injected": outcome.injected, "timing": outcome.timing,
            "figures": verdict.figures, "violations": verdict.violations,
            "windowed": verdict.windowed}, indent=2) + "\n")
    if verdict.violations:
        print(f"\n{len(verdict.violations)} VIOLATIONS (seed {params.seed}, logs in "
              f"{outcome.logs}):")
        for line in verdict.violations[:200]:
            print(f"  {line}")
        return 1
    print(f"\nok: no violation (seed {params.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
