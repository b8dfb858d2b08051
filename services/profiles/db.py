"""profiles' tables (SQLAlchemy Core), in profiles' own schema: the canonical profiles and each organizer's
relationship to them."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)

from shared.outbox import outbox_table
from shared.tracking import processed_messages_table

metadata = MetaData()

contact_profiles = Table(
    "contact_profiles",
    metadata,
    Column("contact_id", Text, primary_key=True),
    Column("email", Text, comment="normalized; null until the contact's creation has been applied"),
    Column("email_original", Text),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("company", Text),
    Column("title", Text),
    Column("phone", Text),
    Column("display_name", Text),
    Column("display_name_version", Integer, nullable=False, server_default="0",
           comment="the contact version the display name was resolved at"),
    Column("contact_version", Integer, nullable=False, server_default="0"),
    Column("profile_version", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
)
Index("ix_contact_profiles_email", contact_profiles.c.email, postgresql_ops={"email": "text_pattern_ops"})
Index(
    "ix_contact_profiles_display_name_prefix",
    func.lower(contact_profiles.c.display_name).label("display_name"),
    postgresql_ops={"display_name": "text_pattern_ops"},
)
Index(
    "ix_contact_profiles_first_name_prefix",
    func.lower(contact_profiles.c.first_name).label("first_name"),
    postgresql_ops={"first_name": "text_pattern_ops"},
)
Index(
    "ix_contact_profiles_last_name_prefix",
    func.lower(contact_profiles.c.last_name).label("last_name"),
    postgresql_ops={"last_name": "text_pattern_ops"},
)

organizer_contacts = Table(
    "organizer_contacts",
    metadata,
    Column("organizer_id", Text, nullable=False),
    Column("contact_id", Text, nullable=False),
    Column("email_permission", Text, nullable=False, server_default="unknown"),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("organizer_id", "contact_id"),
    CheckConstraint(
        "email_permission IN ('subscribed', 'unsubscribed', 'unknown')",
        name="ck_organizer_contacts_permission",
    ),
)

outbox = outbox_table(metadata)
processed_messages = processed_messages_table(metadata)
