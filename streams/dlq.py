"""The dead-letter topic: list what is there, and send letters back to where they came from.

A dead letter keeps the original key and value bytes, the topic, partition and offset, the
stage and the reason. Re-driving publishes the original bytes to the original topic again,
after whatever made them fail was fixed (a config that lacked the entity, a bug). It is safe
to re-drive a letter twice: the fold recognises an observation it already applied by its
sequence number, and a resolution by its id, and changes nothing.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from streams import codec
from streams.errors import DecodeError
from streams.events import DeadLetter
from streams.kafka import KafkaSettings, Producer, read_to_end
from streams.topics import Topics


@dataclass(frozen=True, slots=True)
class Letter:
    """A dead letter and where it sits in the dead-letter topic."""

    id: str  # "partition:offset" in the dead-letter topic
    letter: DeadLetter


async def letters(settings: KafkaSettings, topics: Topics, stage: str | None = None
                  ) -> list[Letter]:
    """Every dead letter (of ``stage``, if given), oldest first per partition."""
    out = []
    for record in await read_to_end(settings, topics.dlq):
        try:
            letter = codec.decode(record.value, (DeadLetter,))
        except DecodeError:
            continue  # not ours: the dead-letter topic is for syncline's letters only
        if stage is None or letter.stage == stage:
            out.append(Letter(f"{record.partition}:{record.offset}", letter))
    return out


async def redrive(settings: KafkaSettings, chosen: list[Letter]) -> int:
    """Publish each letter's original bytes to its original topic; how many were sent."""
    async with Producer(settings) as producer:
        for item in chosen:
            letter = item.letter
            key = base64.b64decode(letter.key_b64) if letter.key_b64 is not None else b""
            value = base64.b64decode(letter.value_b64) if letter.value_b64 is not None else b""
            await producer.send(letter.topic, key, value)
    return len(chosen)
