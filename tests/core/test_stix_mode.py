"""``stix`` mode: any STIX object -> one document valid against ``STIX_MAPPINGS``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure

from elastic_connector.core import stix_mode as stix_documents
from elastic_connector.core.stix import OPENCTI_EXTENSION, OtherObject, StixObject, decode_object
from elastic_connector.core.stix_mode import STIX_MAPPINGS, stix_document
from tests.core.indicators.es_field_checks import problems

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def stix_object(raw: dict[str, Any] | bytes) -> StixObject:
    """The object as the stream decoder gives it."""
    data = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    decoded = decode_object(data)
    if isinstance(decoded, Failure):
        raise AssertionError(decoded.failure())
    obj: StixObject = decoded.unwrap()
    return obj


def raw_object(raw: dict[str, Any]) -> StixObject:
    """Any JSON object, even one the stream decoder's typed view would refuse."""
    kind, ident = str(raw.get("type", "")), str(raw.get("id", ""))
    return StixObject(kind, ident, OtherObject(kind, ident), msgspec.json.encode(raw))


def document(raw: dict[str, Any] | bytes) -> dict[str, Any]:
    obj = raw_object(raw) if isinstance(raw, dict) else stix_object(raw)
    decoded: dict[str, Any] = json.loads(stix_document(obj, NOW))
    return decoded


MALWARE = {
    "type": "malware",
    "spec_version": "2.1",
    "id": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b",
    "created": "2024-01-01T00:00:00.000Z",
    "modified": "2024-02-01T10:00:00+02:00",
    "name": "Poison Ivy",
    "is_family": True,
    "labels": ["rat", "rat", 3],
    "confidence": 80,
    "revoked": False,
    "created_by_ref": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
    "object_marking_refs": ["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"],
    "extensions": {
        OPENCTI_EXTENSION: {
            "extension_type": "property-extension",
            "id": "0b4f6a8e-0000-4000-8000-000000000001",
            "type": "Malware",
            "created_at": "2024-01-01T00:00:01.000Z",
            "updated_at": "2024-02-01T08:00:01.000Z",
            "is_inferred": False,
        }
    },
}


def test_typed_fields_and_the_whole_object() -> None:
    doc = json.loads(stix_document(stix_object(MALWARE), NOW))
    assert doc == document(MALWARE)
    assert doc == {
        "@timestamp": "2024-06-01T12:00:00Z",
        "id": MALWARE["id"],
        "type": "malware",
        "spec_version": "2.1",
        "created": "2024-01-01T00:00:00Z",
        "modified": "2024-02-01T08:00:00Z",
        "name": "Poison Ivy",
        "labels": ["rat"],
        "revoked": False,
        "confidence": 80,
        "object_marking_refs": ["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"],
        "created_by_ref": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
        "opencti": {
            "id": "0b4f6a8e-0000-4000-8000-000000000001",
            "type": "Malware",
            "created_at": "2024-01-01T00:00:01Z",
            "updated_at": "2024-02-01T08:00:01Z",
            "is_inferred": False,
        },
        "stix": MALWARE,
    }
    assert problems(doc, STIX_MAPPINGS) == []


def test_values_of_the_wrong_type_stay_only_in_the_raw_object() -> None:
    odd = {
        "type": "x-odd",
        "id": "x-odd--1",
        "created": "last tuesday",
        "modified": 1700000000,
        "name": {"first": "a"},
        "value": 42,
        "labels": "not-a-list",
        "confidence": True,
        "revoked": "maybe",
        "object_marking_refs": [None, "marking-definition--x"],
        "extensions": {OPENCTI_EXTENSION: {"score": 2**70, "detection": "perhaps", "id": 7}},
    }
    doc = document(odd)
    assert doc == {
        "@timestamp": "2024-06-01T12:00:00Z",
        "id": "x-odd--1",
        "type": "x-odd",
        "object_marking_refs": ["marking-definition--x"],
        "stix": odd,
    }
    assert problems(doc, STIX_MAPPINGS) == []


def test_booleans_spelled_as_strings_are_typed() -> None:
    spelled = {
        "type": "indicator",
        "id": "indicator--1",
        "revoked": "False",
        "extensions": {OPENCTI_EXTENSION: {"detection": "yes", "is_inferred": "0"}},
    }
    doc = document(spelled)
    assert doc["revoked"] is False
    assert doc["opencti"] == {"detection": True, "is_inferred": False}


def test_an_observable_value_is_typed() -> None:
    doc = document({"type": "ipv4-addr", "id": "ipv4-addr--1", "value": "198.51.100.1"})
    assert doc["value"] == "198.51.100.1"


def test_objects_flattened_cannot_hold_are_stored_unindexed() -> None:
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(stix_documents.FLATTENED_DEPTH_LIMIT):
        deep = {"x": deep}
    for raw in (
        {"type": "x-deep", "id": "x-deep--1", "nest": deep},
        {"type": "x-empty-key", "id": "x-empty-key--1", "": "value"},
        {"type": "x-long-key", "id": "x-long-key--1", "k" * 2000: 1},
    ):
        doc = document(raw)
        assert "stix" not in doc
        assert doc["stix_unindexed"] == raw
        assert problems(doc, STIX_MAPPINGS) == []
    shallow = {"type": "x-ok", "id": "x-ok--1", "nest": {"a": {"b": 1}}}
    assert document(shallow)["stix"] == shallow


def test_duplicate_keys_are_written_once() -> None:
    # Elasticsearch refuses a JSON object with a duplicate key.
    raw = b'{"type": "note", "id": "note--1", "content": "a", "content": "b"}'
    data = stix_document(stix_object(raw), NOW)
    assert data.count(b'"content"') == 1


def test_mapping_is_explicit() -> None:
    assert STIX_MAPPINGS["dynamic"] is False
    properties = STIX_MAPPINGS["properties"]
    assert isinstance(properties, dict)
    assert properties["stix"]["type"] == "flattened"
    assert properties["stix_unindexed"] == {"type": "object", "enabled": False}
    assert properties["created"] == {"type": "date"}


# --- properties ---------------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["2024-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00", "", "  "]),
)
_json = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=25,
)
_common = st.fixed_dictionaries(
    {},
    optional={
        "spec_version": _json,
        "created": _json,
        "modified": _json,
        "name": _json,
        "value": _json,
        "labels": _json,
        "revoked": _json,
        "confidence": _json,
        "object_marking_refs": _json,
        "created_by_ref": _json,
        "extensions": st.one_of(_json, st.fixed_dictionaries({OPENCTI_EXTENSION: _json})),
    },
)


@st.composite
def stix_json(draw: st.DrawFn) -> dict[str, Any]:
    """Any JSON object with a string ``type`` and ``id``, common properties of any shape."""
    raw: dict[str, Any] = draw(st.dictionaries(st.text(max_size=8), _json, max_size=5))
    raw.update(draw(_common))
    raw["type"] = draw(st.text(max_size=20))
    raw["id"] = draw(st.text(max_size=40))
    return raw


@given(stix_json(), st.datetimes(timezones=st.none() | st.just(UTC)))
def test_any_object_gives_a_valid_document_holding_it_whole(
    raw: dict[str, Any], now: datetime
) -> None:
    obj = raw_object(raw)
    data = stix_document(obj, now)
    doc = json.loads(data)
    assert problems(doc, STIX_MAPPINGS) == []
    assert doc["id"] == raw["id"] or (raw["id"] == "" and doc["id"] == "")
    assert doc["type"] == raw["type"]
    held = doc.get("stix", doc.get("stix_unindexed"))
    assert held == json.loads(json.dumps(raw))
    assert stix_document(obj, now) == data
    typed = msgspec.json.decode(data, type=stix_documents.StixDocument)
    assert msgspec.json.encode(typed) == data
