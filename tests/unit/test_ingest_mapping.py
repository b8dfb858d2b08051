"""The mapper, given/when/then and property-style: exact names, aliases, fuzzy matches and decoys, one column per
field, HubSpot exports (detection and profile, on a 162-column all-properties export), and confirmed mappings."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.domain import TARGETS, ColumnMap
from services.ingest.mapping import hubspot
from services.ingest.mapping.proposal import (
    ALIASES,
    ColumnProposal,
    MappingRefused,
    column_map,
    confirmed_map,
    propose,
    propose_for_file,
    score,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"
HUBSPOT_EXPORT = FIXTURES / "hubspot-crm-exports-all-contacts-2026-11-23.csv"


def fields(proposals: list[ColumnProposal]) -> dict[str, str]:
    """header -> proposed field, for the columns that get one."""
    return {p.header: p.field for p in proposals if p.field is not None}


# --- single headers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "field"),
    [("Email Address", "email"), ("E-mail", "email"), ("e-mail address", "email"), ("EmailAddress", "email"),
     ("Given name", "first_name"), ("Forename", "first_name"), ("FirstName", "first_name"),
     ("Surname", "last_name"), ("Family name", "last_name"), ("Lastname", "last_name"),
     ("Organisation", "company"), ("Organization", "company"), ("Company name", "company"),
     ("Employer", "company"), ("Job title", "title"), ("Position", "title"), ("Role", "title"),
     ("Mobile", "phone"), ("Phone number", "phone"), ("Telephone", "phone"), ("Cell phone", "phone"),
     ("Record ID", "external_id"), ("Contact ID", "external_id")],
)
def test_known_aliases_are_recognized_whatever_the_case_and_punctuation(header: str, field: str) -> None:
    for variant in (header, header.upper(), f"  {header.lower()} ", header.replace(" ", "_")):
        assert score(variant) == (field, "known_alias", 0.95), variant


@pytest.mark.parametrize("field", TARGETS)
def test_the_fields_own_names_are_exact(field: str) -> None:
    assert score(field) == (field, "exact_name", 1.0)
    assert score(field.replace("_", " ").title()) == (field, "exact_name", 1.0)


@pytest.mark.parametrize(
    ("header", "field"),
    [("Work email", "email"), ("Private e-mail address", "email"), ("Billing Email", "email"),
     ("Contact first name", "first_name"), ("Home phone", "phone"), ("Business mobile number", "phone"),
     ("Current employer", "company"), ("Emai address", "email"), ("Frist name", "first_name")],
)
def test_loose_names_are_fuzzy_matches_with_less_confidence_than_an_alias(header: str, field: str) -> None:
    found = score(header)

    assert found is not None and found[:2] == (field, "fuzzy_match")
    assert 0 < found[2] < 0.95


@pytest.mark.parametrize(
    "header",
    ["Email Domain", "Company domain name", "Company size", "Phone type", "Number of Employees", "Email opt out",
     "Unsubscribed from all emails", "Marketing emails opened", "Last marketing email name", "Email hard bounce",
     "Email Confirmed", "Company Address", "Lead Status", "First Conversion", "Last Activity Date", "Fax Number",
     "Email address quarantine reason", "Phone Number Type", "Mobile opt-in consent", "Company Domain",
     "Buying Role", "Name", "Full name", "Notes", "", "   ", "#"],
)
def test_decoys_and_unrelated_columns_are_not_matched(header: str) -> None:
    assert score(header) is None


# --- columns competing --------------------------------------------------------------------------------------


def test_with_several_email_like_columns_the_email_is_the_one_named_email() -> None:
    header = ["Work email", "Email Domain", "Private e-mail address", "Email", "Company size", "Company domain name"]

    proposals = propose(header)

    assert fields(proposals) == {"Email": "email"}
    assert [p.field for p in proposals] == [None, None, None, "email", None, None]


def test_the_best_score_wins_whatever_the_order() -> None:
    assert fields(propose(["Work email", "Email address"])) == {"Email address": "email"}
    assert fields(propose(["Email address", "Work email"])) == {"Email address": "email"}


def test_a_tie_goes_to_the_leftmost_column() -> None:
    assert fields(propose(["Name", "Mobile", "Telephone"])) == {"Mobile": "phone"}
    assert fields(propose(["Telephone", "Mobile"])) == {"Telephone": "phone"}


def test_a_typical_event_attendee_list_maps_completely() -> None:
    header = ["Given name", "Surname", "E-mail", "Organisation", "Job title", "Mobile", "Dietary needs"]

    proposals = propose(header)

    assert [(p.field, p.reason) for p in proposals] == [
        ("first_name", "known_alias"), ("last_name", "known_alias"), ("email", "known_alias"),
        ("company", "known_alias"), ("title", "known_alias"), ("phone", "known_alias"), (None, None),
    ]
    assert column_map(proposals) == ColumnMap(
        positions={"first_name": 0, "last_name": 1, "email": 2, "company": 3, "title": 4, "phone": 5}, width=7
    )


headers = st.lists(
    st.one_of(
        st.sampled_from([alias for names in ALIASES.values() for alias in names]),
        st.sampled_from(["Email Domain", "Work email", "Company size", "Phone type", "Notes", "Email", "id"]),
        st.text(max_size=15),
    ),
    max_size=25,
)


@given(header=headers)
def test_every_field_goes_to_at_most_one_column_and_every_column_gets_at_most_one_field(header: list[str]) -> None:
    proposals = propose(header)

    assert [p.index for p in proposals] == list(range(len(header)))
    assert [p.header for p in proposals] == header
    chosen = [p.field for p in proposals if p.field is not None]
    assert len(chosen) == len(set(chosen))
    for proposal in proposals:
        assert (proposal.field is None) == (proposal.reason is None) == (proposal.confidence == 0)
        assert 0 <= proposal.confidence <= 1


@given(header=headers)
def test_a_field_goes_to_its_best_column_and_ties_to_the_leftmost(header: list[str]) -> None:
    proposals = propose(header)

    for proposal in proposals:
        if proposal.field is None:
            continue
        rivals = [(i, found) for i, name in enumerate(header) if (found := score(name)) and found[0] == proposal.field]
        best = max(found[2] for _, found in rivals)
        assert proposal.confidence == best
        assert proposal.index == min(i for i, found in rivals if found[2] == best)


@given(
    decoys=st.lists(
        st.sampled_from(["Email Domain", "Work email", "Private e-mail address", "Email opt out", "Billing email",
                         "Company domain name", "Company size", "Phone type", "Member email"]),
        max_size=8,
    ),
    position=st.integers(min_value=0, max_value=8),
)
def test_decoys_anywhere_never_take_the_email_from_the_email_column(decoys: list[str], position: int) -> None:
    header = list(decoys)
    header.insert(min(position, len(header)), "Email")

    proposals = propose(header)

    assert column_map(proposals).positions["email"] == header.index("Email")
    assert "company" not in column_map(proposals).positions


@given(header=headers, shift=st.integers(min_value=0, max_value=24))
def test_proposals_do_not_depend_on_the_order_of_other_columns_for_exact_names(header: list[str], shift: int) -> None:
    if any(score(name) == ("email", "exact_name", 1.0) for name in header):
        return
    rotated = header[shift % (len(header) or 1):] + header[: shift % (len(header) or 1)]
    with_email = ["x", *rotated, "EMAIL"]

    assert column_map(propose(with_email)).positions["email"] == len(with_email) - 1


# --- HubSpot ------------------------------------------------------------------------------------------------


def hubspot_header() -> list[str]:
    with HUBSPOT_EXPORT.open(encoding="utf-8", newline="") as file:
        return next(csv.reader(file))


def test_the_fixture_is_an_all_properties_export_with_decoys() -> None:
    header = hubspot_header()

    assert len(header) >= 150
    assert {"Email Domain", "Company Domain Name", "Number of Employees", "Lead Status",
            "Additional email addresses", "Work email"} <= set(header)


def test_a_hubspot_export_is_recognized_by_its_header_alone() -> None:
    assert hubspot.is_export(None, hubspot_header())
    assert hubspot.is_export("contacts.csv", hubspot_header())
    assert hubspot.is_export(None, ["Record ID - Contact", "Email", "Contact owner", "Lifecycle Stage"])


@pytest.mark.parametrize(
    "filename", ["hubspot-crm-exports-all-contacts-2024-05-02.csv", "HubSpot-CRM-Exports-my-list.CSV"]
)
def test_a_hubspot_export_is_recognized_by_its_file_name(filename: str) -> None:
    assert hubspot.is_export(filename, ["Email", "First Name"])


@pytest.mark.parametrize(
    ("filename", "header"),
    [("contacts.csv", ["Email", "First Name", "Last Name"]),
     ("export.csv", ["Record ID", "Email", "Name"]),
     ("hubspot-notes.csv", ["Email", "Lead Status", "Create Date"]),
     (None, [])],
)
def test_other_files_are_not_hubspot_exports(filename: str | None, header: list[str]) -> None:
    assert not hubspot.is_export(filename, header)


def test_a_hubspot_all_properties_export_is_mapped_by_the_hubspot_profile() -> None:
    proposal = propose_for_file(HUBSPOT_EXPORT.name, hubspot_header())

    assert proposal.hubspot
    assert {p.header: (p.field, p.reason) for p in proposal.columns if p.field} == {
        "Record ID": ("external_id", "hubspot_profile"),
        "First Name": ("first_name", "hubspot_profile"),
        "Last Name": ("last_name", "hubspot_profile"),
        "Email": ("email", "hubspot_profile"),
        "Phone Number": ("phone", "hubspot_profile"),
        "Company Name": ("company", "hubspot_profile"),
        "Job Title": ("title", "hubspot_profile"),
        "Marketing contact status": ("marketing_contact_status", "hubspot_profile"),
        "Unsubscribed from all email": ("unsubscribed_from_all_email", "hubspot_profile"),
    }


def test_hubspot_mobile_phone_is_the_phone_only_without_a_phone_number_column() -> None:
    with_both = propose_for_file("hubspot-crm-exports-x.csv", ["Email", "Mobile Phone Number", "Phone Number"])
    mobile_only = propose_for_file("hubspot-crm-exports-x.csv", ["Email", "Mobile Phone Number"])

    assert fields(with_both.columns) == {"Email": "email", "Phone Number": "phone"}
    assert fields(mobile_only.columns) == {"Email": "email", "Mobile Phone Number": "phone"}


def test_an_export_with_associations_keeps_the_contacts_record_id() -> None:
    header = ["Record ID - Contact", "Email", "Record ID - Company", "Company name", "Contact owner", "Lead Status"]

    proposal = propose_for_file(None, header)

    assert proposal.hubspot
    assert fields(proposal.columns) == {"Record ID - Contact": "external_id", "Email": "email",
                                        "Company name": "company"}


# --- a person's choices -------------------------------------------------------------------------------------


HEADER = ["E-mail", "Vorname", "Work email", "Notes"]


def test_a_confirmed_mapping_takes_the_listed_columns_and_skips_the_rest() -> None:
    columns = confirmed_map([(0, "email"), (1, "first_name"), (2, None)], header=HEADER)

    assert columns == ColumnMap(positions={"email": 0, "first_name": 1}, width=4)


def test_a_confirmed_mapping_needs_an_email_column() -> None:
    with pytest.raises(MappingRefused, match="no column is mapped to 'email'"):
        confirmed_map([(1, "first_name")], header=HEADER)


def test_a_field_mapped_twice_is_refused_naming_the_field_and_both_columns() -> None:
    with pytest.raises(MappingRefused) as refused:
        confirmed_map([(0, "email"), (2, "email")], header=HEADER)

    assert str(refused.value) == (
        "the field 'email' is mapped twice: column 0 ('E-mail') and column 2 ('Work email'); "
        "map it to one column only"
    )


@pytest.mark.parametrize("index", [-1, 4, 99])
def test_a_column_that_does_not_exist_is_refused(index: int) -> None:
    with pytest.raises(MappingRefused, match=f"there is no column {index}: the file has columns 0 to 3"):
        confirmed_map([(0, "email"), (index, "phone")], header=HEADER)


def test_an_unknown_field_is_refused_naming_the_fields_there_are() -> None:
    with pytest.raises(MappingRefused, match="unknown field 'shoe_size' for column 3: use one of email, first_name"):
        confirmed_map([(0, "email"), (3, "shoe_size")], header=HEADER)
