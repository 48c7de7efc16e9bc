"""Which partition a key goes to: Kafka's default partitioner, remembered per key."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner, murmur2


class CachingPartitioner:
    """aiokafka's default partitioner (Java's murmur2), remembering each key's partition.

    Keys repeat constantly here (canonical ids, ``system/entity``), and murmur2 in pure Python
    costs several microseconds a call; the result is the same as the default partitioner's.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self._cache: dict[tuple[bytes, int], int] = {}
        self._limit = limit
        self._default = DefaultPartitioner()

    def remember(self, key: bytes, count: int, partition: int) -> None:
        """That ``key`` is in ``partition`` of a topic of ``count`` partitions: a consumed
        record's own (its producer partitioned it the same way), so that outputs with its
        key skip murmur2 even after the cache was last cleared."""
        if len(self._cache) >= self._limit:
            self._cache.clear()
        self._cache[(key, count)] = partition

    def __call__(self, key: bytes | None, all_partitions: list[int],
                 available: list[int]) -> int:
        if key is None:
            return int(self._default(key, all_partitions, available))
        slot = (key, len(all_partitions))
        partition = self._cache.get(slot)
        if partition is None:
            if len(self._cache) >= self._limit:
                self._cache.clear()
            partition = all_partitions[(murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]
            self._cache[slot] = partition
        return partition
