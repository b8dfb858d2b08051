"""enrichment's tables (SQLAlchemy Core), in enrichment's own schema."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from shared.outbox_batches import outbox_batches_table
from shared.positions import consumer_positions_table

metadata = MetaData()

contacts = Table(
    "contacts",
    metadata,
    Column("contact_id", Text, primary_key=True),
    Column("email", Text, comment="normalized; null only if the contact's creation was never seen"),
    Column("version", Integer, nullable=False, comment="the contact version of the last change applied"),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("company", Text),
    Column("title", Text),
    Column("phone", Text),
    Column("bio", Text),
    Column("social_links", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("sources", JSONB, nullable=False, server_default=text("'{}'::jsonb"),
           comment='field -> {"kind": "interaction"|"attendee", "at": time}: where each person-stated value came from'),
    Column("organizers", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]"),
           comment="organizers with a relationship: an event of theirs is on the contact's log"),
    Column("updated_at", DateTime(timezone=True), comment="when the last change applied occurred (log time)"),
    Column("due_at", DateTime(timezone=True), comment="when the providers should run next; null: nothing to do"),
    Column("due_sources", ARRAY(Text), comment="the providers to run then; null: all of them"),
    Column("due_traceparent", Text,
           comment="W3C trace context of the contact event that made it due: the suggestions of that run carry it"),
    comment="What the person stated about themself (the canonical values of the contact log: sources interaction "
    "and attendee), never an organizer's imported values.",
)
Index("ix_contacts_email", contacts.c.email)
Index("ix_contacts_due", contacts.c.due_at, postgresql_where=contacts.c.due_at.is_not(None))

suggestions = Table(
    "suggestions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("contact_id", Text, nullable=False),
    Column("field", Text, nullable=False),
    Column("current", Text, comment="the person's own value when the suggestion was made"),
    Column("suggested", Text, nullable=False),
    Column("source", Text, nullable=False, comment="the provider"),
    Column("confidence", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False,
           comment="pending | accepted | customized | rejected | withdrawn (replaced, or no longer suggested)"),
    Column("decided_at", DateTime(timezone=True)),
    Column("value", Text, comment="what the person stated: the suggested value accepted, or their own"),
)
Index("ix_suggestions_contact", suggestions.c.contact_id)
Index("ux_suggestions_pending_field", suggestions.c.contact_id, suggestions.c.field, unique=True,
      postgresql_where=suggestions.c.status == "pending")

consumer_positions = consumer_positions_table(metadata)
outbox_batches = outbox_batches_table(metadata)
