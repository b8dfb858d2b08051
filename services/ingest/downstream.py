"""How far the readers of the contact log are behind (opt-in pacing, ``CONTACTS_INGEST_PACE_BY_GROUPS``): identity
answers an import's rows long before profiles has projected what they caused, and profiles reads the contact log
first come, first served, so an interaction's profile update waits behind everything a bulk import made identity
publish. Counting those groups' lag on ``contacts.contact-events.v1`` as bulk rows in flight keeps that queue
within the bulk lane's window too. Read with a consumer that never joins the groups (``shared.lag``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import TopicPartition

from shared.lag import committed_offsets, group_reader


class DownstreamLag:
    """The largest lag, in records, of ``groups`` on ``topic`` (each group is one reader; the slowest counts)."""

    def __init__(self, *, bootstrap_servers: str, topic: str, groups: Sequence[str],
                 client_options: Mapping[str, Any]) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._groups = list(groups)
        self._options = dict(client_options)

    async def __call__(self) -> int:
        lags = [await self._lag(group) for group in self._groups]
        return max(lags, default=0)

    async def _lag(self, group: str) -> int:
        reader = group_reader(self._bootstrap_servers, group, **self._options)
        await reader.start()
        try:
            numbers = sorted(reader.partitions_for_topic(self._topic) or ())
            partitions = [TopicPartition(self._topic, number) for number in numbers]
            if not partitions:
                return 0
            ends = await reader.end_offsets(partitions)
            committed = await committed_offsets(reader, partitions)
            return sum(max(0, ends.get(tp, 0) - (committed[tp] or 0)) for tp in partitions)
        finally:
            await reader.stop()
