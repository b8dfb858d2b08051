"""An organizer's private relationship with a contact (tags, notes, communication preferences, explicit email
permission) and the changes made to it through the API, free of I/O.

A PATCH is validated into a ``RelationshipPatch`` (its normalized JSON is what the change log stores), then
folded into the relationship with ``apply``: the PATCH and the rebuild use the same fold, so replaying the
change log reproduces the relationship. ``apply`` never fails; the limits that depend on the current state
(how many tags a relationship may have) are checked by ``problems`` before a change is accepted.

Rules:
- A tag is trimmed, its inner whitespace collapsed to one space, and lowercased: tags are case-insensitive
  labels, stored and returned in that form (so ``VIP`` and `` vip `` are one tag). At most ``MAX_TAG_LENGTH``
  characters; at most ``MAX_TAGS`` per relationship.
- ``tags.set`` replaces the tags, then ``remove`` and then ``add`` apply; a tag both added and removed is an
  error. Tags keep the order they were first added in.
- ``notes``: a string replaces the notes, a blank string or null clears them.
- ``preferences`` are merged: a field given replaces the stored one (``channels`` per channel), a field given
  as null removes it, a field not given is kept.
- ``email_permission`` is an explicit statement by the organizer (see ``permission.py``). ``unknown`` means
  "we do not know any more": it replaces the organizer's earlier explicit statement (also an unsubscribe),
  and a later import's consent column decides again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from services.profiles.permission import Statement, latest
from shared.events import EmailPermission

MAX_TAG_LENGTH = 50
MAX_TAGS = 100
MAX_NOTES_LENGTH = 10_000
MAX_TOPICS = 20

Channel = Literal["email", "sms"]
Frequency = Literal["immediately", "daily", "weekly", "monthly"]


def normalize_label(value: str) -> str:
    """A tag or topic in its stored form: trimmed, inner whitespace collapsed, lowercased."""
    label = " ".join(value.split()).lower()
    if not label:
        raise ValueError("must not be blank")
    if len(label) > MAX_TAG_LENGTH:
        raise ValueError(f"must be at most {MAX_TAG_LENGTH} characters")
    return label


def _unique(labels: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(labels))


Label = Annotated[str, Field(max_length=1000), AfterValidator(normalize_label)]
Labels = Annotated[list[Label], AfterValidator(_unique)]


class TagsPatch(BaseModel):
    """``set`` replaces all tags; ``remove`` and ``add`` change them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    set: Annotated[Labels, Field(max_length=MAX_TAGS)] | None = None
    add: Annotated[Labels, Field(max_length=MAX_TAGS)] = Field(default_factory=list)
    remove: Annotated[Labels, Field(max_length=MAX_TAGS)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> TagsPatch:
        if self.set is None and not self.add and not self.remove:
            raise ValueError("give set, add or remove")
        both = sorted(set(self.add) & set(self.remove))
        if both:
            raise ValueError(f"a tag cannot be both added and removed: {', '.join(both)}")
        return self


class PreferencesPatch(BaseModel):
    """Communication preferences, merged into the stored ones: ``channels`` (whether the contact wants email or
    SMS from the organizer), ``frequency``, ``topics`` (labels, normalized like tags) and ``language``
    (a language tag such as ``en`` or ``pt-BR``). null removes a preference."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: dict[Channel, bool | None] | None = None
    frequency: Frequency | None = None
    topics: Annotated[Labels, Field(max_length=MAX_TOPICS)] | None = None
    language: Annotated[str, Field(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> PreferencesPatch:
        if not self.model_fields_set:
            raise ValueError("give at least one preference")
        return self


class Preferences(BaseModel):
    """The stored communication preferences, as the API shows them. Typed loosely on purpose: values stored
    under older rules are still shown, never a failed response."""

    channels: dict[str, bool] = Field(default_factory=dict, description="channel (email, sms) -> wanted")
    frequency: str | None = Field(default=None, description="immediately, daily, weekly or monthly")
    topics: list[str] = Field(default_factory=list)
    language: str | None = None


class RelationshipPatch(BaseModel):
    """The body of ``PATCH /v1/contacts/{id}``: only the fields given change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tags: TagsPatch | None = None
    notes: Annotated[str, Field(max_length=MAX_NOTES_LENGTH)] | None = None
    preferences: PreferencesPatch | None = None
    email_permission: EmailPermission | None = None

    @field_validator("tags", "preferences", "email_permission", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null (only notes can)")
        return value

    @model_validator(mode="after")
    def _something(self) -> RelationshipPatch:
        if not self.model_fields_set:
            raise ValueError("give at least one of tags, notes, preferences, email_permission")
        return self

    def as_json(self) -> dict[str, Any]:
        """The normalized change, as the change log stores it (only what was given)."""
        return self.model_dump(mode="json", exclude_unset=True)


@dataclass(frozen=True)
class Relationship:
    """The API-changed part of an organizer's relationship with a contact. ``explicit`` is the organizer's
    latest explicit permission statement; ``version`` counts the changes applied."""

    tags: tuple[str, ...] = ()
    notes: str | None = None
    preferences: Mapping[str, Any] = field(default_factory=dict)
    explicit: Statement | None = None
    version: int = 0


@dataclass(frozen=True)
class ContactChange:
    """One accepted change: an event of the change log."""

    change_id: str
    organizer_id: str
    contact_id: str
    changed_by: str
    changed_at: datetime
    patch: RelationshipPatch


def _tags(current: tuple[str, ...], patch: TagsPatch) -> tuple[str, ...]:
    tags = list(patch.set) if patch.set is not None else list(current)
    removed = set(patch.remove)
    tags = [tag for tag in tags if tag not in removed]
    return tuple(_unique([*tags, *patch.add]))


def _preferences(current: Mapping[str, Any], patch: PreferencesPatch) -> dict[str, Any]:
    merged = dict(current)
    given = patch.model_dump(mode="json", exclude_unset=True)
    for name, value in given.items():
        if name == "channels" and value is not None:
            channels = {**merged.get("channels", {}), **value}
            value = {channel: wanted for channel, wanted in channels.items() if wanted is not None} or None
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def apply(relationship: Relationship, change: ContactChange) -> Relationship:
    """The relationship after ``change``. Total: never raises, so a replay cannot stop half-way."""
    patch = change.patch
    given = patch.model_fields_set
    after = replace(relationship, version=relationship.version + 1)
    if patch.tags is not None:
        after = replace(after, tags=_tags(after.tags, patch.tags))
    if "notes" in given:
        notes = patch.notes if patch.notes is not None and patch.notes.strip() else None
        after = replace(after, notes=notes)
    if patch.preferences is not None:
        after = replace(after, preferences=_preferences(after.preferences, patch.preferences))
    if patch.email_permission is not None:
        statement = Statement(status=patch.email_permission, at=change.changed_at, by=change.changed_by)
        after = replace(after, explicit=latest(after.explicit, statement))
    return after


@dataclass(frozen=True)
class Problem:
    """A rule a change would break: ``field`` is where in the request body."""

    field: tuple[str, ...]
    message: str


def problems(after: Relationship) -> list[Problem]:
    """The limits a relationship must stay within; checked before a change is accepted."""
    if len(after.tags) > MAX_TAGS:
        return [Problem(("tags",), f"a contact can have at most {MAX_TAGS} tags, this change gives it "
                                   f"{len(after.tags)}")]
    return []
