"""Reads one ``Snapshot`` per poll from the broker: the partitions' earliest and end offsets, and each watched
group's committed offsets through a reader that never joins the group. Clients stay open between polls; one
that fails is closed and made again at the next poll."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.monitor.domain import GroupRead, Snapshot
from shared.lag import committed_offsets, group_reader

log = structlog.get_logger(__name__)

DISCOVER_EVERY = 12
"""Polls between two searches for the topics of groups named only in settings."""


class OffsetPoller:
    """``groups``: group -> the topics it reads, or None to find them from the group's commits (any topic with
    the prefix on which the group has committed). ``end_only``: topics whose end offsets are read although no
    watched group reads them (the dead-letter topics: their growth is alerted on)."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        groups: Mapping[str, tuple[str, ...] | None],
        topic_prefix: str,
        timeout: float,
        end_only: tuple[str, ...] = (),
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._groups = dict(groups)
        self._prefix = topic_prefix
        self._timeout = timeout
        self._end_only = set(end_only)
        self._metadata: AIOKafkaConsumer | None = None
        self._readers: dict[str, AIOKafkaConsumer] = {}
        self._discovered: dict[str, set[str]] = {}
        self._polls = 0

    async def read(self) -> Snapshot:
        """One poll. Never raises for the broker's sake: what could not be read is an error in the snapshot."""
        at = time.time()
        self._polls += 1
        try:
            metadata = await self._client()
            topics = await asyncio.wait_for(_refresh_metadata(metadata), self._timeout)
            partitions = self._partitions(metadata, topics)
            ends = await asyncio.wait_for(metadata.end_offsets(partitions), self._timeout) if partitions else {}
            earliest = (
                await asyncio.wait_for(metadata.beginning_offsets(partitions), self._timeout) if partitions else {}
            )
        except Exception as error:
            await self._drop_metadata()
            return Snapshot(at=at, ends={}, earliest={}, groups={g: GroupRead() for g in self._groups},
                            error=f"broker: {_describe(error)}")
        reads = await asyncio.gather(*(self._read_group(group, topics, partitions) for group in self._groups))
        return Snapshot(
            at=at,
            ends={(tp.topic, tp.partition): offset for tp, offset in ends.items()},
            earliest={(tp.topic, tp.partition): offset for tp, offset in earliest.items()},
            groups=dict(zip(self._groups, reads, strict=True)),
        )

    def _partitions(self, metadata: AIOKafkaConsumer, topics: set[str]) -> list[TopicPartition]:
        wanted = {topic for names in self._groups.values() if names for topic in names} | self._end_only
        if any(names is None for names in self._groups.values()):
            wanted |= {topic for topic in topics if topic.startswith(self._prefix) and not topic.startswith("__")}
        return [
            TopicPartition(topic, partition)
            for topic in sorted(wanted & topics)
            for partition in sorted(metadata.partitions_for_topic(topic) or ())
        ]

    async def _read_group(self, group: str, topics: set[str], partitions: list[TopicPartition]) -> GroupRead:
        declared = self._groups[group]
        if declared is not None:
            names = set(declared)
        elif group in self._discovered and self._polls % DISCOVER_EVERY:
            names = self._discovered[group]
        else:
            names = {tp.topic for tp in partitions}  # search: read every partition, keep topics with commits
        mine = [tp for tp in partitions if tp.topic in names]
        try:
            reader = self._readers.get(group)
            if reader is None:
                reader = self._readers[group] = group_reader(self._bootstrap, group)
                await asyncio.wait_for(reader.start(), self._timeout)
            committed = await asyncio.wait_for(committed_offsets(reader, mine), self._timeout)
        except Exception as error:
            await self._drop_reader(group)
            return GroupRead(error=f"committed offsets of {group}: {_describe(error)}")
        if declared is None:
            found = {tp.topic for tp, offset in committed.items() if offset is not None}
            self._discovered[group] = self._discovered.get(group, set()) | found
            committed = {tp: offset for tp, offset in committed.items() if tp.topic in self._discovered[group]}
        return GroupRead(committed={(tp.topic, tp.partition): offset for tp, offset in committed.items()})

    async def _client(self) -> AIOKafkaConsumer:
        if self._metadata is None:
            client = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False)
            try:
                await asyncio.wait_for(client.start(), self._timeout)
            except BaseException:
                with contextlib.suppress(Exception):
                    await client.stop()
                raise
            self._metadata = client
        return self._metadata

    async def _drop_metadata(self) -> None:
        client, self._metadata = self._metadata, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.stop()

    async def _drop_reader(self, group: str) -> None:
        reader = self._readers.pop(group, None)
        if reader is not None:
            with contextlib.suppress(Exception):
                await reader.stop()

    async def close(self) -> None:
        await self._drop_metadata()
        for group in list(self._readers):
            await self._drop_reader(group)


async def _refresh_metadata(consumer: AIOKafkaConsumer) -> set[str]:
    """Every topic on the broker, with the consumer's metadata refreshed so ``partitions_for_topic`` and
    ``end_offsets`` know new topics too. (A consumer refreshes the topics it tracks; this one tracks none, and an
    empty list asks the broker for all of them.)"""
    client = consumer._client
    if not await client.force_metadata_update():
        raise ConnectionError("metadata not updated")
    topics: set[str] = client.cluster.topics()
    return topics


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
