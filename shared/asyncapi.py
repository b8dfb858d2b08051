"""The system's AsyncAPI 3.0 document, generated from the code: channels from the topic registry
(``shared.topics``: key, writer, partitions, description), send and receive operations from the writers and
``shared.lag.SUBSCRIPTIONS``, messages from the event models' JSON Schemas (``shared.events``) with the
CloudEvents headers they travel with. ``docs/asyncapi.yaml`` is this document; a test regenerates and compares it,
``contacts asyncapi`` rewrites it, and every service serves it at ``/asyncapi`` (JSON, YAML and an HTML view)."""

from __future__ import annotations

import html
import json
import re
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from shared.events import Event
from shared.lag import SUBSCRIPTIONS
from shared.topics import ALL_TOPICS, Topic

SCHEMA_REF = "#/components/schemas/{model}"
KAFKA_BINDING_VERSION = "0.5.0"

CLOUDEVENTS_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 attributes in Kafka binary mode: one header each, UTF-8 text.",
    "required": ["ce_id", "ce_type", "ce_source"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0", "description": "CloudEvents version."},
        "ce_id": {"type": "string", "description": "Unique per event; a re-sent event keeps its id and is "
                  "applied once."},
        "ce_type": {"type": "string", "description": "The event type (the message's name here)."},
        "ce_source": {"type": "string", "description": "Who produced it, e.g. kagibag-contacts/identity."},
        "ce_time": {"type": "string", "format": "date-time", "description": "When it happened (ISO 8601)."},
        "ce_subject": {"type": "string", "description": "What it is about (an import id, a contact id)."},
        "ce_correlationid": {"type": "string", "description": "Ties everything caused by one request or "
                             "import together."},
        "ce_causationid": {"type": "string", "description": "The id of the message that caused this one."},
        "content-type": {"type": "string", "const": "application/json"},
    },
}
DEAD_LETTER_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "The original message's headers, unchanged, followed by these.",
    "required": ["dlq_error_code", "dlq_error", "dlq_original_topic", "dlq_original_partition",
                 "dlq_original_offset", "dlq_failed_at"],
    "properties": {
        "dlq_error_code": {"type": "string", "description": "BAD_ENVELOPE, UNEXPECTED_TYPE, INVALID_PAYLOAD (could "
                           "not be decoded) or PROCESSING_FAILED (decoded, but applying it failed every time)."},
        "dlq_error": {"type": "string", "description": "What was wrong (at most 4,000 characters)."},
        "dlq_original_topic": {"type": "string"},
        "dlq_original_partition": {"type": "string", "description": "A decimal number."},
        "dlq_original_offset": {"type": "string", "description": "A decimal number."},
        "dlq_failed_at": {"type": "string", "format": "date-time"},
    },
    "additionalProperties": {"type": "string"},
}


def channel_id(topic: Topic) -> str:
    """``contacts.import-rows.v1`` -> ``importRowsV1``: AsyncAPI ids allow letters, digits, ``-`` and ``_``."""
    words = re.split(r"[.\-]", topic.name.removeprefix("contacts."))
    return words[0] + "".join(word[:1].upper() + word[1:] for word in words[1:])


def _camel(name: str) -> str:
    words = re.split(r"[.\-_ ]", name)
    return words[0] + "".join(word[:1].upper() + word[1:] for word in words[1:])


def _project_version() -> str:
    try:
        return version("kagibag-contacts")
    except PackageNotFoundError:
        return "0.0.0"


def _readers(topic: Topic) -> list[str]:
    return [service for service, read in SUBSCRIPTIONS.items() if topic in read]


def _collect_schema(model: type[Event], schemas: dict[str, Any]) -> None:
    schema = model.model_json_schema(ref_template=SCHEMA_REF)
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas[model.__name__] = {"x-cloudevents-type": model.TYPE, **schema}


def _message(model: type[Event], topic: Topic) -> dict[str, Any]:
    return {
        "name": model.TYPE,
        "title": model.__name__,
        "summary": (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else model.__name__,
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/CloudEventsHeaders"},
        "payload": {"$ref": SCHEMA_REF.format(model=model.__name__)},
        "correlationId": {"location": "$message.header#/ce_correlationid"},
        "bindings": {"kafka": {"key": {"type": "string", "description": topic.key},
                               "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def build_document() -> dict[str, Any]:
    """The document as a plain dict, in a stable order (the committed file is compared byte for byte)."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"CloudEventsHeaders": CLOUDEVENTS_HEADERS, "DeadLetterHeaders": DEAD_LETTER_HEADERS}
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "A message that could not be processed",
        "summary": "The original key and value bytes, the original headers and the dlq_* headers.",
        "headers": {"$ref": "#/components/schemas/DeadLetterHeaders"},
        "payload": {"description": "The original value, byte for byte (usually JSON, possibly not)."},
        "bindings": {"kafka": {"key": {"type": "string", "description": "the original key"},
                               "bindingVersion": KAFKA_BINDING_VERSION}},
    }
    for topic in ALL_TOPICS:
        cid = channel_id(topic)
        readers = _readers(topic)
        if topic.events:
            names = [model.__name__ for model in topic.events]
            for model in topic.events:
                _collect_schema(model, schemas)
                messages.setdefault(model.__name__, _message(model, topic))
        else:
            names = ["DeadLetter"]
        channels[cid] = {
            "address": topic.name,
            "title": topic.name,
            "description": (
                f"{topic.description}\n\nWriter: {topic.writer}. Readers: {', '.join(readers) or 'none here'}. "
                f"Key: {topic.key}. Partitions: {topic.partitions}."
            ),
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
            "bindings": {"kafka": {"topic": topic.name, "partitions": topic.partitions,
                                   "bindingVersion": KAFKA_BINDING_VERSION}},
            "x-writer": topic.writer,
            "x-readers": readers,
            "x-key": topic.key,
        }
        refs = [{"$ref": f"#/channels/{cid}/messages/{name}"} for name in names]
        operations[f"{_camel(topic.writer)}Sends{cid[:1].upper()}{cid[1:]}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "title": f"{topic.writer} writes {topic.name}",
            "messages": refs,
        }
        for reader in readers:
            operations[f"{_camel(reader)}Receives{cid[:1].upper()}{cid[1:]}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{cid}"},
                "title": f"{reader} consumes {topic.name} (consumer group {reader!r} by default)",
                "messages": refs,
                "bindings": {"kafka": {"groupId": {"type": "string", "default": reader},
                                       "bindingVersion": KAFKA_BINDING_VERSION}},
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Kagibag Contacts",
            "version": _project_version(),
            "description": (
                "Every topic of the contact-identity platform, who writes and reads it, and the events on it. "
                "Each message is a CloudEvents 1.0 event in Kafka binary mode (ce_* headers, JSON value). "
                "Generated from shared/topics.py and shared/events.py: `contacts asyncapi` rewrites this file."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "make run (Tansu)"},
            "compose": {"host": "kafka:9092", "protocol": "kafka", "description": "docker compose (Apache Kafka)"},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


@cache
def document_json() -> str:
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"


@cache
def document_yaml() -> str:
    """YAML when PyYAML is installed; otherwise the JSON text, which is valid YAML too."""
    try:
        import yaml
    except ImportError:
        return document_json()
    text: str = yaml.safe_dump(build_document(), sort_keys=False, allow_unicode=True, width=120)
    return "# Generated by `contacts asyncapi` from shared/topics.py and shared/events.py: do not edit.\n" + text


# --- the HTML view: rendered here, no script, no CDN -------------------------------------------------------------

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem 2rem;color:#1b1f24}
h1{margin-bottom:0}h2{border-bottom:1px solid #d0d7de;padding-top:1rem}code{background:#f6f8fa;padding:0 .2em}
table{border-collapse:collapse;margin:.5rem 0 1rem;width:100%}td,th{border:1px solid #d0d7de;padding:.25rem .5rem;
text-align:left;vertical-align:top}th{background:#f6f8fa}.msg{margin-left:1rem}.muted{color:#57606a}
nav a{margin-right:.8rem}
"""


def _type_of(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        ref: str = schema["$ref"]
        return ref.rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type_of(option) for option in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = str(schema.get("type", "any"))
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {_type_of(schema['items'])}"
    if schema.get("format"):
        return f"{kind} ({schema['format']})"
    return kind


def _properties_table(schema: dict[str, Any]) -> str:
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:
        return f"<p class=muted>{html.escape(schema.get('description', 'any value'))}</p>"
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{html.escape(name)}</code></td><td>{html.escape(_type_of(field))}</td>"
        f"<td>{'yes' if name in required else ''}</td>"
        f"<td>{html.escape(str(field.get('description', '')))}</td></tr>"
        for name, field in properties.items()
    )
    return f"<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>{rows}</table>"


def _resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    result: dict[str, Any] = node
    return result


@cache
def document_html() -> str:
    """A readable page of the same document: channels with writer, readers, key and partitions, each message's
    headers and payload fields, then the shared schemas."""
    doc = build_document()
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{html.escape(doc['info']['title'])}: AsyncAPI</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(doc['info']['title'])} <span class=muted>{html.escape(doc['info']['version'])}</span></h1>",
        f"<p>{html.escape(doc['info']['description'])}</p>",
        "<p>AsyncAPI 3.0: <a href='/asyncapi.json'>JSON</a> · <a href='/asyncapi.yaml'>YAML</a></p><nav>",
        *(f"<a href='#{cid}'>{html.escape(ch['address'])}</a>" for cid, ch in doc["channels"].items()),
        "</nav>",
    ]
    for cid, channel in doc["channels"].items():
        parts += [
            f"<h2 id='{cid}'><code>{html.escape(channel['address'])}</code></h2>",
            f"<p>{html.escape(channel['description']).replace(chr(10), '<br>')}</p>",
        ]
        for ref in channel["messages"].values():
            message = _resolve(doc, ref["$ref"])
            payload = _resolve(doc, message["payload"]["$ref"]) if "$ref" in message["payload"] else message["payload"]
            parts += [
                f"<div class=msg><h3>{html.escape(message['title'])} <code>{html.escape(message['name'])}</code></h3>",
                f"<p>{html.escape(message.get('summary', ''))}</p>",
                f"<p>Key: {html.escape(message['bindings']['kafka']['key']['description'])}. "
                f"Headers: <a href='#schema-{message['headers']['$ref'].rsplit('/', 1)[-1]}'>"
                f"{html.escape(message['headers']['$ref'].rsplit('/', 1)[-1])}</a>.</p>",
                _properties_table(payload), "</div>",
            ]
    parts.append("<h2>Schemas</h2>")
    for name, schema in doc["components"]["schemas"].items():
        parts += [f"<h3 id='schema-{name}'>{html.escape(name)}</h3>", _properties_table(schema)]
    parts.append("</body></html>")
    return "\n".join(parts)
