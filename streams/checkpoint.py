"""The checkpoint marker of a stage whose changelog may lag behind its committed offsets.

A stage with one source topic writes its changelog only every few seconds while it works
through a backlog (see :mod:`streams.runner`). Every one of its transactions also writes a
marker to the partition's changelog, under :data:`CHECKPOINT_KEY`: the source offset its
changelog states reflect (the last checkpoint), and the offset the same transaction commits.
A new owner restores the states, then folds the source records between the two again
(:mod:`streams.restore`); ``syncline replay`` rebuilds each partition up to the first.
"""

from __future__ import annotations

import orjson

CHECKPOINT_KEY = "\x00checkpoint"
"""The changelog key of a single-source stage's checkpoint marker (never a store key)."""


def encode_checkpoint(checkpoint: int, committed: int) -> bytes:
    """A checkpoint marker: the source offset the changelog's states reflect, and the one the
    same transaction commits."""
    return orjson.dumps({"checkpoint": checkpoint, "committed": committed})


def decode_checkpoint(value: bytes) -> tuple[int, int]:
    """Inverse of :func:`encode_checkpoint`."""
    marker = orjson.loads(value)
    return int(marker["checkpoint"]), int(marker["committed"])
