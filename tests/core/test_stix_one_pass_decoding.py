"""``core.stix.read_object`` decodes typed objects in one pass, falling back to the two-pass
decoding (header, then typed view) on any failure. This checks it against that two-pass decoding,
kept here as the reference, on valid, invalid and adversarial objects: the same object (with the
header and the reason when only the typed view fails), or the same error at the same place."""

from __future__ import annotations

import json

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core import stix
from elastic_connector.core.stix import DecodeError, StixObject, read_object

JsonValue = object


def two_pass(text: bytes, where: str = "$") -> StixObject | DecodeError:
    """The decoding ``read_object`` replaced: the header first, the typed view when known."""
    try:
        return _two_pass(text, where)
    except (UnicodeError, RecursionError) as error:  # reported alike by both
        return stix._unreadable(error, where, stix.object_id_of(text))


def _two_pass(text: bytes, where: str) -> StixObject | DecodeError:
    try:
        header = stix._header_decoder.decode(text)
    except msgspec.ValidationError as error:
        return stix._relocate(error, where, stix.object_id_of(text))
    except msgspec.DecodeError as error:
        return DecodeError(f"invalid JSON: {error}", where, stix.object_id_of(text))
    if header.type not in stix._TYPED:
        return StixObject(header.type, header.id, header, text)
    try:
        typed = stix._typed_decoder.decode(text)
    except msgspec.ValidationError as error:
        invalid = stix._relocate(error, where, header.id)
        return StixObject(header.type, header.id, header, text, invalid)
    return StixObject(header.type, header.id, typed, text)


_TYPES = st.sampled_from(
    ["indicator", "marking-definition", "identity", "sighting", "malware", "report", ""]
)
_ANY: st.SearchStrategy[JsonValue] = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5), st.just([]), st.just({})
)
_DATES = st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.123Z", "yesterday"])
_FIELDS: dict[str, st.SearchStrategy[JsonValue]] = {
    "type": st.one_of(_TYPES, _ANY),
    "id": st.one_of(st.text(max_size=8), _ANY),
    "pattern": st.one_of(st.just("[ipv4-addr:value = '1.2.3.4']"), _ANY),
    "name": st.one_of(st.text(max_size=8), _ANY),
    "valid_from": st.one_of(_DATES, _ANY),
    "revoked": _ANY,
    "confidence": st.one_of(st.integers(0, 100), _ANY),
    "object_marking_refs": st.one_of(st.lists(st.text(max_size=4), max_size=2), _ANY),
    "definition": st.one_of(st.just({"tlp": "amber"}), _ANY),
    "where_sighted_refs": st.one_of(st.lists(st.text(max_size=4), max_size=2), _ANY),
    "extensions": st.one_of(
        st.just({stix.OPENCTI_EXTENSION: {"id": "x", "score": 5}}),
        st.just({stix.OPENCTI_EXTENSION: {"score": "high"}}),
        _ANY,
    ),
    "unknown": _ANY,
}


@st.composite
def objects(draw: st.DrawFn) -> bytes:
    """JSON objects with STIX-ish fields of right and wrong types, in any order, sometimes with
    a key written twice (the decoders disagree on which one wins unless handled alike)."""
    names = draw(st.lists(st.sampled_from(sorted(_FIELDS)), unique=True, max_size=8))
    body = [f"{json.dumps(name)}:{json.dumps(draw(_FIELDS[name]))}" for name in names]
    if draw(st.booleans()):
        body.insert(0, f'"type":{json.dumps(draw(_TYPES))}')
    if draw(st.booleans()):
        body.append(f'"id":{json.dumps(draw(st.text(max_size=4)))}')
    return ("{" + ",".join(body) + "}").encode()


@given(objects())
def test_objects_decode_as_with_two_passes(text: bytes) -> None:
    assert read_object(text, "$.data") == two_pass(text, "$.data")


@given(st.binary(max_size=40))
def test_any_bytes_decode_as_with_two_passes(text: bytes) -> None:
    assert read_object(text) == two_pass(text)


def test_an_indicator_is_typed_and_keeps_its_bytes() -> None:
    text = b'{"type":"indicator","id":"indicator--1","pattern":"[a:b = \'c\']","x":1}'
    decoded = read_object(text)
    assert isinstance(decoded, StixObject)
    assert isinstance(decoded.typed, stix.Indicator)
    assert (decoded.type, decoded.id, decoded.json) == ("indicator", "indicator--1", text)
    assert decoded == two_pass(text)


def test_an_object_too_deep_to_decode_is_named_by_its_id() -> None:
    deep = b'{"type":"indicator","id":"indicator--1","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    result = read_object(deep)
    assert isinstance(result, DecodeError)
    assert "nested too deeply" in result.reason
    assert result.object_id == "indicator--1"


def test_an_event_given_as_text_names_its_object_when_it_fails() -> None:
    cut = '{"type":"create","data":{"type":"indicator","id":"indicator--1","pattern":"[a:b'
    result = stix.read_event("1-0", "create", cut)
    assert isinstance(result, DecodeError)
    assert result.object_id == "indicator--1"


def test_a_typed_view_that_fails_keeps_the_header_and_the_reason() -> None:
    text = b'{"type":"indicator","id":"indicator--1","pattern":5,"object_marking_refs":["m"]}'
    decoded = read_object(text, "$.data")
    assert isinstance(decoded, StixObject)
    assert isinstance(decoded.typed, stix.OtherObject)
    assert decoded.typed.object_marking_refs == ("m",)
    assert decoded.invalid is not None
    assert decoded.invalid.where == "$.data.pattern"
    assert decoded.invalid.object_id == "indicator--1"


def test_raw_text_is_read_as_bytes_are() -> None:
    # The envelope hands its ``data`` and merge sources over as ``msgspec.Raw``. msgspec's type
    # stub calls ``Raw`` a ``bytes`` subclass, which it is not: the compiled reader must copy it
    # as a buffer, not check it as ``bytes`` (a TypeError on every event).
    text = b'{"type": "identity", "id": "identity--1", "name": "ACME"}'
    raw = msgspec.Raw(text)
    assert read_object(raw) == read_object(text)
    assert stix.object_id_of(raw) == "identity--1"
    merged = b'{"type": "identity", "id": "identity--2", "name": "Old ACME"}'
    frame = b'{"data": %s, "context": {"sources": [%s]}}' % (text, merged)
    event = stix.read_event("1-0", "merge", frame)
    assert isinstance(event, stix.StreamEvent)
    assert event.object.json == text
    assert [source.json for source in event.merged_sources] == [merged]


# --- the envelope and its object in one pass (``read_event(..., keep_json=False)``) ---------

_ENVELOPE_FIELDS: dict[str, st.SearchStrategy[str]] = {
    "type": st.sampled_from(['"create"', '"update"', "5", "null"]),
    "version": st.sampled_from(['"4"', "4"]),
    "message": st.sampled_from(['"creates an indicator"', "[]", "null"]),
    "origin": st.sampled_from(['{"referer": "init-create"}', "1"]),
    "context": st.sampled_from(
        [
            '{"patch": [{"op": "replace"}], "reverse_patch": []}',
            '{"sources": [{"type": "indicator", "id": "indicator--2", "pattern": "[a:b = 1]"}]}',
            '{"sources": [{"type": "identity"}]}',
            '{"sources": 5}',
            "null",
            "[]",
        ]
    ),
}


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """Event frames around the objects above, with envelope fields of right and wrong types."""
    names = draw(st.lists(st.sampled_from(sorted(_ENVELOPE_FIELDS)), unique=True, max_size=5))
    body = [f'"{name}":{draw(_ENVELOPE_FIELDS[name])}' for name in names]
    if draw(st.integers(0, 9)):
        body.insert(draw(st.integers(0, len(body))), '"data":' + draw(objects()).decode())
    return ("{" + ",".join(body) + "}").encode()


def _same_but_json(lean: object, full: object) -> None:
    """``lean`` (one pass) is ``full`` (two passes), except that a typed object it decoded
    itself has no JSON text."""
    if not isinstance(full, stix.StreamEvent):
        assert lean == full
        return
    assert isinstance(lean, stix.StreamEvent)
    if lean.object.json != full.object.json:
        assert lean.object.json == b""
        assert full.object.invalid is None
        assert isinstance(full.object.typed, stix.KnownObject)
    kept = msgspec.structs.replace(lean.object, json=full.object.json)
    assert msgspec.structs.replace(lean, object=kept) == full


_EVENTS = st.sampled_from(["create", "update", "delete", "merge", "heartbeat"])


@given(_EVENTS, frames())
def test_events_decode_in_one_pass_as_with_two(event: str, frame: bytes) -> None:
    lean = stix.read_event("1-0", event, frame, keep_json=False)
    _same_but_json(lean, stix.read_event("1-0", event, frame))


@given(_EVENTS, st.binary(max_size=60))
def test_any_bytes_decode_in_one_pass_as_with_two(event: str, frame: bytes) -> None:
    lean = stix.read_event("1-0", event, frame, keep_json=False)
    _same_but_json(lean, stix.read_event("1-0", event, frame))


def test_a_typed_object_is_decoded_with_its_envelope_and_keeps_no_text() -> None:
    text = b'{"type":"indicator","id":"indicator--1","pattern":"[a:b = \'c\']"}'
    frame = b'{"data":%s,"message":"m","context":{"sources":[%s]}}' % (text, text)
    lean = stix.read_event("1-0", "merge", frame, keep_json=False)
    assert isinstance(lean, stix.StreamEvent)
    assert lean.object.json == b""
    assert isinstance(lean.object.typed, stix.Indicator)
    # Merge sources are read as alone, text kept (the planner needs only their ids).
    assert [source.json for source in lean.merged_sources] == [text]
    full = stix.read_event("1-0", "merge", frame)
    assert isinstance(full, stix.StreamEvent)
    assert full.object.json == text
    _same_but_json(lean, full)


def test_an_object_without_a_typed_view_keeps_its_text() -> None:
    text = b'{"type":"report","id":"report--1"}'
    lean = stix.read_event("1-0", "create", b'{"data":%s}' % text, keep_json=False)
    assert isinstance(lean, stix.StreamEvent)
    assert lean.object.json == text


def test_frames_msgspec_cannot_read_fail_alike_in_one_pass() -> None:
    deep = b'{"type":"identity","id":"identity--1","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    surrogate = '{"data":{"type":"identity","id":"identity--1","name":"\ud800"}}'
    for frame in (b'{"data":%s}' % deep, surrogate):
        lean = stix.read_event("1-0", "create", frame, keep_json=False)
        assert isinstance(lean, DecodeError)
        assert lean == stix.read_event("1-0", "create", frame)
