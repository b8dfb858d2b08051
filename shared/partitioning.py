"""Kafka's default partitioning: murmur2 of the key, as the Java client and aiokafka compute it, in native code
(the ``murmurhash2`` wheel; aiokafka's pure-Python version cost about 5 µs per message)."""

from __future__ import annotations

from murmurhash2 import murmurhash2

KAFKA_SEED = 0x9747B28C


def murmur2(data: bytes) -> int:
    """``org.apache.kafka.common.utils.Utils.murmur2``, as an unsigned 32-bit value."""
    return int(murmurhash2(data, KAFKA_SEED))


def partition_of(key: bytes, partitions: int) -> int:
    """The partition any Kafka client's default partitioner puts ``key`` in, among ``partitions``."""
    return (murmurhash2(key, KAFKA_SEED) & 0x7FFFFFFF) % partitions
