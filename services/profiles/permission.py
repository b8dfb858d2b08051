"""An organizer's email permission for a contact, from two kinds of statements: what imports said (consent columns)
and what the organizer set explicitly through the API. Pure, and independent of the order statements arrive in,
so replaying the logs in any interleaving rebuilds the same permission.

Rules:
- Of the organizer's explicit statements, the latest wins (by time, then by who made it and what it says, so
  ties are broken the same way always): the organizer may re-subscribe someone it unsubscribed.
- Of what imports stated, an unsubscribe stands against any later import's other statement (the person opted out;
  an older list saying "subscribed" must not opt them back in); otherwise the latest wins.
- An explicit unsubscribe is never overwritten by an import, however much later the import is.
- Otherwise the later of the two kinds wins; with neither, the permission is ``unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.events import EmailPermission

PermissionSource = Literal["import", "api"]


@dataclass(frozen=True)
class Statement:
    """``status`` stated at ``at`` by ``by`` (an import id, or the API caller)."""

    status: EmailPermission
    at: datetime
    by: str

    def order(self) -> tuple[datetime, str, str]:
        return (self.at, self.by, self.status)


@dataclass(frozen=True)
class Permission:
    status: EmailPermission
    source: PermissionSource | None = None
    changed_at: datetime | None = None
    changed_by: str | None = None


UNKNOWN = Permission(status="unknown")


def latest(current: Statement | None, incoming: Statement | None) -> Statement | None:
    """The statement that stands among two of the same kind."""
    if current is None:
        return incoming
    if incoming is None:
        return current
    return incoming if incoming.order() > current.order() else current


def latest_imported(current: Statement | None, incoming: Statement | None) -> Statement | None:
    """The import statement that stands: unsubscribes first, then the latest. A maximum over one total order,
    so it does not depend on the order imports are applied in either."""
    if current is None:
        return incoming
    if incoming is None:
        return current

    def rank(statement: Statement) -> tuple[bool, datetime, str, str]:
        return (statement.status == "unsubscribed", *statement.order())

    return incoming if rank(incoming) > rank(current) else current


def effective(imported: Statement | None, explicit: Statement | None) -> Permission:
    """The permission that applies, given the latest import statement and the latest explicit one."""
    if explicit is not None and (
        explicit.status == "unsubscribed" or imported is None or explicit.order() >= imported.order()
    ):
        return Permission(explicit.status, "api", explicit.at, explicit.by)
    if imported is not None:
        return Permission(imported.status, "import", imported.at, imported.by)
    return UNKNOWN
