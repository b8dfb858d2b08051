"""The change log of organizers' API changes to their relationships (``organizer_contact_changes``) and its
application to ``organizer_contacts``, in the caller's transaction.

The PATCH endpoint and the rebuild use the same ``save`` of the same pure fold (``relationship.apply``), so
``replay_changes`` after replaying the contact log reproduces every relationship. The effective email
permission is recomputed from the row's import statement and the explicit one (``permission.effective``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.profiles.permission import Statement, effective
from services.profiles.relationship import ContactChange, Relationship, RelationshipPatch, apply

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Locked:
    """A relationship row, locked for the transaction: its API-changed part and the latest import statement."""

    relationship: Relationship
    imported: Statement | None


def _statement(status: str | None, at: Any, by: str | None) -> Statement | None:
    if status is None or at is None:
        return None
    return Statement(status=status, at=at, by=by or "")  # type: ignore[arg-type]


async def lock(
    conn: AsyncConnection, *, organizer_id: str, contact_id: str, profile_required: bool = False
) -> Locked | None:
    """The organizer's relationship with the contact, row-locked; None when there is none (or, with
    ``profile_required``, when the contact's creation has not been projected into its view yet)."""
    sql = (
        "SELECT o.tags, o.notes, o.preferences, o.relationship_version, "
        "o.explicit_permission, o.explicit_permission_at, o.explicit_permission_by, "
        "o.import_permission, o.import_permission_at, o.import_permission_by "
        "FROM organizer_contacts o WHERE o.organizer_id = :organizer_id AND o.contact_id = :contact_id"
    )
    if profile_required:
        sql += " AND o.email IS NOT NULL"
    row = (
        await conn.execute(text(sql + " FOR UPDATE OF o"), {"organizer_id": organizer_id, "contact_id": contact_id})
    ).first()
    if row is None:
        return None
    relationship = Relationship(
        tags=tuple(row.tags),
        notes=row.notes,
        preferences=row.preferences,
        explicit=_statement(row.explicit_permission, row.explicit_permission_at, row.explicit_permission_by),
        version=row.relationship_version,
    )
    imported = _statement(row.import_permission, row.import_permission_at, row.import_permission_by)
    return Locked(relationship, imported)


async def save(conn: AsyncConnection, change: ContactChange, locked: Locked, after: Relationship) -> None:
    """Write ``after`` (the fold of ``change`` into ``locked``) and the email permission that now applies."""
    permission = effective(locked.imported, after.explicit)
    explicit = after.explicit
    await conn.execute(
        text(
            "UPDATE organizer_contacts SET tags = :tags, notes = :notes, preferences = CAST(:preferences AS jsonb), "
            "relationship_version = :version, explicit_permission = :explicit, "
            "explicit_permission_at = :explicit_at, explicit_permission_by = :explicit_by, "
            "email_permission = :status, permission_source = :source, permission_changed_at = :changed_at, "
            "permission_changed_by = :changed_by "
            "WHERE organizer_id = :organizer_id AND contact_id = :contact_id"
        ),
        {
            "tags": list(after.tags),
            "notes": after.notes,
            "preferences": json.dumps(after.preferences),
            "version": after.version,
            "explicit": explicit.status if explicit else None,
            "explicit_at": explicit.at if explicit else None,
            "explicit_by": explicit.by if explicit else None,
            "status": permission.status,
            "source": permission.source,
            "changed_at": permission.changed_at,
            "changed_by": permission.changed_by,
            "organizer_id": change.organizer_id,
            "contact_id": change.contact_id,
        },
    )


async def record(conn: AsyncConnection, change: ContactChange) -> None:
    """Append ``change`` to the change log (once: a change id already there is left alone)."""
    await conn.execute(
        text(
            "INSERT INTO organizer_contact_changes "
            "(change_id, organizer_id, contact_id, changed_by, changed_at, changes) "
            "VALUES (:change_id, :organizer_id, :contact_id, :changed_by, :changed_at, CAST(:changes AS jsonb)) "
            "ON CONFLICT (change_id) DO NOTHING"
        ),
        {
            "change_id": change.change_id,
            "organizer_id": change.organizer_id,
            "contact_id": change.contact_id,
            "changed_by": change.changed_by,
            "changed_at": change.changed_at,
            "changes": json.dumps(change.patch.as_json()),
        },
    )


async def apply_change(conn: AsyncConnection, change: ContactChange) -> Relationship | None:
    """Fold ``change`` into its relationship row (without recording it); None when the row does not exist."""
    locked = await lock(conn, organizer_id=change.organizer_id, contact_id=change.contact_id)
    if locked is None:
        return None
    after = apply(locked.relationship, change)
    await save(conn, change, locked, after)
    return after


async def load_changes(conn: AsyncConnection) -> list[ContactChange | tuple[str, ValidationError]]:
    """The change log in the order it was written; a stored change that no longer validates comes back as
    ``(change_id, error)`` so a replay can report it and go on."""
    result = await conn.execute(
        text(
            "SELECT change_id, organizer_id, contact_id, changed_by, changed_at, changes "
            "FROM organizer_contact_changes ORDER BY sequence"
        )
    )
    changes: list[ContactChange | tuple[str, ValidationError]] = []
    for row in result:
        try:
            patch = RelationshipPatch.model_validate(row.changes)
        except ValidationError as error:
            changes.append((row.change_id, error))
            continue
        changes.append(
            ContactChange(
                change_id=row.change_id,
                organizer_id=row.organizer_id,
                contact_id=row.contact_id,
                changed_by=row.changed_by,
                changed_at=row.changed_at,
                patch=patch,
            )
        )
    return changes


@dataclass(frozen=True)
class Replayed:
    applied: int = 0
    without_relationship: int = 0
    invalid: int = 0


async def replay_changes(
    target: AsyncConnection, changes: Iterable[ContactChange | tuple[str, ValidationError]]
) -> Replayed:
    """Fold ``changes`` (``load_changes`` of the source) into ``target``'s relationships, in order. Run it
    after the contact log has been replayed into ``target`` and before anything else changes them. A change
    that no longer validates, or whose relationship does not exist, is logged and skipped."""
    applied = without_relationship = invalid = 0
    for change in changes:
        if isinstance(change, tuple):
            change_id, error = change
            log.error("replay.change_invalid", change_id=change_id, error=str(error))
            invalid += 1
            continue
        if await apply_change(target, change) is None:
            log.warning(
                "replay.change_without_relationship",
                change_id=change.change_id, organizer_id=change.organizer_id, contact_id=change.contact_id,
            )
            without_relationship += 1
            continue
        applied += 1
    return Replayed(applied=applied, without_relationship=without_relationship, invalid=invalid)


async def copy_change_log(source: AsyncConnection, target: AsyncConnection) -> int:
    """Copy the change log as stored, in order (a rebuild into a fresh schema keeps the log: it is the source
    of truth for relationships, not a read model). Change ids already in ``target`` are left alone."""
    result = await source.execute(
        text(
            "SELECT change_id, organizer_id, contact_id, changed_by, changed_at, CAST(changes AS text) AS changes "
            "FROM organizer_contact_changes ORDER BY sequence"
        )
    )
    rows = [row._asdict() for row in result]
    if rows:
        await target.execute(
            text(
                "INSERT INTO organizer_contact_changes "
                "(change_id, organizer_id, contact_id, changed_by, changed_at, changes) "
                "VALUES (:change_id, :organizer_id, :contact_id, :changed_by, :changed_at, "
                "CAST(:changes AS jsonb)) ON CONFLICT (change_id) DO NOTHING"
            ),
            rows,
        )
    return len(rows)
