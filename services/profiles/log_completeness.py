"""Whether the contact log still holds every event a rebuild needs. A replay of a log that lost events builds a
partial read model without any error, so the rebuild refuses (and says to republish identity's event store) when
a partition no longer starts at offset 0 (retention, deleted records), or when the replay leaves a contact behind
the version the live read model had applied when the rebuild started (the broker restarted empty, the topic was
recreated). The second is decided on content, not offsets: after a republish the log holds every event again,
possibly at other offsets than the ones profiles stored, and Tansu's end offsets are low."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.profiles.config import ProfilesSettings

REPUBLISH = "contacts republish contact-events"


class RebuildError(Exception):
    """The rebuild cannot start or finish as asked (the message says why); nothing live was changed."""


class IncompleteLog(RebuildError):
    """The contact log lacks events the rebuild needs: republish identity's event store first."""


def headless(topic: str, starts: Mapping[int, int]) -> IncompleteLog | None:
    """The refusal for a log whose partitions do not all start at offset 0 (``starts``: partition -> its
    earliest offset), or None when every one does."""
    cut = {partition: start for partition, start in sorted(starts.items()) if start > 0}
    if not cut:
        return None
    where = ", ".join(f"partition {partition} starts at offset {start:,}" for partition, start in cut.items())
    return IncompleteLog(
        f"the contact log {topic} no longer starts at offset 0 ({where}): the records before were deleted "
        "(retention or DeleteRecords), and a replay would build a partial read model. Publish identity's event "
        f"store into an empty topic: delete {topic}, run `contacts topics` and `{REPUBLISH}`, then rebuild"
    )


def behind_live(topic: str, *, behind: int, expected: int, example: str | None,
                consumed_past_end: Mapping[int, tuple[int, int]]) -> IncompleteLog | None:
    """The refusal for a replay that left ``behind`` of the ``expected`` contacts the live read model had
    applied missing or at an older version (``consumed_past_end``: partition -> (profiles' stored position,
    the replayed log's end) where the first is beyond the second), or None when none is behind."""
    if not behind:
        return None
    shorter = "".join(
        f"; profiles had consumed partition {partition} up to offset {stored:,}, the log now ends at {end:,}"
        for partition, (stored, end) in sorted(consumed_past_end.items())
    )
    return IncompleteLog(
        f"the contact log {topic} lacks events the live read model applied: {behind:,} of {expected:,} contacts "
        f"would be missing or older after the rebuild (e.g. {example}){shorter}. The broker restarted empty or "
        f"the topic was recreated: run `{REPUBLISH}` (identity's event store is complete), then rebuild again"
    )


EXPECTED = "rebuild_expected"
"""A table in the target schema for the rebuild's duration: the contact versions the live read model had applied
when the rebuild started (a copy, so the service may go on consuming meanwhile)."""


async def expect_live(engine: AsyncEngine, *, settings: ProfilesSettings, live: str, target: str,
                       topic: str) -> tuple[int, dict[int, int]]:
    """Copy what the live read model applied; returns its count of contacts and profiles' stored positions on
    the contact log (partition -> next offset)."""
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE TABLE "{target}".{EXPECTED} AS SELECT contact_id, contact_version '
                                f'FROM "{live}".contact_profiles WHERE contact_version > 0'))
        expected = (await conn.execute(text(f'SELECT count(*) FROM "{target}".{EXPECTED}'))).scalar_one()
        positions = await conn.execute(
            text(f'SELECT partition, next_offset FROM "{live}".consumer_positions '
                 "WHERE consumer_group = :group AND topic = :topic"),
            {"group": settings.consumer_group, "topic": topic},
        )
        return int(expected), {row.partition: row.next_offset for row in positions}


async def check_against_live(engine: AsyncEngine, *, target: str, topic: str, expected: int,
                              stored: Mapping[int, int], ends: Mapping[int, int]) -> None:
    """Refuse (IncompleteLog) when the rebuilt read model is behind the live one's copy; drop the copy."""
    async with engine.begin() as conn:
        first = (await conn.execute(text(
            f'SELECT e.contact_id, e.contact_version AS live, r.contact_version AS rebuilt, count(*) OVER () AS n '
            f'FROM "{target}".{EXPECTED} e LEFT JOIN "{target}".contact_profiles r USING (contact_id) '
            "WHERE r.contact_version IS NULL OR r.contact_version < e.contact_version "
            "ORDER BY e.contact_id LIMIT 1"
        ))).first()
        await conn.execute(text(f'DROP TABLE "{target}".{EXPECTED}'))
    if first is None:
        return
    example = f"contact {first.contact_id}: version {first.live} live, {first.rebuilt or 'none'} replayed"
    past_end = {partition: (offset, ends.get(partition, 0)) for partition, offset in stored.items()
                if offset > ends.get(partition, 0)}
    refusal = behind_live(topic, behind=first.n, expected=expected, example=example, consumed_past_end=past_end)
    assert refusal is not None
    raise refusal
