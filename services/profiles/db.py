"""profiles' tables (SQLAlchemy Core), in profiles' own schema: the canonical profiles, and per organizer and
contact one row with the organizer's materialized view, its layer and its private relationship (everything the
contacts API reads, indexed per organizer)."""

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

from shared.outbox_batches import outbox_batches_table
from shared.positions import consumer_positions_table

metadata = MetaData()

EMPTY_LAYER = '{"values": {}, "sources": {}}'
"""A layer (the person's statements, or an organizer's imports): values and sources by value name (the standard
fields, ``bio``, ``user_account_id``, ``social_links.<network>``; ``email`` among the sources is the spelling's),
and ``email_original``, the first spelling of the email."""

SEARCHED_NAMES = ("display_name", "first_name", "last_name")
"""The names ``q`` finds by prefix (with the email), each behind an index per organizer."""

contact_profiles = Table(
    "contact_profiles",
    metadata,
    Column("contact_id", Text, primary_key=True),
    Column("email", Text, comment="normalized; null until the contact's creation has been applied"),
    Column("stated", JSONB, nullable=False, server_default=EMPTY_LAYER,
           comment="what the person stated: {values, sources, email_original}"),
    Column("contact_version", Integer, nullable=False, server_default="0",
           comment="the last contact event applied, of any source"),
    Column("profile_version", Integer, nullable=False, server_default="0",
           comment="of the published snapshot: max(2 x the changing event's version, previous + 1)"),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), comment="the person's last change, else created_at"),
    comment="The canonical profiles: only what each person stated themself (published downstream).",
)

organizer_contacts = Table(
    "organizer_contacts",
    metadata,
    Column("organizer_id", Text, nullable=False),
    Column("contact_id", Text, nullable=False),
    # the organizer's view: the person's values, else the organizer's own (all the contacts API reads)
    Column("email", Text),
    Column("email_original", Text),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("company", Text),
    Column("title", Text),
    Column("phone", Text),
    Column("display_name", Text),
    Column("bio", Text),
    Column("social_links", JSONB, nullable=False, server_default="{}"),
    Column("user_account_id", Text),
    Column("field_sources", JSONB, nullable=False, server_default="{}",
           comment="value name -> its source as shown: the organizer's own import in full, the person's kind+time"),
    Column("view_version", Integer, nullable=False, server_default="0", comment="changes to the view"),
    Column("created_at", DateTime(timezone=True), comment="when the view appeared (the organizer's first event)"),
    Column("updated_at", DateTime(timezone=True), comment="the view's last change"),
    Column("imported", JSONB, nullable=False, server_default=EMPTY_LAYER,
           comment="the organizer's layer: {values, sources, email_original} its imports stated"),
    # the relationship
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
    Column("attended_events", ARRAY(Text), nullable=False, server_default="{}",
           comment="the organizer's events the contact checked in at, the latest check-in first"),
    Column("registered_events", ARRAY(Text), nullable=False, server_default="{}",
           comment="the organizer's events the contact registered for: ticket, waitlist or check-in"),
    Column("import_ids", ARRAY(Text), nullable=False, server_default="{}",
           comment="the organizer's imports that brought the contact"),
    PrimaryKeyConstraint("organizer_id", "contact_id"),
    CheckConstraint(
        "email_permission IN ('subscribed', 'unsubscribed', 'unknown')",
        name="ck_organizer_contacts_permission",
    ),
)
Index("ix_organizer_contacts_tags", organizer_contacts.c.tags, postgresql_using="gin")
_o = organizer_contacts.c
Index("ix_organizer_contacts_engagement", _o.organizer_id, _o.events_attended, _o.tickets_purchased)
Index("ix_organizer_contacts_last_active", _o.organizer_id, _o.last_active_at)
Index("ix_organizer_contacts_contact", _o.contact_id)
Index("ix_organizer_contacts_permission", _o.organizer_id, _o.email_permission)
for _array in ("attended_events", "registered_events", "import_ids"):
    Index(f"ix_organizer_contacts_{_array}", _o[_array], postgresql_using="gin")
Index(
    "ix_organizer_contacts_email",
    organizer_contacts.c.organizer_id,
    organizer_contacts.c.email,
    postgresql_ops={"email": "text_pattern_ops"},
)
Index("ix_organizer_contacts_company", organizer_contacts.c.organizer_id, func.lower(organizer_contacts.c.company))
for _name in SEARCHED_NAMES:
    Index(
        f"ix_organizer_contacts_{_name}_prefix",
        organizer_contacts.c.organizer_id,
        func.lower(organizer_contacts.c[_name]).label(_name),
        postgresql_ops={_name: "text_pattern_ops"},
    )

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
    Index("ix_organizer_interactions_history", "organizer_id", "contact_id", "occurred_at", "interaction_id"),
)

segments = Table(
    "segments",
    metadata,
    Column("organizer_id", Text, nullable=False),
    Column("segment_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("filter", JSONB, nullable=False, comment="the filter as the organizer gave it (segment_filter grammar)"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("organizer_id", "segment_id"),
    Index("ix_segments_listed", "organizer_id", "created_at", "segment_id"),
    comment="An organizer's saved filters: membership is evaluated on read, so always current.",
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

consumer_positions = consumer_positions_table(metadata)
outbox_batches = outbox_batches_table(metadata)
