"""The topic registry: every topic, its key, the events it carries and the one service that writes it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from shared import events

DAY_MS = 24 * 3600 * 1000
KEPT_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
"""A log that read models are rebuilt from: never expires."""
WORKING = {"retention.ms": str(7 * DAY_MS)}
"""A working topic: what is on it is also held in PostgreSQL by its writer (and published again if lost)."""
DEAD_LETTERS = {"retention.ms": str(30 * DAY_MS)}
COMPACTED = {"cleanup.policy": "compact", "retention.ms": "-1"}
"""The newest record per key is kept forever: a new subscriber bootstraps from it."""


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    events: tuple[type[events.Event], ...]
    partitions: int
    writer: str
    description: str
    config: Mapping[str, str] = field(default_factory=dict)
    """Topic-level configs it is created with (``min.insync.replicas`` comes from the platform settings)."""
    readers: tuple[str, ...] = ()
    """The services whose consumer group reads it (a unit test compares them with the real subscribers)."""
    lane: Literal["interactive", "bulk"] = "interactive"
    """Bulk work has topics and consumer groups of its own, so interactive work never queues behind it."""

    def qualified(self, prefix: str) -> str:
        """The name on the broker: ``prefix`` isolates tests and environments sharing a cluster."""
        return f"{prefix}{self.name}"


IMPORT_ROWS = Topic(
    name="contacts.import-rows.v1",
    key="normalized email, so one partition (and one identity consumer) owns each identity",
    events=(events.ImportRowReceivedV1,),
    partitions=8,
    writer="ingest",
    description="One event per imported row.",
    config=WORKING,
    readers=("identity",),
)
BULK_IMPORT_ROWS = Topic(
    name="contacts.bulk-import-rows.v1",
    key="normalized email, as on contacts.import-rows.v1",
    events=(events.ImportRowReceivedV1,),
    partitions=8,
    writer="ingest",
    description="The bulk lane: one event per row of an import larger than ingest's bulk threshold. identity reads "
    "it with a consumer group of its own, so small imports, interactions and attendees' statements never wait "
    "behind a big import.",
    config=WORKING,
    readers=("identity",),
    lane="bulk",
)
INTERACTIONS = Topic(
    name="contacts.interactions.v1",
    key="normalized email (lowercased, surrounding whitespace stripped), so one identity consumer owns a person",
    events=events.INTERACTION_EVENTS,
    partitions=8,
    writer="platform-teams",
    description="Interactions reported by other Kagibag platform teams: ticket purchases, waitlist "
    "registrations, check-ins, completed attendee profiles, linked user accounts.",
    config=WORKING,
    readers=("identity",),
)
ATTENDEE_STATEMENTS = Topic(
    name="contacts.attendee-statements.v1",
    key="normalized email, like interactions, so one identity consumer owns a person",
    events=(events.AttendeeStatedV1,),
    partitions=8,
    writer="enrichment",
    description="What attendees state about themselves, signed in: accepted or customized enrichment suggestions "
    "and their own profile edits. identity applies them to the canonical profile.",
    config=WORKING,
    readers=("identity",),
)
IMPORT_ROW_OUTCOMES = Topic(
    name="contacts.import-row-outcomes.v1",
    key="import id",
    events=(events.ImportRowsProcessedV1,),
    partitions=4,
    writer="identity",
    description="What identity did with each import row (created, matched or error), one message per "
    "import per batch.",
    config=WORKING,
    readers=("ingest",),
)
CONTACT_EVENTS = Topic(
    name="contacts.contact-events.v1",
    key="contact id",
    events=(events.ContactCreatedV1, events.ContactUpdatedV1, events.ContactMatchedV1, events.InteractionRecordedV1),
    partitions=8,
    writer="identity",
    description="The identity log: every change to a canonical contact, in per-contact version order.",
    config=KEPT_FOREVER,
    readers=("enrichment", "profiles"),
)
ENRICHMENTS = Topic(
    name="contacts.enrichments.v1",
    key="contact id",
    events=(events.EnrichmentSuggestedV1, events.SuggestionDecidedV1, events.DisplayNameResolvedV1),
    partitions=8,
    writer="enrichment",
    description="Enrichment suggestions (one event per contact per provider run) and the attendee's decisions on "
    "them. Display names were published here until profiles resolved them itself (older records only).",
    config=KEPT_FOREVER,
    readers=(),
)
PROFILE_UPDATES = Topic(
    name="contacts.profile-updates.v1",
    key="contact id",
    events=(events.ContactProfileUpdatedV1,),
    partitions=8,
    writer="profiles",
    description="Full snapshots of canonical profiles for downstream subscribers, versioned per contact.",
    config=COMPACTED,
)

ORGANIZER_CONTACTS = Topic(
    name="contacts.organizer-contacts.v1",
    key='"organizer_id:contact_id", so every state of one organizer\'s contact is on one partition, in order',
    events=(events.OrganizerContactChangedV1,),
    partitions=8,
    writer="profiles",
    description="Each organizer contact's current state for mailers, invitations and campaigns (email, email "
    "permission with source and time, tags, preferences; never notes), whenever it changes. Private per organizer: "
    "a subscriber acts for an organizer only on that organizer's messages.",
    config=COMPACTED,
)


def dead_letter_topic(service: str) -> Topic:
    """Each consuming service writes its own dead-letter topic: original bytes, headers and the error."""
    return Topic(
        name=f"contacts.{service}.dead-letters.v1",
        key="original key",
        events=(),
        partitions=1,
        writer=service,
        description=f"Messages {service} could not process, with the original bytes, headers and the error.",
        config=DEAD_LETTERS,
    )


CONSUMING_SERVICES = ("ingest", "identity", "enrichment", "profiles")
ALL_TOPICS: tuple[Topic, ...] = (
    IMPORT_ROWS,
    BULK_IMPORT_ROWS,
    INTERACTIONS,
    ATTENDEE_STATEMENTS,
    IMPORT_ROW_OUTCOMES,
    CONTACT_EVENTS,
    ENRICHMENTS,
    PROFILE_UPDATES,
    ORGANIZER_CONTACTS,
    *(dead_letter_topic(service) for service in CONSUMING_SERVICES),
)


def subscriptions(service: str) -> tuple[Topic, ...]:
    """The topics ``service``'s consumer groups read."""
    return tuple(topic for topic in ALL_TOPICS if service in topic.readers)


def lane_group(group: str, topic: Topic) -> str:
    """The consumer group that reads ``topic`` for a service whose configured group is ``group``: the group
    itself for the interactive lane, ``<group>.bulk`` for the bulk lane."""
    return group if topic.lane == "interactive" else f"{group}.bulk"
