"""Proposing which column holds which field, from the header alone (pure): exact field names, known aliases,
then a cautious fuzzy match; one column per field, the best-scoring column wins (ties: the leftmost)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from services.ingest.domain import TARGETS, ColumnMap, Target
from services.ingest.mapping import hubspot

Reason = Literal["exact_name", "known_alias", "hubspot_profile", "fuzzy_match"]

EXACT = 1.0
ALIAS = 0.95
FUZZY_HEAD_NOUN = 0.75
FUZZY_SPELLING = 0.6
"""Confidences: an exact name is certain (a profile says its own); a fuzzy match is a guess to confirm."""

SPELLING_CUTOFF = 0.85
"""How close (difflib ratio) a header must be to an alias to count as a misspelling of it."""


@dataclass(frozen=True)
class ColumnProposal:
    """One column as the mapper sees it: the field it proposes (None = skip), why, and how sure it is."""

    index: int
    header: str
    field: Target | None
    reason: Reason | None
    confidence: float


def tokens(name: str) -> list[str]:
    """Lowercase words of a header: punctuation, underscores and whitespace separate; "e-mail" is one word."""
    return re.findall(r"[a-z0-9]+", name.lower().replace("e-mail", "email").replace("e mail", "email"))


def normalized(name: str) -> str:
    return " ".join(tokens(name))


ALIASES: dict[Target, tuple[str, ...]] = {
    "email": (
        "email", "email address", "emailaddress", "mail", "mail address", "primary email", "email addr",
        "courriel", "correo electronico", "email adresse", "emailadresse", "epost",
    ),
    "first_name": (
        "first name", "firstname", "given name", "givenname", "forename", "fname", "first", "vorname", "prenom",
        "nombre",
    ),
    "last_name": (
        "last name", "lastname", "surname", "family name", "familyname", "lname", "last", "nachname",
        "nom", "apellido", "apellidos",
    ),
    "company": (
        "company", "company name", "companyname", "organisation", "organization", "organisation name",
        "organization name", "employer", "business name", "account name", "firm", "firma", "unternehmen",
        "entreprise", "empresa",
    ),
    "title": (
        "title", "job title", "jobtitle", "position", "job position", "role", "job role", "job function",
        "occupation", "designation", "funktion", "poste", "cargo",
    ),
    "phone": (
        "phone", "phone number", "phonenumber", "mobile", "mobile phone", "mobile phone number", "mobile number",
        "telephone", "telephone number", "tel", "cell", "cell phone", "cellphone", "phone no", "contact number",
        "telefon", "telefonnummer", "handy", "telefono",
    ),
    "external_id": ("external id", "record id", "record id contact", "contact id", "crm id"),
}
"""Known names per field, compared after ``normalized``."""

_ALIAS_INDEX: dict[str, Target] = {alias: field for field, names in ALIASES.items() for alias in names}
_COMPACT_ALIASES: dict[str, Target] = {alias.replace(" ", ""): field for alias, field in _ALIAS_INDEX.items()}

HEAD_NOUNS: dict[Target, frozenset[str]] = {
    "email": frozenset({"email", "mail", "emails"}),
    "first_name": frozenset({"firstname", "forename", "given"}),
    "last_name": frozenset({"lastname", "surname", "family"}),
    "company": frozenset({"company", "organisation", "organization", "employer", "firm"}),
    "title": frozenset({"title", "position", "role", "jobtitle"}),
    "phone": frozenset({"phone", "mobile", "telephone", "cell", "cellphone", "tel"}),
}
"""A header like "Work email" or "Mobile phone number" names its field by the last word (the head noun) once
the trailing words in ``TRAILING_WORDS`` are dropped; "Email Domain" ends in "domain" and is not an email."""

TRAILING_WORDS: dict[Target, frozenset[str]] = {
    "email": frozenset({"address", "addresses", "addr", "adresse"}),
    "first_name": frozenset({"name", "names"}),
    "last_name": frozenset({"name", "names"}),
    "company": frozenset({"name"}),
    "title": frozenset(),
    "phone": frozenset({"number", "no", "nr", "numbers"}),
}

NEGATIVE_WORDS = frozenset({
    "domain", "domains", "size", "type", "count", "opt", "optin", "optout", "opted", "consent", "date", "time",
    "status", "employees", "revenue", "industry", "verified", "verification", "bounce", "bounced", "bounces",
    "opened", "open", "buying", "clicked", "click", "sent", "delivered", "replied", "reply", "unsubscribed",
    "unsubscribe",
    "subscription", "subscriptions", "marketing", "preference", "preferences", "quarantined", "owner", "score",
    "created", "modified", "updated", "url", "website", "timezone", "stage", "code", "sequence", "campaign",
    "confirmation", "format", "valid", "invalid", "hard", "soft", "extension", "ext", "country", "prefix",
    "fax", "source", "recent", "first", "last", "average", "total", "hashed", "hash", "spam", "reason",
})
"""Words that make a header about something else than the field itself (a domain, a count, a date...):
such a header is never a fuzzy match, whatever field word it also holds."""


def _stripped(words: list[str], field: Target) -> list[str]:
    trailing = TRAILING_WORDS.get(field, frozenset())
    end = len(words)
    while end > 1 and words[end - 1] in trailing:
        end -= 1
    return words[:end]


def _head_noun_match(words: list[str]) -> Target | None:
    """The field whose head noun ends the header ("Work email", "Contact first name", "Mobile phone number"),
    unless a word before it makes the header about something else ("Unsubscribed from all email")."""
    for field, heads in HEAD_NOUNS.items():
        body = _stripped(words, field)
        if body[-1] in heads:
            modifiers = body[:-1]
        elif len(body) >= 2 and body[-2] + body[-1] in heads:
            modifiers = body[:-2]
        elif len(words) >= 2 and words[-2] + words[-1] in heads:
            modifiers = words[:-2]
        else:
            continue
        return None if set(modifiers) & NEGATIVE_WORDS else field
    return None


def _misspelling(words: list[str]) -> tuple[Target, float] | None:
    """The field whose alias the header is a near-miss of ("Emial adress"), scaled down to a low confidence."""
    if set(words) & NEGATIVE_WORDS:
        return None
    compact = "".join(words)
    if len(compact) < 5:
        return None
    best: tuple[Target, float] | None = None
    for alias, field in _COMPACT_ALIASES.items():
        if len(alias) < 5:
            continue
        ratio = difflib.SequenceMatcher(None, compact, alias).ratio()
        if ratio >= SPELLING_CUTOFF and (best is None or ratio * FUZZY_SPELLING > best[1]):
            best = field, round(ratio * FUZZY_SPELLING, 2)
    return best


Profile = Mapping[str, tuple[Target, float]]
"""A source system's own labels (lowercased, trimmed) -> field and confidence, e.g. ``hubspot.PROFILE``."""


def score(header: str, profile: Profile | None = None) -> tuple[Target, Reason, float] | None:
    """The field a single header most likely holds, why, and how sure (before columns compete)."""
    if profile is not None and (entry := profile.get(header.strip().lower())) is not None:
        return entry[0], "hubspot_profile", entry[1]
    words = tokens(header)
    name = "_".join(re.findall(r"[a-z0-9]+", header.lower()))
    if name in TARGETS:
        return name, "exact_name", EXACT  # type: ignore[return-value]
    alias = _ALIAS_INDEX.get(" ".join(words)) or _COMPACT_ALIASES.get("".join(words))
    if alias is not None:
        return alias, "known_alias", ALIAS
    if not words:
        return None
    head_noun = _head_noun_match(words)
    if head_noun is not None:
        return head_noun, "fuzzy_match", FUZZY_HEAD_NOUN
    misspelled = _misspelling(words)
    if misspelled is None:
        return None
    return misspelled[0], "fuzzy_match", misspelled[1]


def propose(header: Sequence[str], *, profile: Profile | None = None) -> list[ColumnProposal]:
    """Every column with the field proposed for it. Columns compete for fields: the highest confidence wins,
    a tie goes to the leftmost column, and a column that loses is skipped (``field`` None)."""
    scored = [(index, score(name, profile)) for index, name in enumerate(header)]
    candidates = sorted(
        ((index, found) for index, found in scored if found is not None), key=lambda item: (-item[1][2], item[0])
    )
    taken: dict[Target, int] = {}
    chosen: dict[int, tuple[Target, Reason, float]] = {}
    for index, (field, reason, confidence) in candidates:
        if field not in taken:
            taken[field] = index
            chosen[index] = (field, reason, confidence)
    proposals = []
    for index, name in enumerate(header):
        if index in chosen:
            field, reason, confidence = chosen[index]
            proposals.append(ColumnProposal(index, name, field, reason, confidence))
        else:
            proposals.append(ColumnProposal(index, name, None, None, 0.0))
    return proposals


@dataclass(frozen=True)
class FileProposal:
    """What the mapper proposes for an uploaded file, and whether it took it for a HubSpot export."""

    hubspot: bool
    columns: list[ColumnProposal]


def propose_for_file(filename: str | None, header: Sequence[str]) -> FileProposal:
    """HubSpot exports are mapped with HubSpot's profile first; every file with the general rules."""
    is_hubspot = hubspot.is_export(filename, header)
    return FileProposal(is_hubspot, propose(header, profile=hubspot.PROFILE if is_hubspot else None))


def column_map(proposals: Sequence[ColumnProposal]) -> ColumnMap:
    """The mapping the proposals amount to (it may lack an email column: see ``domain.no_email_column``)."""
    positions = {p.field: p.index for p in proposals if p.field is not None}
    return ColumnMap(positions=positions, width=len(proposals))


class MappingRefused(ValueError):
    """A mapping a person asked for that cannot be used; the message says what to change."""


def confirmed_map(choices: Sequence[tuple[int, str | None]], *, header: Sequence[str]) -> ColumnMap:
    """The mapping from a person's choices (column index -> field, None = skip; unlisted columns are skipped):
    every index must be a column, every field one of ``TARGETS`` and used once, and ``email`` mapped."""
    positions: dict[Target, int] = {}
    for index, field in choices:
        if not 0 <= index < len(header):
            raise MappingRefused(f"there is no column {index}: the file has columns 0 to {len(header) - 1}")
        if field is None:
            continue
        if field not in TARGETS:
            raise MappingRefused(f"unknown field {field[:50]!r} for column {index}: use one of {', '.join(TARGETS)}")
        target: Target = field  # type: ignore[assignment]
        if target in positions:
            first = positions[target]
            raise MappingRefused(
                f"the field {target!r} is mapped twice: column {first} ({header[first][:100]!r}) and column {index} "
                f"({header[index][:100]!r}); map it to one column only"
            )
        positions[target] = index
    if "email" not in positions:
        raise MappingRefused("no column is mapped to 'email': map the column holding the email addresses")
    return ColumnMap(positions=positions, width=len(header))
