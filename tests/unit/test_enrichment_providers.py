"""The offline providers: a company from a corporate domain (never from free-mail or disposable ones), names from
``first.last@`` when the person has none, phones in E.164; each over a batch of contacts at once; and the circuit
breaker of the external API's provider."""

from __future__ import annotations

import pytest

from services.enrichment.domain import Candidate, Person
from services.enrichment.external_api import CircuitBreaker
from services.enrichment.providers import (
    EmailDomainCompany,
    EmailLocalPartName,
    PhoneE164,
    ProviderUnavailable,
)


def person(email: str | None, contact_id: str = "c1", **fields: str) -> Person:
    return Person(contact_id=contact_id, version=1, email=email, fields=fields)


@pytest.fixture(scope="module")
def companies() -> EmailDomainCompany:
    return EmailDomainCompany()


@pytest.mark.parametrize(
    ("email", "company"),
    [
        ("ada.lovelace@analytical.example", "Analytical"),
        ("person123@example.com", "Example"),
        ("grace@mail.acme-corp.co.uk", "Acme Corp"),
        ("x@sub.dept.bigco.com.au", "Bigco"),
        ("ana@xn--mnchen-3ya.de", "München"),
        (" Ada@Analytical.Example ", "Analytical"),
    ],
)
def test_a_corporate_domain_names_the_company(companies: EmailDomainCompany, email: str, company: str) -> None:
    assert companies.company_of(email.strip().lower().rpartition("@")[2]) == company


@pytest.mark.parametrize(
    "email",
    ["bob@gmail.com", "bob@outlook.com", "x@yahoo.co.uk", "temp@mailinator.com", "a@guerrillamail.com",
     "a@123.com", "root@localhost", "a@co.uk"],
)
def test_free_mail_disposable_and_bare_domains_never_yield_a_company(companies: EmailDomainCompany,
                                                                      email: str) -> None:
    assert companies.company_of(email.rpartition("@")[2]) is None


async def test_the_company_is_suggested_over_a_batch_only_to_people_who_have_none(
    companies: EmailDomainCompany,
) -> None:
    people = [person("ada@analytical.example", "c1"), person("bob@gmail.com", "c2"),
              person("cy@acme.io", "c3", company="Acme Inc"), person(None, "c4")]

    assert await companies.suggest(people) == {"c1": [Candidate("company", "Analytical", 0.5, "email_domain")]}


@pytest.mark.parametrize(
    ("local", "names"),
    [("ada.lovelace", ("Ada", "Lovelace")), ("Grace_Hopper", ("Grace", "Hopper")),
     ("jean-luc", ("Jean", "Luc")), ("ada.lovelace+events", ("Ada", "Lovelace")), ("zoë.brandt", ("Zoë", "Brandt"))],
)
def test_first_dot_last_gives_both_names(local: str, names: tuple[str, str]) -> None:
    assert EmailLocalPartName.names_of(local) == names


@pytest.mark.parametrize("local", ["bob", "person123", "a.lovelace", "ada.b.lovelace", "info.sales", "no-reply",
                                   "ada.lovelace2", ""])
def test_other_local_parts_give_no_name(local: str) -> None:
    assert EmailLocalPartName.names_of(local) is None


async def test_names_are_suggested_only_to_people_without_any_name() -> None:
    people = [person("ada.lovelace@x.org", "c1"), person("grace.hopper@x.org", "c2", last_name="Hopper"),
              person("bob@gmail.com", "c3")]

    assert await EmailLocalPartName().suggest(people) == {
        "c1": [Candidate("first_name", "Ada", 0.6, "email_name"), Candidate("last_name", "Lovelace", 0.6, "email_name")]
    }


async def test_a_valid_phone_is_suggested_in_e164_when_written_otherwise() -> None:
    people = [person("a@x.org", "c1", phone="+44 20 7946 0958"), person("b@x.org", "c2", phone="+442079460958"),
              person("c@x.org", "c3", phone="030 12345678"), person("d@x.org", "c4", phone="not a number"),
              person("e@x.org", "c5")]

    international = await PhoneE164().suggest(people)
    german = await PhoneE164(region="DE").suggest(people)

    assert international == {"c1": [Candidate("phone", "+442079460958", 0.9, "phone_format")]}
    assert german == {**international, "c3": [Candidate("phone", "+493012345678", 0.9, "phone_format")]}


def test_the_breaker_opens_after_repeated_failures_and_lets_one_trial_through_later() -> None:
    now = [100.0]
    breaker = CircuitBreaker(failures_to_open=2, open_seconds=30, clock=lambda: now[0])

    assert breaker.failed() == 0.0 and breaker.state == "closed"
    assert breaker.failed() == 30 and breaker.state == "open"
    with pytest.raises(ProviderUnavailable) as refused:
        breaker.check()
    assert refused.value.retry_after == 30
    now[0] += 30
    breaker.check()  # half-open: a trial call
    assert breaker.state == "half-open"
    assert breaker.failed() == 30 and breaker.state == "open"  # the trial failed: open again at once
    now[0] += 31
    breaker.succeeded()
    assert breaker.state == "closed"
    breaker.check()
