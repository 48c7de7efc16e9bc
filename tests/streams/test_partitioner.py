"""The stages' partitioner: Java's murmur2 partitioning, remembered per key."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from streams.partitioner import CachingPartitioner


@given(st.lists(st.binary(min_size=1, max_size=40), max_size=30), st.integers(1, 12))
def test_it_partitions_as_the_default_partitioner_does(keys: list[bytes], count: int) -> None:
    partitioner, default = CachingPartitioner(limit=7), DefaultPartitioner()
    partitions = list(range(count))
    for key in keys * 2:  # the second time from the cache (or after it was cleared)
        assert partitioner(key, partitions, partitions) == default(key, partitions, partitions)


def test_outputs_keyed_like_an_input_go_to_its_partition_in_topics_of_that_many() -> None:
    partitioner, default = CachingPartitioner(), DefaultPartitioner()
    key = b"2f1c8a86-6a54-5b7c-9d42-6d1f0c0f4a11"
    four, six = [0, 1, 2, 3], [0, 1, 2, 3, 4, 5]
    # The input came from partition 1 of a 4-partition topic (its producer's choice).
    partitioner.remember(key, 4, 1)
    assert partitioner(key, four, four) == 1
    assert partitioner(key, six, six) == default(key, six, six)
