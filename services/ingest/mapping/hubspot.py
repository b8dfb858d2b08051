"""HubSpot contact exports (pure): recognising one by its file name or header, and the profile that maps
HubSpot's column labels to our fields, including the record id and the two consent columns."""

from __future__ import annotations

import re
from collections.abc import Sequence

from services.ingest.domain import Target

EXPORT_FILENAME = re.compile(r"hubspot-crm-exports-.*\.csv", re.IGNORECASE)
"""What HubSpot names an export download, e.g. ``hubspot-crm-exports-all-contacts-2024-05-02.csv``."""

RECORD_ID_LABELS = frozenset({"record id", "record id - contact"})
TYPICAL_LABELS = frozenset({
    "contact owner", "lifecycle stage", "lead status", "marketing contact status", "create date",
    "last activity date", "unsubscribed from all email", "original source", "associated company",
    "email domain", "number of pageviews", "number of sessions", "last modified date", "hubspot score",
    "became a lead date", "recent conversion date", "first conversion", "original source drill-down 1",
})
"""Labels found in (nearly) every HubSpot contact export; two of them next to a record id make a HubSpot
header."""

PROFILE: dict[str, tuple[Target, float]] = {
    "email": ("email", 0.99),
    "first name": ("first_name", 0.99),
    "last name": ("last_name", 0.99),
    "company name": ("company", 0.99),
    "job title": ("title", 0.99),
    "phone number": ("phone", 0.99),
    "mobile phone number": ("phone", 0.98),
    "record id - contact": ("external_id", 0.99),
    "record id": ("external_id", 0.99),
    "contact id": ("external_id", 0.98),
    "marketing contact status": ("marketing_contact_status", 0.99),
    "unsubscribed from all email": ("unsubscribed_from_all_email", 0.99),
}
"""HubSpot's labels (compared lowercased, trimmed) and how sure each is: "Phone Number" before "Mobile Phone
Number" when both are there. Every other column goes through the general mapper, so a decoy such as
"Email Domain", "Company Domain Name" or "Work email" never takes a field from these."""


def is_export(filename: str | None, header: Sequence[str]) -> bool:
    """A HubSpot export: named like HubSpot's downloads, or a header with a record id and HubSpot's labels."""
    if filename is not None and EXPORT_FILENAME.fullmatch(filename.strip()):
        return True
    labels = {name.strip().lower() for name in header}
    return bool(labels & RECORD_ID_LABELS) and len(labels & TYPICAL_LABELS) >= 2
