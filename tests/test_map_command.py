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
    # The repro: the platform's recovery replay (and its dependency frames) carry only
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
