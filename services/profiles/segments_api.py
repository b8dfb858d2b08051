"""Segments: an organizer saves named filters (``segment_filter``'s grammar) over its own contacts and reads their
members, count and CSV export. Membership is evaluated on read (one query over the organizer's indexed rows), so it
is always current. And the CSV export of the contacts list's filters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, cast

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from services.profiles import queries, segments
from services.profiles.contact_lists import ContactFilters, SortParameter, contact_page
from services.profiles.exports import contacts_csv
from services.profiles.queries import Filters
from services.profiles.segment_filter import FilterError, compile_filter, parse, to_json
from services.profiles.views import ContactPage
from shared.auth import OrganizerId
from shared.pagination import Page, decode_cursor, encode_cursor

NOT_FOUND = "segment not found"
SCOPE = "segments"


def _stripped(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_stripped)]


class NewSegment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    filter: dict[str, Any] = Field(description="see the filter grammar: and, or, not, tag, permission, company, "
                                               "attended, registered, attended_at_least, last_active, import_id")


class SegmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    filter: dict[str, Any] | None = None


class Segment(BaseModel):
    id: str
    name: str
    filter: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class SegmentCount(BaseModel):
    count: int


def _segment(row: Any) -> Segment:
    return Segment(id=row.segment_id, name=row.name, filter=row.filter, created_at=row.created_at,
                   updated_at=row.updated_at)


def _normalized(raw: dict[str, Any]) -> dict[str, Any]:
    """The filter in its stored form; a 422 naming where it breaks the grammar."""
    try:
        return to_json(parse(raw))
    except FilterError as error:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", *error.path), "msg": error.message, "input": raw}]
        ) from error


def csv_response(engine: AsyncEngine, *, organizer_id: str, filters: Filters, filename: str) -> StreamingResponse:
    return StreamingResponse(
        contacts_csv(engine, organizer_id=organizer_id, filters=filters),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def segments_router(engine: AsyncEngine) -> APIRouter:
    router = APIRouter(tags=["segments"])
    not_found: dict[int | str, dict[str, Any]] = {404: {"description": "no such segment of the caller's"}}

    async def members(organizer_id: str, segment_id: str) -> Filters:
        async with engine.connect() as conn:
            row = await segments.get(conn, organizer_id=organizer_id, segment_id=segment_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
        return Filters(segment=compile_filter(parse(row.filter)))

    @router.get("/v1/contacts/export.csv", tags=["contacts"], summary="The caller's contacts as CSV",
                description="The same filters as GET /v1/contacts; every contact matching them, with your private "
                            "fields, cells neutralized for spreadsheets.")
    async def export_contacts(organizer_id: OrganizerId, filters: ContactFilters) -> StreamingResponse:
        return csv_response(engine, organizer_id=organizer_id, filters=filters, filename="contacts.csv")

    @router.post("/v1/segments", status_code=status.HTTP_201_CREATED, response_model=Segment,
                 summary="Save a named filter over your contacts")
    async def create_segment(organizer_id: OrganizerId, body: NewSegment) -> Segment:
        normalized = _normalized(body.filter)
        async with engine.begin() as conn:
            row = await segments.create(conn, organizer_id=organizer_id, name=body.name, filter=normalized)
        return _segment(row)

    @router.get("/v1/segments", response_model=Page[Segment], summary="Your segments, oldest first")
    async def list_segments(
        organizer_id: OrganizerId,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=400, description="next_cursor of the previous page")] = None,
    ) -> Page[Segment]:
        after = None
        if cursor is not None:
            at, segment_id = decode_cursor(cursor, SCOPE, (datetime, str))
            after = (cast(datetime, at), cast(str, segment_id))
        async with engine.connect() as conn:
            rows = await segments.find(conn, organizer_id=organizer_id, after=after, limit=limit + 1)
        items = [_segment(row) for row in rows[:limit]]
        next_cursor = encode_cursor(SCOPE, items[-1].created_at, items[-1].id) if len(rows) > limit else None
        return Page[Segment](items=items, next_cursor=next_cursor)

    @router.get("/v1/segments/{segment_id}", response_model=Segment, responses=not_found)
    async def get_segment(organizer_id: OrganizerId, segment_id: str) -> Segment:
        async with engine.connect() as conn:
            row = await segments.get(conn, organizer_id=organizer_id, segment_id=segment_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
        return _segment(row)

    @router.patch("/v1/segments/{segment_id}", response_model=Segment, responses=not_found,
                  summary="Rename a segment or change its filter")
    async def change_segment(organizer_id: OrganizerId, segment_id: str, body: SegmentPatch) -> Segment:
        if body.name is None and body.filter is None:
            raise RequestValidationError([{"type": "value_error", "loc": ("body",), "msg": "give name, filter or "
                                           "both", "input": body.model_dump()}])
        normalized = _normalized(body.filter) if body.filter is not None else None
        async with engine.begin() as conn:
            row = await segments.update(conn, organizer_id=organizer_id, segment_id=segment_id, name=body.name,
                                        filter=normalized)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
        return _segment(row)

    @router.delete("/v1/segments/{segment_id}", status_code=status.HTTP_204_NO_CONTENT, responses=not_found)
    async def delete_segment(organizer_id: OrganizerId, segment_id: str) -> Response:
        async with engine.begin() as conn:
            deleted = await segments.delete(conn, organizer_id=organizer_id, segment_id=segment_id)
        if not deleted:
            raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get("/v1/segments/{segment_id}/contacts", response_model=ContactPage, responses=not_found,
                summary="The segment's contacts now (the same shape and paging as GET /v1/contacts)")
    async def segment_contacts(
        organizer_id: OrganizerId,
        segment_id: str,
        sort: SortParameter = "id",
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=400, description="next_cursor of the previous page")] = None,
    ) -> ContactPage:
        filters = await members(organizer_id, segment_id)
        return await contact_page(engine, organizer_id=organizer_id, filters=filters, sort=sort, limit=limit,
                                  cursor=cursor)

    @router.get("/v1/segments/{segment_id}/count", response_model=SegmentCount, responses=not_found)
    async def segment_count(organizer_id: OrganizerId, segment_id: str) -> SegmentCount:
        filters = await members(organizer_id, segment_id)
        async with engine.connect() as conn:
            return SegmentCount(count=await queries.count_contacts(conn, organizer_id=organizer_id, filters=filters))

    @router.get("/v1/segments/{segment_id}/export.csv", responses=not_found,
                summary="The segment's contacts now, as CSV with your private fields")
    async def export_segment(organizer_id: OrganizerId, segment_id: str) -> StreamingResponse:
        filters = await members(organizer_id, segment_id)
        return csv_response(engine, organizer_id=organizer_id, filters=filters, filename=f"segment-{segment_id}.csv")

    return router
