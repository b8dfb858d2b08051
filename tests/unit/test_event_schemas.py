"""The committed JSON Schemas (docs/schemas) are those of the event models, and every event has one."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.cli import main
from shared.events import ALL_EVENTS, INTERACTION_EVENTS, ContactEvent
from shared.schemas import rendered_schemas
from shared.topics import ALL_TOPICS, CONTACT_EVENTS, INTERACTIONS

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_the_committed_schemas_are_up_to_date() -> None:
    committed = {path.name: path.read_text() for path in COMMITTED.glob("*.json")}

    expected = rendered_schemas()

    stale = sorted(name for name in expected.keys() | committed.keys() if committed.get(name) != expected.get(name))
    assert stale == [], f"out of date: {stale}; run `.venv/bin/contacts schemas` and commit docs/schemas"


def test_the_cli_writes_one_schema_per_event_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "--out", str(tmp_path)]) == 0

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{e.TYPE}.json" for e in ALL_EVENTS)
    assert "wrote" in capsys.readouterr().out


def test_event_types_are_unique_and_every_event_travels_on_a_topic() -> None:
    assert len({event.TYPE for event in ALL_EVENTS}) == len(ALL_EVENTS)
    carried = {event for topic in ALL_TOPICS for event in topic.events}
    assert set(ALL_EVENTS) <= carried
    assert set(INTERACTIONS.events) == set(INTERACTION_EVENTS) and INTERACTIONS.writer == "platform-teams"
    assert all(issubclass(event, ContactEvent) for event in CONTACT_EVENTS.events)
