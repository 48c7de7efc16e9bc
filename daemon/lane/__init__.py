"""The lane: one system and entity, every read of it and every write to it, in one sequence.

One module per job:

- :mod:`daemon.lane.ports` — what the lane needs: a connector, a journal, a field mapping,
  the links (protocols); :mod:`daemon.lane.memory` — in-memory twins of the connector and
  the journal;
- :mod:`daemon.lane.reading` — polls, records webhooks named, deletes (feed, sweep);
- :mod:`daemon.lane.decide` — the write decision (pure): done, stale, or what to write;
- :mod:`daemon.lane.writing` — intents: compare-then-write, creates with a lookup first,
  deletes, waiting while the system is down;
- :mod:`daemon.lane.references` — references translated both ways, intents parked until a
  referenced record is linked;
- :mod:`daemon.lane.report` — the events and dead letters of a round, and their commit;
- :mod:`daemon.lane.loop` — :class:`Lane`, the loop that runs them in order.

Everything a lane reports is committed with its state in one unit of its journal (on Kafka:
one transaction of :class:`streams.lanelog.LaneLog`), so its cursor never moves past what
was reported and an intent whose outcome was not committed runs again — which the write
decision makes safe.
"""

from daemon.lane.loop import Lane
from daemon.lane.ports import Connector, FieldMapping, Journal, Links, Reading, Resolve
from daemon.lane.report import fingerprint
from daemon.lane.writing import DONE_REMEMBERED, PRECONDITION_ROUNDS, RETRIABLE_ROUNDS

__all__ = [
    "DONE_REMEMBERED",
    "PRECONDITION_ROUNDS",
    "RETRIABLE_ROUNDS",
    "Connector",
    "FieldMapping",
    "Journal",
    "Lane",
    "Links",
    "Reading",
    "Resolve",
    "fingerprint",
]
