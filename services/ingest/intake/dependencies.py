"""What the routes depend on, as ``Annotated`` aliases: the organizer of the bearer token, and the service objects
``create_app`` builds once and hands to ``provide`` (this module is the only one that keeps them on the app)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, status
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.intake.json_imports import JsonImports
from services.ingest.intake.uploads import Uploads
from services.ingest.jobs import ImportJobs
from shared.auth import current_organizer


@dataclass(frozen=True)
class Intake:
    """Everything the routes use, built once by ``create_app``."""

    engine: AsyncEngine
    jobs: ImportJobs
    uploads: Uploads
    json_imports: JsonImports


def provide(app: FastAPI, intake: Intake) -> None:
    """Called once by ``create_app``: the routes of ``app`` are then served by ``intake``."""
    app.state.intake = intake


def _intake(request: Request) -> Intake:
    intake: Intake = request.app.state.intake
    return intake


def _engine(intake: Annotated[Intake, Depends(_intake)]) -> AsyncEngine:
    return intake.engine


def _jobs(intake: Annotated[Intake, Depends(_intake)]) -> ImportJobs:
    return intake.jobs


def _uploads(intake: Annotated[Intake, Depends(_intake)]) -> Uploads:
    return intake.uploads


def _json_imports(intake: Annotated[Intake, Depends(_intake)]) -> JsonImports:
    return intake.json_imports


def _organizer(organizer_id: Annotated[str, Depends(current_organizer)]) -> str:
    """The token's organizer; one that no query could hold (a NUL or another control character) is refused
    like any invalid token."""
    if not organizer_id.isprintable():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid token: organizer_id has control characters",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return organizer_id


def not_found(import_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no import {import_id[:100]}")


def _import_id(import_id: str) -> str:
    """The ``{import_id}`` of the path as a UUID; anything else names no import (404)."""
    try:
        return str(uuid.UUID(import_id))
    except ValueError as error:
        raise not_found(import_id) from error


Engine = Annotated[AsyncEngine, Depends(_engine)]
Jobs = Annotated[ImportJobs, Depends(_jobs)]
UploadsDep = Annotated[Uploads, Depends(_uploads)]
JsonImportsDep = Annotated[JsonImports, Depends(_json_imports)]
Organizer = Annotated[str, Depends(_organizer)]
ImportId = Annotated[str, Depends(_import_id)]
"""The path's import id, checked (a route that uses it must have ``{import_id}`` in its path)."""
