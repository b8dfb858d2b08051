"""profiles: whose value is whose. The canonical profile keeps only what the person stated (``stated``: values,
their sources and the person's first spelling of the email, the same shape as an organizer's layer); each
organizer's row gets its layer (``imported``: the values its own imports brought) and its materialized view (the
person's value per field, else its own), indexed per organizer for the contacts API.

Existing data is converted from what the rows say: every stored value names its source (``field_sources``), so a
value an interaction set stays canonical, and a value an organizer's import set goes to that organizer's layer
(and leaves the canonical profile). A value one organizer imported that another's import later replaced was not
kept by the old model; ``contacts rebuild profiles --swap`` replays the contact log and restores it (and counts
each view's versions exactly: here every view starts at 1). Profile versions are kept, so the snapshots
published after this migration stay above the ones published before it.

Revision ID: profiles_0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "profiles_0003"
down_revision = "profiles_0002"

FIELDS = ("first_name", "last_name", "company", "title", "phone", "bio", "user_account_id")
SEARCHED = ("display_name", "first_name", "last_name")
PERSON_STATED = "('interaction', 'attendee')"
EMPTY_LAYER = '{"values": {}, "sources": {}}'


def _display_name(first: str, last: str, email: str) -> str:
    """SQL of the display-name rule (``domain.display_name``): the full name, else the email's local part."""
    full = f"concat_ws(' ', nullif(btrim({first}), ''), nullif(btrim({last}), ''))"
    local = f"nullif(btrim(regexp_replace(btrim({email}), '@[^@]*$', '')), '')"
    return f"coalesce(nullif({full}, ''), {local}, nullif(btrim({email}), ''))"


def upgrade() -> None:
    oc = "organizer_contacts"
    for name in ("email", "email_original", "first_name", "last_name", "company", "title", "phone", "display_name",
                 "bio"):
        op.add_column(oc, sa.Column(name, sa.Text))
    op.add_column(oc, sa.Column("social_links", JSONB, nullable=False, server_default="{}"))
    op.add_column(oc, sa.Column("user_account_id", sa.Text))
    op.add_column(oc, sa.Column(
        "field_sources", JSONB, nullable=False, server_default="{}",
        comment="value name -> its source as shown: the organizer's own import in full, the person's kind+time"))
    op.add_column(oc, sa.Column("view_version", sa.Integer, nullable=False, server_default="0",
                                comment="changes to the view"))
    op.add_column(oc, sa.Column("created_at", sa.DateTime(timezone=True),
                                comment="when the view appeared (the organizer's first event)"))
    op.add_column(oc, sa.Column("updated_at", sa.DateTime(timezone=True), comment="the view's last change"))
    op.add_column(oc, sa.Column("imported", JSONB, nullable=False, server_default=EMPTY_LAYER,
                                comment="the organizer's layer: {values, sources, email_original} its imports stated"))
    op.add_column("contact_profiles", sa.Column(
        "stated", JSONB, nullable=False, server_default=EMPTY_LAYER,
        comment="what the person stated: {values, sources, email_original}"))

    # every stored value with its stored source, by value name ('email' is the spelling)
    values = ", ".join(f"('{name}', p.{name})" for name in FIELDS)
    op.execute(f"""
        CREATE TEMP TABLE named ON COMMIT DROP AS
        SELECT p.contact_id, n.name, n.value, p.field_sources -> n.name AS source
        FROM contact_profiles p
        CROSS JOIN LATERAL (
            VALUES ('email', p.email_original), {values}
            UNION ALL SELECT 'social_links.' || key, value FROM jsonb_each_text(p.social_links)
        ) AS n(name, value)
        WHERE n.value IS NOT NULL AND p.field_sources ? n.name
    """)
    layer = """jsonb_strip_nulls(jsonb_build_object(
        'values', coalesce(jsonb_object_agg(name, value) FILTER (WHERE name <> 'email'), '{}'),
        'sources', jsonb_object_agg(name, source),
        'email_original', max(value) FILTER (WHERE name = 'email')))"""
    # each organizer's layer: the values whose stored source is its own import
    op.execute(f"""
        UPDATE organizer_contacts o SET imported = l.layer
        FROM (SELECT contact_id, source ->> 'organizer_id' AS organizer_id, {layer} AS layer
              FROM named WHERE source ->> 'kind' = 'import' GROUP BY 1, 2) l
        WHERE l.contact_id = o.contact_id AND l.organizer_id = o.organizer_id
    """)
    # the canonical profile: only what the person stated
    op.execute(f"""
        UPDATE contact_profiles p SET stated = l.layer
        FROM (SELECT contact_id, {layer} AS layer FROM named WHERE source ->> 'kind' IN {PERSON_STATED} GROUP BY 1) l
        WHERE l.contact_id = p.contact_id
    """)

    # each view: the person's value, else the organizer's own; the person's sources by kind and time only
    shown = """(o.imported -> 'values') || (p.stated -> 'values')"""
    op.execute(f"""
        UPDATE organizer_contacts o SET
            {", ".join(f"{name} = ({shown}) ->> '{name}'" for name in FIELDS)},
            email = p.email,
            email_original = coalesce(p.stated ->> 'email_original', o.imported ->> 'email_original', p.email),
            social_links = coalesce((SELECT jsonb_object_agg(substr(key, 14), value) FROM jsonb_each({shown})
                                     WHERE key LIKE 'social\\_links.%'), '{{}}'),
            field_sources = (o.imported -> 'sources') || coalesce((
                SELECT jsonb_object_agg(key, jsonb_build_object('kind', value -> 'kind', 'at', value -> 'at'))
                FROM jsonb_each(p.stated -> 'sources')), '{{}}'),
            view_version = 1,
            created_at = o.first_seen_at
        FROM contact_profiles p WHERE p.contact_id = o.contact_id AND p.email IS NOT NULL
    """)
    op.execute(f"""
        UPDATE organizer_contacts o SET
            display_name = {_display_name('first_name', 'last_name', 'email')},
            updated_at = greatest(o.first_seen_at, (
                SELECT max(CAST(value ->> 'at' AS timestamptz)) FROM jsonb_each(o.field_sources)))
        WHERE o.email IS NOT NULL
    """)

    for column in ("email_original", *FIELDS, "display_name", "display_name_version", "social_links",
                   "field_sources"):
        op.drop_column("contact_profiles", column)
    op.execute("DROP INDEX IF EXISTS ix_contact_profiles_company")
    op.execute("DROP INDEX IF EXISTS ix_contact_profiles_email")
    for name in SEARCHED:
        op.execute(f"DROP INDEX IF EXISTS ix_contact_profiles_{name}_prefix")
    op.create_index("ix_organizer_contacts_contact", oc, ["contact_id"])
    op.execute(f"CREATE INDEX ix_organizer_contacts_email ON {oc} (organizer_id, email text_pattern_ops)")
    op.execute(f"CREATE INDEX ix_organizer_contacts_company ON {oc} (organizer_id, lower(company))")
    for name in SEARCHED:
        op.execute(f"CREATE INDEX ix_organizer_contacts_{name}_prefix ON {oc} (organizer_id, lower({name}) "
                   "text_pattern_ops)")
    op.create_table_comment(
        "contact_profiles", "The canonical profiles: only what each person stated themself (published downstream)."
    )


def downgrade() -> None:
    """Back to one shared profile per contact: the canonical values come back as columns, the organizers'
    layers and views go (rebuild from the log with the older version to get the merged values back)."""
    oc = "organizer_contacts"
    op.drop_table_comment("contact_profiles")
    for name in ("contact", "email", "company", *(f"{n}_prefix" for n in SEARCHED)):
        op.execute(f"DROP INDEX ix_organizer_contacts_{name}")
    for name in ("email", "email_original", "first_name", "last_name", "company", "title", "phone", "display_name",
                 "bio", "social_links", "user_account_id", "field_sources", "view_version", "created_at",
                 "updated_at", "imported"):
        op.drop_column(oc, name)
    cp = "contact_profiles"
    for name in ("email_original", *FIELDS, "display_name"):
        op.add_column(cp, sa.Column(name, sa.Text))
    op.add_column(cp, sa.Column("display_name_version", sa.Integer, nullable=False, server_default="0"))
    op.add_column(cp, sa.Column("social_links", JSONB, nullable=False, server_default="{}"))
    op.add_column(cp, sa.Column("field_sources", JSONB, nullable=False, server_default="{}"))
    op.execute(f"""
        UPDATE {cp} SET {", ".join(f"{name} = stated -> 'values' ->> '{name}'" for name in FIELDS)},
            email_original = coalesce(stated ->> 'email_original', email),
            display_name_version = contact_version,
            social_links = coalesce((SELECT jsonb_object_agg(substr(key, 14), value) FROM jsonb_each(stated -> 'values')
                                     WHERE key LIKE 'social\\_links.%'), '{{}}'),
            field_sources = stated -> 'sources'
    """)
    op.execute(f"UPDATE {cp} SET display_name = {_display_name('first_name', 'last_name', 'email')} "
               "WHERE email IS NOT NULL")
    op.drop_column(cp, "stated")
    op.execute(f"CREATE INDEX ix_contact_profiles_company ON {cp} (lower(company))")
    op.execute(f"CREATE INDEX ix_contact_profiles_email ON {cp} (email text_pattern_ops)")
    for name in SEARCHED:
        op.execute(f"CREATE INDEX ix_contact_profiles_{name}_prefix ON {cp} (lower({name}) text_pattern_ops)")
