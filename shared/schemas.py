"""JSON Schemas of the event contract, for the teams that publish to or consume from our topics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.events import ALL_EVENTS, Event


def event_schema(event: type[Event]) -> dict[str, Any]:
    """The payload's JSON Schema; ``x-cloudevents-type`` is the ``ce_type`` header it travels with."""
    return {"x-cloudevents-type": event.TYPE, **event.model_json_schema()}


def rendered_schemas() -> dict[str, str]:
    """File name (``<TYPE>.json``) -> its exact text, stable so the committed files can be compared."""
    return {f"{event.TYPE}.json": json.dumps(event_schema(event), indent=2, sort_keys=True) + "\n"
            for event in ALL_EVENTS}


def write_schemas(folder: Path) -> list[Path]:
    """Write every event's schema into ``folder`` (created if needed); returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered_schemas().items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written
