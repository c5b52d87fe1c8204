"""`elastic-connector map`: bundle / stream events in, `_bulk` NDJSON out, no network."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Protocol

import msgspec
import pytest
from elasticsearch import Elasticsearch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from elastic_connector.cli import main
from elastic_connector.core.config import Mode
from elastic_connector.core.stix import OPENCTI_EXTENSION
from elastic_connector.shell.daemon import index_mappings
from elastic_connector.shell.index_setup import ensure_setup

NOW = "2025-06-01T00:00:00+00:00"
RED = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"
AMBER = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"


def _indicator(number: int, pattern: str, **fields: object) -> dict[str, object]:
    obj: dict[str, object] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--00000000-0000-4000-8000-{number:012d}",
        "name": f"indicator {number}",
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": "2025-01-01T00:00:00Z",
        "extensions": {OPENCTI_EXTENSION: {"id": f"internal-{number}"}},
    }
    obj.update(fields)
    return obj


BUNDLE = {
    "type": "bundle",
    "id": "bundle--1",
    "objects": [
        _indicator(1, "[ipv4-addr:value = '198.51.100.7']", object_marking_refs=[AMBER]),
        _indicator(2, "[url:value = 'https://evil.example/a?b=c']"),
        _indicator(3, "[ipv4-addr:value = '203.0.113.9']", object_marking_refs=[RED]),
        {"type": "malware", "id": "malware--1", "name": "ignored in ecs mode", "is_family": True},
    ],
}


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> Invoke:
    """Runs the CLI in a clean environment; returns (exit code, stdout bytes, stderr text)."""
    for name in list(os.environ):
        if name.startswith(("OPENCTI_", "CONNECTOR_", "ELASTICSEARCH_", "CLOUD_", "SIGHTINGS_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str, stdin: bytes | None = None) -> tuple[int, bytes, str]:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = main(["map", *args])
        captured = capsysbinary.readouterr()
        return code, captured.out, captured.err.decode()

    return invoke


class Invoke(Protocol):
    def __call__(self, *args: str, stdin: bytes | None = None) -> tuple[int, bytes, str]: ...


def _lines(out: bytes) -> list[dict[str, object]]:
    return [msgspec.json.decode(line, type=dict[str, object]) for line in out.splitlines()]


def _text_lines(text: str) -> list[str]:
    """The lines of NDJSON text: cut at newlines only. ``str.splitlines`` also cuts at U+0085,
    U+2028 and other separators, which a JSON string may hold unescaped (a skip reason quoting
    the input does)."""
    return [line for line in text.split("\n") if line]


def _get(document: object, path: str) -> object:
    for key in path.split("."):
        assert isinstance(document, dict), (path, document)
        document = document[key]
    return document


def _write(tmp_path: Path, name: str, content: object) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_a_bundle_becomes_bulk_ndjson(run: Invoke, tmp_path: Path) -> None:
    code, out, err = run("--now", NOW, _write(tmp_path, "b.json", BUNDLE))
    assert code == 0
    lines = _lines(out)
    assert lines[0] == {
        "index": {"_index": "logs-ti_opencti_connector.indicator", "_id": "internal-1"}
    }
    assert _get(lines[1], "threat.indicator.ip") == ["198.51.100.7"]
    assert lines[2] == {
        "index": {"_index": "logs-ti_opencti_connector.indicator", "_id": "internal-2"}
    }
    assert _get(lines[3], "threat.indicator.url.full") == ["https://evil.example/a?b=c"]
    assert lines[4] == {
        "delete": {"_index": "logs-ti_opencti_connector.indicator", "_id": "internal-3"}
    }
    assert len(lines) == 5
    skips = [json.loads(line) for line in err.splitlines()]
    assert skips == [{"skip": "marked TLP:RED, above max_tlp TLP:AMBER+STRICT", "id": "internal-3"}]


def test_the_policy_follows_the_same_config_as_the_daemon(
    run: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONNECTOR_MAX_TLP", "TLP:GREEN")
    code, out, err = run("--now", NOW, _write(tmp_path, "b.json", BUNDLE))
    assert code == 0
    deleted = [_get(line, "delete._id") for line in _lines(out) if "delete" in line]
    assert deleted == ["internal-1", "internal-3"]
    assert "above max_tlp TLP:GREEN" in err


def test_stream_events_as_ndjson_with_a_malformed_line(run: Invoke) -> None:
    events = [
        {
            "id": "1-0",
            "event": "create",
            "data": {
                "type": "create",
                "data": _indicator(1, "[domain-name:value = 'evil.example']"),
            },
        },
        "this is not json",
        {
            "id": "2-0",
            "event": "update",
            "data": json.dumps(
                {"type": "update", "data": _indicator(1, "[domain-name:value = 'other.example']")}
            ),
        },
        {
            "id": "3-0",
            "event": "delete",
            "data": {"type": "delete", "data": _indicator(1, "[x:y = 'z']")},
        },
    ]
    text = "\n".join(e if isinstance(e, str) else json.dumps(e) for e in events) + "\n"
    code, out, err = run("--now", NOW, stdin=text.encode())
    assert code == 0
    lines = _lines(out)
    assert _get(lines[1], "threat.indicator.url.domain") == ["evil.example"]
    assert _get(lines[3], "threat.indicator.url.domain") == ["other.example"]
    assert lines[4] == {
        "delete": {"_index": "logs-ti_opencti_connector.indicator", "_id": "internal-1"}
    }
    skip = json.loads(err.splitlines()[0])
    assert skip["id"] == "line-2"
    assert skip["skip"].startswith("not a stream event")


def test_a_recovery_frame_without_type_or_scope_is_mapped(run: Invoke) -> None:
    # The issue's repro: the platform's recovery replay (and its dependency frames) carry only
    # {data, message, origin, version}; the SSE event name is the kind.
    indicator = _indicator(1, "[ipv4-addr:value = '198.51.100.7']")
    recovery = {"data": indicator, "message": "creates", "origin": {"referer": "init-create"}}
    lines = [
        {"id": "1700000000000-0", "event": "create", "data": {**recovery, "version": "4"}},
        {
            "id": "1700000000000-1",
            "event": "create",
            "data": {**recovery, "version": "4", "type": "create", "scope": "external"},
        },
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    code, out, err = run("--now", NOW, stdin=text.encode())
    assert code == 0
    assert err == ""
    documents = _lines(out)
    assert [line.get("index") for line in documents[::2]] == [
        {"_index": "logs-ti_opencti_connector.indicator", "_id": "internal-1"}
    ] * 2
    assert _get(documents[1], "threat.indicator.ip") == ["198.51.100.7"]


def test_output_is_deterministic_for_a_given_now(run: Invoke, tmp_path: Path) -> None:
    path = _write(tmp_path, "b.json", BUNDLE)
    first = run("--now", NOW, path)
    second = run("--now", NOW, path)
    assert first == second


@pytest.mark.parametrize("content", ["\x00\x01 binary garbage", '{"type": "bundle", "objects": 5}'])
def test_unreadable_input_exits_2_with_one_line(run: Invoke, tmp_path: Path, content: str) -> None:
    code, out, err = run(_write(tmp_path, "bad.json", content))
    assert code == 2
    assert out == b""
    assert len(err.strip().splitlines()) == 1


def test_a_missing_file_exits_2(run: Invoke, tmp_path: Path) -> None:
    code, _out, err = run(str(tmp_path / "nope.json"))
    assert code == 2
    assert "nope.json" in err


def test_bad_config_exits_2_naming_the_variable(
    run: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONNECTOR_MAX_TLP", "TLP:PURPLE")
    monkeypatch.setenv("ELASTICSEARCH_PASSWORD", "s3cret-password-value")
    code, out, err = run(_write(tmp_path, "b.json", BUNDLE))
    assert code == 2
    assert out == b""
    assert "CONNECTOR_MAX_TLP" in err
    assert "s3cret-password-value" not in err


def test_the_output_is_a_valid_bulk_body_for_the_real_index(
    run: Invoke,
    tmp_path: Path,
    es_client: Elasticsearch,
    es_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = f"logs-ti_{es_prefix}.indicator"
    ensure_setup(es_client, index=index, mappings=index_mappings(Mode.ECS))
    monkeypatch.setenv("ELASTICSEARCH_INDEX", index)
    code, out, _err = run("--now", NOW, _write(tmp_path, "b.json", BUNDLE))
    assert code == 0
    # The raw NDJSON goes to _bulk as is, the way `curl --data-binary @out.ndjson` would send it.
    response = es_client.perform_request(
        "POST",
        "/_bulk",
        params={"refresh": "true"},
        headers={"content-type": "application/x-ndjson", "accept": "application/json"},
        body=out,
    ).body
    statuses = [next(iter(item.values()))["status"] for item in response["items"]]
    # Two documents created, and the withheld one deleted (absent already: 404 is fine).
    assert statuses == [201, 201, 404]
    hits = es_client.search(index=index, query={"match_all": {}}, size=10)["hits"]["hits"]
    assert sorted(hit["_id"] for hit in hits) == ["internal-1", "internal-2"]


# --- input forms (issue 12, item 7) ------------------------------------------------------------

CUSTOM_RED = "marking-definition--11111111-1111-4111-8111-111111111111"
UNREADABLE_TLP = {
    "type": "marking-definition",
    "spec_version": "2.1",
    "id": CUSTOM_RED,
    "definition_type": "TLP",
    "definition": {"TLP": "TLP:RED"},
}


def _index_ids(out: bytes) -> list[object]:
    return [_get(line, "index._id") for line in _lines(out) if "index" in line]


def test_a_pretty_printed_single_object(run: Invoke, tmp_path: Path) -> None:
    text = json.dumps(_indicator(1, "[ipv4-addr:value = '198.51.100.7']"), indent=2)
    code, out, err = run("--now", NOW, _write(tmp_path, "o.json", text))
    assert (code, err) == (0, "")
    assert _index_ids(out) == ["internal-1"]


@pytest.mark.parametrize("indent", [None, 2], ids=["compact", "pretty"])
def test_a_json_array_of_objects_as_the_platform_stores_fixtures(
    run: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, indent: int | None
) -> None:
    monkeypatch.setenv("CONNECTOR_MAX_TLP", "TLP:RED")
    objects = [
        _indicator(1, "[ipv4-addr:value = '198.51.100.7']", object_marking_refs=[CUSTOM_RED]),
        _indicator(2, "[domain-name:value = 'evil.example']"),
        UNREADABLE_TLP,  # after the indicator that uses it: markings are read first
    ]
    code, out, err = run(
        "--now", NOW, _write(tmp_path, "a.json", json.dumps(objects, indent=indent))
    )
    assert (code, err) == (0, "")
    lines = _lines(out)
    assert _index_ids(out) == ["internal-1", "internal-2"]
    assert _get(lines[1], "threat.indicator.marking.tlp") == "RED"


@pytest.mark.parametrize("form", ["bundle", "ndjson"])
def test_a_utf8_byte_order_mark_is_ignored(run: Invoke, tmp_path: Path, form: str) -> None:
    if form == "bundle":
        text = json.dumps(BUNDLE, indent=1)
    else:
        event = {"type": "create", "data": _indicator(2, "[ipv4-addr:value = '198.51.100.9']")}
        text = json.dumps({"id": "1-0", "event": "create", "data": event}) + "\n"
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    code, out, _err = run("--now", NOW, str(path))
    assert code == 0
    assert "internal-2" in _index_ids(out)


# --- TLP fails closed in map too (item 1) --------------------------------------------------------


@pytest.mark.parametrize("mode", ["ecs", "stix"])
@pytest.mark.parametrize(
    "marking",
    [
        UNREADABLE_TLP,
        {**UNREADABLE_TLP, "definition": None, "name": "TLP:RED-INTERNAL"},
        {**UNREADABLE_TLP, "definition": None, "name": "TLP:TEST"},
    ],
    ids=["definition.TLP", "RED-INTERNAL", "TEST"],
)
def test_the_issue_markings_are_never_exported_at_tlp_clear(
    run: Invoke,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    marking: dict[str, object],
) -> None:
    monkeypatch.setenv("CONNECTOR_MAX_TLP", "TLP:CLEAR")
    monkeypatch.setenv("CONNECTOR_MODE", mode)
    indicator = _indicator(
        1, "[ipv4-addr:value = '198.51.100.7']", object_marking_refs=[CUSTOM_RED]
    )
    bundle = {"type": "bundle", "id": "bundle--1", "objects": [marking, indicator]}
    code, out, err = run("--now", NOW, _write(tmp_path, "b.json", bundle))
    assert code == 0
    assert "internal-1" not in _index_ids(out)
    assert "internal-1" in [_get(line, "delete._id") for line in _lines(out) if "delete" in line]
    assert "internal-1" in err


# --- bad input: skips name the object, no traceback (items 2 and 3) ---------------------------


def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deep_nesting_in_a_bundle_skips_that_object_only(
    run: Invoke, tmp_path: Path, depth: int
) -> None:
    deep = json.dumps(_indicator(1, "[ipv4-addr:value = '198.51.100.7']", x_deep="@@"))
    deep = deep.replace('"@@"', _deep(depth))
    good = json.dumps(_indicator(2, "[ipv4-addr:value = '198.51.100.8']"))
    text = '{"type":"bundle","id":"bundle--1","objects":[' + deep + "," + good + "]}"
    code, out, err = run("--now", NOW, _write(tmp_path, "deep.json", text))
    assert code == 0
    assert _index_ids(out) == ["internal-2"]
    (skip,) = [json.loads(line) for line in err.splitlines()]
    assert skip == {"skip": "JSON nested too deeply", "id": _indicator(1, "")["id"]}


def test_deep_nesting_in_an_ndjson_line_is_a_skip(run: Invoke) -> None:
    envelope = json.dumps({"type": "create", "data": _indicator(1, "[x:y = 'z']", x_deep="@@")})
    line = '{"id":"1-0","event":"create","data":' + envelope.replace('"@@"', _deep(2_000)) + "}"
    deep_data = '{"id":"2-0","event":"create","data":' + _deep(5_000) + "}"
    code, out, err = run("--now", NOW, stdin=(line + "\n" + deep_data + "\n").encode())
    assert (code, out) == (0, b"")
    skips = [json.loads(line) for line in err.splitlines()]
    assert [s["id"] for s in skips] == [_indicator(1, "")["id"], "2-0"]
    assert all("nested too deeply" in s["skip"] for s in skips)


def test_a_wrong_typed_field_names_the_object_not_the_bundle_position(
    run: Invoke, tmp_path: Path
) -> None:
    bad = _indicator(1, "[ipv4-addr:value = '198.51.100.7']", confidence="high")
    bundle = {"type": "bundle", "id": "bundle--1", "objects": [bad]}
    code, _out, err = run("--now", NOW, _write(tmp_path, "b.json", bundle))
    assert code == 0
    (skip,) = [json.loads(line) for line in err.splitlines()]
    assert skip["id"] == bad["id"]
    assert "$.data.confidence" in skip["skip"]


def test_stix_mode_indexes_an_object_with_a_mistyped_field_without_it(
    run: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONNECTOR_MODE", "stix")
    bad = _indicator(1, "[ipv4-addr:value = '198.51.100.7']", confidence="high")
    bad["pattern"] = 5
    bundle = {"type": "bundle", "id": "bundle--1", "objects": [bad]}
    code, out, err = run("--now", NOW, _write(tmp_path, "b.json", bundle))
    assert (code, err) == (0, "")
    document = _lines(out)[1]
    assert "confidence" not in document  # the typed field is left out...
    assert _get(document, "stix.confidence") == "high"  # ...the object is kept as received


# --- any input: never a traceback; skips name their object (items 2 and 3) ---------------------

_KEYS = st.sampled_from(
    [
        "type",
        "id",
        "pattern",
        "data",
        "event",
        "objects",
        "object_marking_refs",
        "name",
        "definition",
        "definition_type",
        "revoked",
        "confidence",
        "extensions",
        "x",
        "created",
    ]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["indicator", "bundle", "create", "marking-definition", "identity"])
    | st.sampled_from(["[ipv4-addr:value = '1.2.3.4']", "TLP:RED", "indicator--1", "@@DEEP@@"])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=6),
    max_leaves=25,
)


@st.composite
def any_input(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, or JSON-like text in any layout (a bundle, an array, NDJSON, a single
    object, pretty-printed or not), cut, nested deep somewhere, behind a BOM."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.binary(max_size=600))
    items = draw(st.lists(_VALUES, min_size=1, max_size=4))
    shape = draw(st.sampled_from(["values", "bundle", "array", "events"]))
    if shape == "bundle":
        items = [{"type": "bundle", "id": "bundle--1", "objects": items}]
    elif shape == "array":
        items = [items]
    elif shape == "events":
        items = [{"id": f"{n}-0", "event": "create", "data": item} for n, item in enumerate(items)]
    indent = draw(st.sampled_from([None, 1, 4]))
    text = "\n".join(json.dumps(item, indent=indent) for item in items)
    if draw(st.booleans()):
        # Something nested deeper than the interpreter's recursion limit, somewhere.
        depth = draw(st.sampled_from([10, 1_000, 3_000, 50_000]))
        opener = draw(st.sampled_from(["[", '{"a":']))
        closer = "]" if opener == "[" else "}"
        deep = opener * depth + "1" + closer * depth
        spots = [i for i, char in enumerate(text) if char in ":[,"]
        spot = draw(st.sampled_from(spots)) + 1 if spots else 0
        text = text[:spot] + deep + ("," if spot and text[spot - 1] in "[," else "") + text[spot:]
    data = text.encode()
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return data


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=any_input())
@example(data=b'{"data": "\\u0085"}')  # a skip reason quoting U+0085, which splitlines cuts at
def test_map_over_any_bytes_never_prints_a_traceback(
    run: Invoke, tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "input"
    path.write_bytes(data)
    code, _out, err = run("--now", NOW, str(path))  # an exception would propagate here
    assert code in (0, 2)
    assert "Traceback" not in err
    assert "internal error" not in err
    for line in _text_lines(err):
        if not line.startswith("elastic-connector map: "):
            assert set(json.loads(line)) == {"skip", "id"}, line


_FIELDS = st.dictionaries(
    st.sampled_from(
        [
            "pattern",
            "pattern_type",
            "revoked",
            "confidence",
            "labels",
            "valid_until",
            "name",
            "object_marking_refs",
            "kill_chain_phases",
            "extensions",
            "created_by_ref",
            "x_y",
        ]
    ),
    _VALUES,
    max_size=4,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    objects=st.lists(
        st.tuples(
            st.sampled_from(["indicator", "identity", "marking-definition", "malware"]), _FIELDS
        ),
        min_size=1,
        max_size=5,
    ),
    mode=st.sampled_from(["ecs", "stix"]),
)
def test_every_skip_names_its_object(
    run: Invoke,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    objects: list[tuple[str, dict[str, object]]],
    mode: str,
) -> None:
    monkeypatch.setenv("CONNECTOR_MODE", mode)
    members = [
        {**fields, "type": kind, "id": f"{kind}--{number:08d}"}
        for number, (kind, fields) in enumerate(objects)
    ]
    bundle = {"type": "bundle", "id": "bundle--1", "objects": members}
    code, _out, err = run("--now", NOW, _write(tmp_path, "b.json", bundle))
    assert code == 0
    ids = {str(m["id"]) for m in members}  # no OpenCTI id: the document id is the STIX id
    for line in _text_lines(err):
        skip = json.loads(line)
        assert skip["id"] in ids, skip


def test_the_export_filters_and_lifetime_apply_as_in_the_daemon(
    run: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONNECTOR_MAX_TLP", "TLP:RED")
    monkeypatch.setenv("CONNECTOR_LABELS_EXCLUDE", "Internal")
    monkeypatch.setenv("CONNECTOR_INDICATOR_TTL", "200d")
    bundle = {
        "type": "bundle",
        "id": "bundle--2",
        "objects": [
            *BUNDLE["objects"][:3],
            _indicator(4, "[domain-name:value = 'x.example']", labels=["internal"]),
            _indicator(5, "[domain-name:value = 'old.example']", valid_from="2024-01-01T00:00:00Z"),
        ],
    }
    code, out, err = run("--now", NOW, _write(tmp_path, "b.json", bundle))
    assert code == 0
    lines = _lines(out)
    deleted = [_get(line, "delete._id") for line in lines if "delete" in line]
    assert deleted == ["internal-4", "internal-5"]
    assert _get(lines[1], "opencti.indicator.expires_at") == "2025-07-20T00:00:00Z"
    skips = [json.loads(line) for line in err.splitlines()]
    assert skips[0] == {"skip": "label 'internal' is in labels_exclude", "id": "internal-4"}
    assert "indicator_ttl" in skips[1]["skip"]
