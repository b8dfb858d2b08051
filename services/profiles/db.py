"""profiles' tables (SQLAlchemy Core), in profiles' own schema: the canonical profiles and each organizer's
relationship to them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

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
    Column("bio", Text),
    Column("social_links", JSONB, nullable=False, server_default="{}"),
    Column("user_account_id", Text),
    Column("field_sources", JSONB, nullable=False, server_default="{}",
           comment="field -> where its value came from (kind, organizer, import or interaction, time)"),
)
Index("ix_contact_profiles_company", func.lower(contact_profiles.c.company))
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
    Column("permission_source", Text, comment="import | api; null while unknown"),
    Column("permission_changed_at", DateTime(timezone=True)),
    Column("permission_changed_by", Text, comment="the import id, or the API caller"),
    Column("import_permission", Text, comment="the latest an import stated"),
    Column("import_permission_at", DateTime(timezone=True)),
    Column("import_permission_by", Text),
    Column("explicit_permission", Text, comment="the latest set through the API"),
    Column("explicit_permission_at", DateTime(timezone=True)),
    Column("explicit_permission_by", Text),
    Column("tags", ARRAY(Text), nullable=False, server_default="{}"),
    Column("preferences", JSONB, nullable=False, server_default="{}"),
    Column("notes", Text),
    Column("relationship_version", Integer, nullable=False, server_default="0",
           comment="API changes applied to this relationship"),
    Column("events_attended", Integer, nullable=False, server_default="0"),
    Column("registrations", Integer, nullable=False, server_default="0"),
    Column("tickets_purchased", Integer, nullable=False, server_default="0"),
    Column("orders", Integer, nullable=False, server_default="0"),
    Column("last_active_at", DateTime(timezone=True),
           comment="the latest interaction with one of the organizer's events"),
    PrimaryKeyConstraint("organizer_id", "contact_id"),
    CheckConstraint(
        "email_permission IN ('subscribed', 'unsubscribed', 'unknown')",
        name="ck_organizer_contacts_permission",
    ),
)
Index("ix_organizer_contacts_tags", organizer_contacts.c.tags, postgresql_using="gin")
Index("ix_organizer_contacts_engagement", "organizer_id", "events_attended", "tickets_purchased")
Index("ix_organizer_contacts_last_active", "organizer_id", "last_active_at")

organizer_interactions = Table(
    "organizer_interactions",
    metadata,
    Column("organizer_id", Text, nullable=False),
    Column("contact_id", Text, nullable=False),
    Column("interaction_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("kagibag_event_id", Text),
    Column("order_id", Text),
    Column("ticket_count", Integer),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("organizer_id", "contact_id", "interaction_id"),
)

organizer_contact_changes = Table(
    "organizer_contact_changes",
    metadata,
    Column("sequence", BigInteger, Identity(), primary_key=True),
    Column("change_id", Text, nullable=False, unique=True),
    Column("organizer_id", Text, nullable=False),
    Column("contact_id", Text, nullable=False),
    Column("changed_by", Text, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("changes", JSONB, nullable=False),
    Index("ix_organizer_contact_changes_pair", "organizer_id", "contact_id", "sequence"),
    comment="The event store of API changes to organizer contacts: replayed by the rebuild.",
)

outbox = outbox_table(metadata)
processed_messages = processed_messages_table(metadata)
