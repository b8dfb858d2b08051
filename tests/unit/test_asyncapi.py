"""The AsyncAPI document: generated from the code, committed without drift, every topic with its message schemas,
every reference resolving; the HTML view works offline; ``SUBSCRIPTIONS`` says what the subscribers really read."""

from __future__ import annotations

import gc
import json
import re
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
import yaml
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import LogicSubscriber

from ops.catalog import SERVICES, settings_class
from shared.asyncapi import build_document, channel_id, document_html, document_json, document_yaml
from shared.config import PlatformSettings
from shared.events import ALL_EVENTS
from shared.lag import SUBSCRIPTIONS
from shared.topics import ALL_TOPICS

CHECKOUT = Path(__file__).resolve().parents[2]
COMMITTED = CHECKOUT / "docs" / "asyncapi.yaml"


def test_the_committed_document_is_the_generated_one() -> None:
    assert COMMITTED.read_text() == document_yaml(), "docs/asyncapi.yaml is stale: run 'contacts asyncapi'"


def test_yaml_and_json_are_the_same_document() -> None:
    assert yaml.safe_load(document_yaml()) == json.loads(document_json()) == build_document()


def test_every_topic_is_a_channel_with_its_writer_readers_key_and_partitions() -> None:
    document = build_document()
    assert document["asyncapi"] == "3.0.0"
    for topic in ALL_TOPICS:
        channel = document["channels"][channel_id(topic)]
        assert channel["address"] == topic.name
        assert channel["bindings"]["kafka"]["partitions"] == topic.partitions
        assert channel["x-writer"] == topic.writer and channel["x-key"] == topic.key
        readers = [service for service, read in SUBSCRIPTIONS.items() if topic in read]
        assert channel["x-readers"] == readers
        operations = document["operations"]
        assert sum(op["action"] == "send" and op["channel"]["$ref"] == f"#/channels/{channel_id(topic)}"
                   for op in operations.values()) == 1
        assert sum(op["action"] == "receive" and op["channel"]["$ref"] == f"#/channels/{channel_id(topic)}"
                   for op in operations.values()) == len(readers)


def test_every_event_is_a_message_on_its_topics_with_its_json_schema_and_cloudevents_headers() -> None:
    document = build_document()
    schemas = document["components"]["schemas"]
    messages = document["components"]["messages"]
    for topic in ALL_TOPICS:
        listed = document["channels"][channel_id(topic)]["messages"]
        if not topic.events:
            assert list(listed) == ["DeadLetter"]
            continue
        assert sorted(listed) == sorted(event.__name__ for event in topic.events)
        for event in topic.events:
            message = messages[event.__name__]
            assert message["name"] == event.TYPE
            assert message["headers"] == {"$ref": "#/components/schemas/CloudEventsHeaders"}
            payload = schemas[event.__name__]
            expected = event.model_json_schema(ref_template="#/components/schemas/{model}")
            expected.pop("$defs", None)
            assert payload == {"x-cloudevents-type": event.TYPE, **expected}
    assert {event.__name__ for event in ALL_EVENTS} <= set(messages)
    assert set(schemas["CloudEventsHeaders"]["required"]) == {"ce_id", "ce_type", "ce_source"}


def test_every_reference_resolves() -> None:
    document = build_document()
    text = json.dumps(document)
    refs = set(re.findall(r'"\$ref": "(#/[^"]+)"', text))
    assert refs
    for ref in refs:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            assert part in node, ref
            node = node[part]


def test_the_html_view_names_every_topic_and_event_and_loads_nothing_from_elsewhere() -> None:
    page = document_html()
    for topic in ALL_TOPICS:
        assert topic.name in page
    for event in ALL_EVENTS:
        assert event.TYPE in page
    assert "<script" not in page
    assert not re.search(r"""(src|href)=['"]?https?:""", page)


def _subscribed_topics(service: str) -> set[str]:
    """The topics the FastStream subscribers read of the app the service's composition root builds (found among
    the live objects: nothing connects before the app starts)."""
    create_app = import_module(f"services.{service}.app").create_app
    before = {id(thing) for thing in gc.get_objects() if isinstance(thing, KafkaBroker)}
    app = create_app(settings_class(service)(platform=PlatformSettings(topic_prefix="")))
    (broker,) = [thing for thing in gc.get_objects() if isinstance(thing, KafkaBroker) and id(thing) not in before]
    assert app is not None
    topics: set[str] = set()
    for subscriber in broker.subscribers:
        assert isinstance(subscriber, LogicSubscriber)  # typed as FastStream's generic subscriber
        topics |= {topic.name for topic in subscriber.topics}
    return topics


@pytest.mark.parametrize("service", SERVICES)
def test_subscriptions_name_the_topics_each_service_really_consumes(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # ingest makes its upload folder where it starts
    assert _subscribed_topics(service) == {topic.name for topic in SUBSCRIPTIONS[service]}
