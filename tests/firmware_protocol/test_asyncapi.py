"""The AsyncAPI document and the JSON Schemas: valid against their official meta-schemas and the code."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from firmware_protocol import docgen
from firmware_protocol.messages import MESSAGE_TYPES
from firmware_protocol.topics import Channel

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    doc: dict[str, Any] = _load(ROOT / docgen.ASYNCAPI_PATH)
    return doc


@pytest.fixture(scope="module")
def official() -> jsonschema.Draft7Validator:
    schema = _load(DATA / "asyncapi-3.0.0.schema.json")
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="module")
def valid_vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = _load(ROOT / docgen.VECTORS_DIR / "valid.json")["vectors"]
    return vectors


def test_document_validates_against_the_official_schema(
    document: dict[str, Any], official: jsonschema.Draft7Validator
) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in official.iter_errors(document)]
    assert not errors, "\n".join(errors)
    assert document["asyncapi"] == "3.0.0"


def test_official_schema_catches_mistakes(
    document: dict[str, Any], official: jsonschema.Draft7Validator
) -> None:
    broken = copy.deepcopy(document)
    next(iter(broken["operations"].values()))["action"] = "publish"  # the AsyncAPI 2 verb
    assert not official.is_valid(broken)
    broken = copy.deepcopy(document)
    next(iter(broken["operations"].values()))["bindings"]["mqtt"]["qos"] = 3
    assert not official.is_valid(broken)


def _walk_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _walk_refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _walk_refs(item)]
    return []


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    refs = _walk_refs(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = document
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]


def test_every_message_type_is_documented(document: dict[str, Any]) -> None:
    messages = document["components"]["messages"]
    assert set(messages) == set(MESSAGE_TYPES)
    for type_name, message in messages.items():
        assert message["name"] == type_name
        assert message["summary"]
        assert message["examples"][0]["payload"]["type"] == type_name
    on_channels = {t for channel in document["channels"].values() for t in channel["messages"]}
    assert on_channels == set(MESSAGE_TYPES)
    in_operations = {
        ref["$ref"].rsplit("/", 1)[-1] for op in document["operations"].values() for ref in op["messages"]
    }
    assert in_operations == set(MESSAGE_TYPES)


def test_channels_and_bindings_match_the_topics(document: dict[str, Any]) -> None:
    channels = document["channels"]
    assert len(channels) == len(Channel)
    by_address = {channel["address"]: key for key, channel in channels.items()}
    for channel in Channel:
        key = by_address[f"dsp/v1/{{device_id}}/{channel.value}"]
        assert set(channels[key]["parameters"]) == {"device_id"}
        for type_name in channels[key]["messages"]:
            assert MESSAGE_TYPES[type_name].CHANNEL is channel
        operations = [
            op for op in document["operations"].values() if op["channel"]["$ref"] == f"#/channels/{key}"
        ]
        assert operations, channel
        for operation in operations:
            assert operation["bindings"]["mqtt"]["qos"] == channel.qos
            assert operation["bindings"]["mqtt"]["retain"] is channel.retain
            expected = "send" if channel.direction.value == "uplink" else "receive"
            assert operation["action"] == expected  # the device's point of view


def test_payload_schemas_accept_the_vectors(
    document: dict[str, Any], valid_vectors: list[dict[str, Any]]
) -> None:
    registry: Registry[Any] = Registry().with_resource(
        "urn:test:asyncapi", Resource.from_contents(document, default_specification=DRAFT7)
    )
    for vector in valid_vectors:
        if "ignored_fields" in vector:
            continue
        ref = document["components"]["messages"][vector["type"]]["payload"]["$ref"]
        validator = jsonschema.Draft7Validator({"$ref": f"urn:test:asyncapi{ref}"}, registry=registry)
        validator.validate(json.loads(vector["payload"]))


def _message_schemas() -> dict[str, dict[str, Any]]:
    directory = ROOT / docgen.SCHEMAS_DIR
    return {path.stem: _load(path) for path in sorted(directory.glob("*.json"))}


def test_message_schemas_are_valid_2020_12() -> None:
    schemas = _message_schemas()
    assert set(schemas) == {*MESSAGE_TYPES, "envelope"}
    for name, schema in schemas.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"urn:dispenser-hub:protocol:v1:{name}"


def test_every_valid_vector_matches_its_schema(valid_vectors: list[dict[str, Any]]) -> None:
    schemas = _message_schemas()
    envelope = jsonschema.Draft202012Validator(schemas["envelope"])
    for vector in valid_vectors:
        payload = json.loads(vector["payload"])
        if "ignored_fields" in vector:  # a newer minor version: the 1.0 schemas are closed
            assert not jsonschema.Draft202012Validator(schemas[vector["type"]]).is_valid(payload)
            continue
        jsonschema.Draft202012Validator(schemas[vector["type"]]).validate(payload)
        envelope.validate(payload)


def test_schemas_refuse_the_schema_error_vectors() -> None:
    schemas = _message_schemas()
    invalid = _load(ROOT / docgen.VECTORS_DIR / "invalid.json")["vectors"]
    checked = 0
    for vector in invalid:
        if vector["expected_code"] != "E_SCHEMA" or vector["name"] == "model rule":
            continue  # a cross-field rule (until after from) is not expressible in the schema
        payload = json.loads(vector["payload"])
        schema = schemas.get(payload.get("type"), schemas["envelope"])
        assert not jsonschema.Draft202012Validator(schema).is_valid(payload), vector["name"]
        checked += 1
    assert checked >= 5
