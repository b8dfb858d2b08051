"""identity reads bulk imports in a lane of their own (a topic and a consumer group): an interaction published while
a big import is queued in the bulk lane is applied long before the import is, and both end exactly as alone."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.events import TicketPurchasedV1
from shared.producer import OutgoingMessage
from shared.topics import BULK_IMPORT_ROWS, IMPORT_ROW_OUTCOMES
from tests.support.identity import (
    assert_state_is_the_fold_of_the_event_store,
    identity_process,
    interaction_message,
    query,
    recorded,
    row_messages,
    rows_of,
    spellings,
)
from tests.support.isolation import Isolation
from tests.support.kafka import consume_until, publish
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


async def test_an_interaction_overtakes_a_big_import_queued_in_the_bulk_lane(
    isolation: Isolation, tmp_path: Path
) -> None:
    isolation.migrate(("identity",))
    identity = identity_process(isolation, tmp_path)
    emails = spellings(people=20_000, rows=40_000, seed=5)
    bulk = [OutgoingMessage(isolation.topic(BULK_IMPORT_ROWS), m.key, m.value, m.headers)
            for m in row_messages(isolation, "imp-bulk", emails)]
    ticket = TicketPurchasedV1(email="vip@x.io", first_name="Vera", kagibag_event_id="ev-1", order_id="o-1",
                               ticket_count=1, organizer_id="org-2", occurred_at=datetime.now(UTC))
    try:
        await identity.start()
        await publish(isolation.kafka_bootstrap, bulk)
        published = time.monotonic()
        await publish(isolation.kafka_bootstrap, [interaction_message(isolation, ticket)])
        await wait_until(lambda: recorded(isolation, "vip@x.io"), timeout=60, interval=0.1)
        interaction_applied = time.monotonic() - published
        outcomes = await consume_until(
            isolation.kafka_bootstrap, isolation.topic(IMPORT_ROW_OUTCOMES),
            lambda got: len({r.row_number for r in rows_of(got, "imp-bulk")}) >= len(emails), timeout=240,
        )
        import_done = time.monotonic() - published
        assert_state_is_the_fold_of_the_event_store(isolation)
        people = {email.strip().lower() for email in emails} | {"vip@x.io"}
        assert query(isolation, "SELECT count(*) FROM contacts") == [(len(people),)]
    finally:
        await identity.stop()

    assert len({r.row_number for r in rows_of(outcomes, "imp-bulk")}) == len(emails)
    assert interaction_applied < import_done / 2, (interaction_applied, import_done)
    lanes = {line.split('"lane": "')[1].split('"')[0] for line in identity.log_path.read_text().splitlines()
             if '"identity.resolved"' in line}
    assert lanes == {isolation.consumer_group("identity"), isolation.consumer_group("identity") + ".bulk"}
