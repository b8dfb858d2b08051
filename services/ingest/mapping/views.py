"""The mapping step's request and response bodies: the proposal shown for an upload, and the choices a person
(or an API caller, in the upload's ``mapping`` field) confirms."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from services.ingest.domain import TARGETS, ColumnMap, Status, Target
from services.ingest.mapping.proposal import FileProposal, MappingRefused, Reason, confirmed_map
from services.ingest.reading.records import Inspection

MAPPING_FIELD = "mapping"
SAMPLE_VALUES = 5


class ColumnChoice(BaseModel):
    index: int
    field: str | None
    """One of the mapping's fields, or null to skip the column."""


class MappingChoices(BaseModel):
    """A mapping to confirm: the columns to import and their fields; columns not listed are skipped."""

    columns: list[ColumnChoice]


class ColumnView(BaseModel):
    index: int
    header: str
    samples: list[str]
    field: Target | None
    reason: Reason | None
    confidence: float


class MappingView(BaseModel):
    import_id: str
    status: Status
    hubspot: bool
    encoding: str
    delimiter: str
    fields: list[Target]
    columns: list[ColumnView]
    """Every column with its sample values and the proposed field (null = skip), why and how sure."""
    confirmed: list[ColumnChoice] | None
    """The mapping confirmed with PUT (or the one the import was started with), null if none yet."""


def choices_of(columns: ColumnMap) -> list[ColumnChoice]:
    return sorted(
        (ColumnChoice(index=index, field=field) for field, index in columns.positions.items()),
        key=lambda choice: choice.index,
    )


def mapping_view(setup: Any, inspection: Inspection, proposal: FileProposal) -> MappingView:
    stored = ColumnMap.from_json(setup.mapping) if setup.mapping else None
    return MappingView(
        import_id=str(setup.import_id),
        status=setup.status,
        hubspot=proposal.hubspot,
        encoding=inspection.format.encoding,
        delimiter=inspection.format.delimiter,
        fields=list(TARGETS),
        columns=[
            ColumnView(
                index=column.index, header=column.header,
                samples=[row[column.index] for row in inspection.samples if column.index < len(row)][
                    :SAMPLE_VALUES
                ],
                field=column.field, reason=column.reason, confidence=column.confidence,
            )
            for column in proposal.columns
        ],
        confirmed=choices_of(stored) if stored is not None else None,
    )


def confirmed(choices: MappingChoices, header: list[str]) -> ColumnMap:
    """The mapping a person confirmed; ``MappingRefused`` says what to change."""
    return confirmed_map([(c.index, c.field) for c in choices.columns], header=header)


def parse_mapping_field(raw: str, header: list[str]) -> ColumnMap:
    """The ``mapping`` form field sent with an upload: the JSON body ``PUT .../mapping`` takes;
    ``MappingRefused`` when it is not that or cannot be used."""
    try:
        choices = MappingChoices.model_validate_json(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, problem['loc'])) or 'body'}: {problem['msg']}" for problem in error.errors()[:5]
        )
        raise MappingRefused(
            f"the {MAPPING_FIELD!r} field must be JSON like "
            '{"columns": [{"index": 0, "field": "email"}]}: ' + problems[:500]
        ) from error
    return confirmed(choices, header)
