"""identity's domain inputs as the unit tests write them: a record from an organizer's import, ids in sequence."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime

from services.identity.domain import IncomingRecord
from shared import wire

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def source(organizer: str = "org-a", row: int = 1) -> wire.ContactSource:
    return wire.ContactSource(kind="import", organizer_id=organizer, import_id=f"imp-{organizer}", row_number=row)


def record(email: str, at: datetime = T0, *, organizer: str = "org-a", **fields: str | None) -> IncomingRecord:
    return IncomingRecord(email=email, fields=fields, source=source(organizer), occurred_at=at)  # type: ignore[arg-type]


def sequential_ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"contact-{next(counter)}"
