"""Lookup rows and dead letters through the real write path, against Elasticsearch (noida-db).

noida-db (like Elasticsearch before 8.18) refuses ``index.mode: lookup``, so the row tests use a
standard index with the lookup mappings, created as an administrator would pre-create it: the
rows the connector writes there are the same, only ES|QL cannot join on them. The ES|QL queries
of docs/esql-lookup.md run in the ``real_cluster`` tests at the end.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec
import pytest
from elasticsearch import Elasticsearch

from elastic_connector.core.actions import Delete, Guard, Upsert
from elastic_connector.core.config import ElasticsearchSettings, Mode
from elastic_connector.core.elastic.dead_letters import DEAD_LETTER_MAPPINGS
from elastic_connector.core.elastic.lookup_rows import LOOKUP_MAPPINGS, rows
from elastic_connector.core.events import PlannerState, PlanSettings, plan_frame
from elastic_connector.core.indicators import INDICATOR_MAPPINGS
from elastic_connector.core.policy import PolicySettings
from elastic_connector.core.policy.tlp import Tlp
from elastic_connector.core.stix import OPENCTI_EXTENSION
from elastic_connector.demo.opencti_standin import make_indicator
from elastic_connector.shell.bulk import BulkResult, BulkWriter, WriteAction
from elastic_connector.shell.elastic import PermanentElasticsearchError
from elastic_connector.shell.index_setup import SetupError, ensure_setup
from elastic_connector.shell.lookup_index import ensure_lookup_index
from elastic_connector.shell.metrics import Metrics
from elastic_connector.shell.outputs import OutputWriter
from elastic_connector.shell.reconcile import BoundedWriter
from tests.reliability.pipeline_run import NOW, run_pipeline
from tests.reliability.workload import Event, envelope, generate, updated

ESQL_DOC: Final = Path(__file__).resolve().parents[2] / "docs" / "esql-lookup.md"


def _all(client: Elasticsearch, index: str) -> dict[str, Any]:
    client.indices.refresh(index=index)
    hits = client.search(index=index, size=10_000, query={"match_all": {}}).body["hits"]["hits"]
    return {hit["_id"]: hit["_source"] for hit in hits}


@pytest.fixture
def indices(es_client: Elasticsearch, es_prefix: str) -> tuple[str, str, str]:
    main, lookup, dead = f"{es_prefix}.ti", f"{es_prefix}.lookup", f"{es_prefix}.dead"
    es_client.indices.create(index=main, mappings=dict(INDICATOR_MAPPINGS))
    es_client.indices.create(index=lookup, mappings=dict(LOOKUP_MAPPINGS))
    ensure_setup(es_client, index=dead, mappings=DEAD_LETTER_MAPPINGS)
    return main, lookup, dead


def _outputs(
    client: Elasticsearch, main: str, lookup: str | None, dead: str | None
) -> Callable[[BulkWriter, Metrics], OutputWriter]:
    def build(documents: BulkWriter, metrics: Metrics) -> OutputWriter:
        return OutputWriter(
            documents=documents,
            client=client,
            index=main,
            lookup=None if lookup is None else (BulkWriter(client, require_alias=False), lookup),
            dead_letters=None if dead is None else (BulkWriter(client, require_alias=True), dead),
            metrics=metrics,
            clock=lambda: NOW,
        )

    return build


def test_lookup_rows_stay_in_step_with_the_indicators_through_a_history(
    es_client: Elasticsearch, indices: tuple[str, str, str]
) -> None:
    main, lookup, _ = indices
    # Creates, updates that change the pattern's value and the TLP (some to TLP:RED, retracted
    # under max_tlp AMBER), deletes and merges, written in batches that cut through them.
    events = generate(11, 160, tag="lk", population=30, deletes=0.1, merges=0.03)
    settings = PlanSettings(mode=Mode.ECS, index=main, policy=PolicySettings(max_tlp=Tlp.AMBER))
    run_pipeline(
        events, es_client, settings, batch=7, outputs=_outputs(es_client, main, lookup, None)
    )

    documents = _all(es_client, main)
    expected: dict[str, Any] = {}
    for doc_id, document in documents.items():
        expected.update(
            {row: msgspec.json.decode(body) for row, body in rows(doc_id, document).items()}
        )
    assert len(documents) > 5
    assert expected, "the history left no value to look up"
    assert _all(es_client, lookup) == expected


def test_a_refused_document_keeps_its_rows_and_becomes_a_dead_letter(
    es_client: Elasticsearch, es_prefix: str, indices: tuple[str, str, str]
) -> None:
    _, lookup, dead = indices
    # An indicator index whose mapping refuses a score (as a hand-edited mapping would).
    main = f"{es_prefix}.strict"
    es_client.indices.create(
        index=main,
        mappings={"properties": {"opencti": {"properties": {"indicator": {"properties": {
            "score": {"type": "ip"}}}}}}},
    )  # fmt: skip
    first = make_indicator("[domain-name:value = 'kept.example']", score=None)
    changed = updated(first, 1_800_000_000_500, pattern="[domain-name:value = 'refused.example']")
    extensions = changed["extensions"]
    assert isinstance(extensions, dict)
    extensions[OPENCTI_EXTENSION]["score"] = 80
    events = [Event("create", first), Event("update", changed)]
    settings = PlanSettings(mode=Mode.ECS, index=main)
    _, metrics, _, ids = run_pipeline(
        events, es_client, settings, batch=1, outputs=_outputs(es_client, main, lookup, dead)
    )

    document_id = next(iter(_all(es_client, main)))
    looked_up = _all(es_client, lookup)
    assert [row["threat"]["indicator"]["url"]["domain"] for row in looked_up.values()] == [
        "kept.example"
    ]
    (letter,) = _all(es_client, dead).values()
    target = letter["opencti"]["dead_letter"]
    assert (target["id"], target["index"], target["status"]) == (document_id, main, 400)
    assert target["stream_position"] == ids[1]
    assert "refused.example" in letter["event"]["original"]
    assert msgspec.json.decode(letter["event"]["original"])["opencti"]["indicator"]["score"] == 80
    assert letter["error"]["message"]
    assert metrics.rejected._value.get() == 1


# --- the lookup index itself ----------------------------------------------------------------


def test_a_cluster_without_lookup_mode_is_named_at_setup(
    es_client: Elasticsearch, es_prefix: str
) -> None:
    # noida-db answers as Elasticsearch before 8.18 does: no such index mode.
    with pytest.raises(SetupError, match=r"index\.mode lookup, which needs Elasticsearch 8\.18"):
        ensure_lookup_index(es_client, f"{es_prefix}.lookup", main_index="ti", create=True)


def test_setup_of_an_existing_index_checks_its_mode_and_brings_its_mapping_up_to_date(
    es_client: Elasticsearch, es_prefix: str
) -> None:
    name = f"{es_prefix}.lookup"
    with pytest.raises(SetupError, match="reduced_privileges"):
        ensure_lookup_index(es_client, name, main_index="ti", create=False)
    with pytest.raises(SetupError, match="is the indicator index"):
        ensure_lookup_index(es_client, name, main_index=name, create=True)
    es_client.indices.create(index=name)
    report = ensure_lookup_index(es_client, name, main_index="ti", create=True)
    assert not report.lookup_mode
    assert report.mapping_updated
    assert "LOOKUP JOIN refuses it" in report.notes[0]
    mapped = es_client.indices.get_mapping(index=name).body[name]["mappings"]
    assert mapped["properties"]["threat"]["properties"]["indicator"]["properties"]["ip"] == {
        "type": "ip"
    }
    again = ensure_lookup_index(es_client, name, main_index="ti", create=False)
    assert not again.mapping_updated


# --- the documented ES|QL queries, on a real cluster -------------------------------------------


def _documented_queries() -> list[str]:
    return re.findall(r"```esql\n(.*?)```", ESQL_DOC.read_text(encoding="utf-8"), re.S)


def test_the_page_documents_one_query_per_main_observable_type() -> None:
    joined = [re.search(r"LOOKUP JOIN \S+ ON (\S+)", q) for q in _documented_queries()]
    assert [match[1] for match in joined if match] == [
        "threat.indicator.ip",
        "threat.indicator.ip",
        "threat.indicator.url.domain",
        "threat.indicator.url.full",
        "threat.indicator.file.hash.sha256",
    ]


@pytest.mark.real_cluster
def test_the_documented_queries_find_the_events_of_each_indicator(
    es_client: Elasticsearch, es_prefix: str
) -> None:
    main, lookup, events = f"{es_prefix}.ti", f"{es_prefix}.lookup", f"{es_prefix}.events"
    es_client.indices.create(index=main, mappings=dict(INDICATOR_MAPPINGS))
    ensure_lookup_index(es_client, lookup, main_index=main, create=True)
    sha256 = "a" * 64
    patterns = {
        "ip": "[ipv4-addr:value = '198.51.100.7']",
        "domain": "[domain-name:value = 'evil.example']",
        "url": "[url:value = 'http://evil.example/payload']",
        "hash": f"[file:hashes.'SHA-256' = '{sha256}']",
    }
    history = [Event("create", make_indicator(pattern)) for pattern in patterns.values()]
    settings = PlanSettings(mode=Mode.ECS, index=main)
    run_pipeline(history, es_client, settings, 4, outputs=_outputs(es_client, main, lookup, None))
    es_client.indices.create(
        index=events,
        mappings={"properties": {
            "@timestamp": {"type": "date"}, "source": {"properties": {"ip": {"type": "ip"}}},
            "destination": {"properties": {"ip": {"type": "ip"}}},
            "dns": {"properties": {"question": {"properties": {"name": {"type": "keyword"}}}}},
            "url": {"properties": {"full": {"type": "wildcard"}}},
            "file": {"properties": {"path": {"type": "keyword"},
                                    "hash": {"properties": {"sha256": {"type": "keyword"}}}}},
        }},
    )  # fmt: skip
    sample: list[dict[str, Any]] = [
        {"source": {"ip": "198.51.100.7"}, "destination": {"ip": "10.0.0.1"}},
        {"source": {"ip": "10.0.0.2"}, "destination": {"ip": "198.51.100.7"}},
        {"dns": {"question": {"name": "evil.example"}}},
        {"url": {"full": "http://evil.example/payload"}},
        {"file": {"path": "/tmp/x", "hash": {"sha256": sha256}}},
        {"source": {"ip": "10.9.9.9"}, "dns": {"question": {"name": "good.example"}}},
    ]  # fmt: skip
    for n, event in enumerate(sample):
        es_client.index(index=events, id=str(n), document={"@timestamp": "2025-06-01", **event})
    es_client.indices.refresh(index=f"{events},{lookup}")

    names: dict[str, object] = {}
    for query in _documented_queries():
        text = query.replace("FROM logs-*", f"FROM {events}").replace("opencti-lookup", lookup)
        answer = es_client.esql.query(query=text).body
        columns = [column["name"] for column in answer["columns"]]
        matched = [dict(zip(columns, row, strict=True)) for row in answer["values"]]
        assert len(matched) == 1, (text, matched)
        joined_on = re.search(r"ON (\S+)", text)
        assert joined_on is not None
        names[joined_on[1]] = matched[0]["threat.indicator.name"]
    assert set(names.values()) == set(patterns.values())


class _FailsOnce(BulkWriter):
    """The first write is applied, then fails (the acknowledgement lost: a timeout, a crash)."""

    def __init__(self, client: Elasticsearch) -> None:
        super().__init__(client, require_alias=False)
        self.failed = False

    def write(self, actions: Sequence[WriteAction]) -> BulkResult:
        result = super().write(actions)
        if not self.failed:
            self.failed = True
            raise PermanentElasticsearchError("no answer")
        return result


def test_a_batch_retried_after_its_rows_were_written_leaves_no_stale_row(
    es_client: Elasticsearch, indices: tuple[str, str, str]
) -> None:
    main, lookup, _ = indices
    settings = PlanSettings(mode=Mode.ECS, index=main)
    first = make_indicator("[domain-name:value = 'old.example']")
    changed = updated(first, 1_800_000_000_500, pattern="[domain-name:value = 'new.example']")
    outputs = _outputs(es_client, main, lookup, None)
    run_pipeline([Event("create", first)], es_client, settings, 1, outputs)
    documents = _FailsOnce(es_client)
    writer = outputs(documents, Metrics())
    action = plan_frame(
        "2-0", "update", envelope(Event("update", changed)), PlannerState(), settings, NOW
    ).actions[0]
    assert isinstance(action, Upsert)
    with pytest.raises(PermanentElasticsearchError):
        writer.write([action], {})
    # The pipeline keeps the batch and writes it again.
    writer.write([action], {})
    rows_now = _all(es_client, lookup).values()
    assert [row["threat"]["indicator"]["url"]["domain"] for row in rows_now] == ["new.example"]


def test_after_a_rollover_the_rows_of_every_copy_are_found(
    es_client: Elasticsearch, es_prefix: str, indices: tuple[str, str, str]
) -> None:
    _, lookup, _ = indices
    alias = f"{es_prefix}.rolled"
    es_client.indices.create(index=f"{alias}-000001", aliases={alias: {"is_write_index": False}})
    es_client.indices.create(index=f"{alias}-000002", aliases={alias: {"is_write_index": True}})
    first = make_indicator("[domain-name:value = 'first.example']")
    second = updated(first, 1_800_000_000_500, pattern="[domain-name:value = 'second.example']")
    third = updated(first, 1_800_000_000_900, pattern="[domain-name:value = 'third.example']")
    settings = PlanSettings(mode=Mode.ECS, index=alias)

    def upsert(stix: dict[str, object], event_id: str) -> Upsert:
        plan = plan_frame(
            event_id, "update", envelope(Event("update", stix)), PlannerState(), settings, NOW
        )
        (action,) = plan.actions
        assert isinstance(action, Upsert)
        return action

    older = upsert(first, "1-0")
    # A copy left in the older index by the rollover, the live one in the write index.
    es_client.index(
        index=f"{alias}-000001", id=older.id, document=msgspec.json.decode(older.document)
    )
    writer = _outputs(es_client, alias, lookup, None)(
        BulkWriter(es_client, require_alias=True), Metrics()
    )
    writer.write([upsert(second, "2-0")], {})
    es_client.indices.refresh(index=alias)
    writer.write([upsert(third, "3-0")], {})
    rows_now = _all(es_client, lookup).values()
    assert [row["threat"]["indicator"]["url"]["domain"] for row in rows_now] == ["third.example"]


def test_reconciliation_repairs_move_the_rows_and_a_repair_a_newer_write_won_over_does_not(
    es_client: Elasticsearch, es_settings: ElasticsearchSettings, indices: tuple[str, str, str]
) -> None:
    main, lookup, _ = indices
    settings = PlanSettings(mode=Mode.ECS, index=main)

    def upsert(pattern: str, stix: dict[str, object] | None = None) -> Upsert:
        source = stix if stix is not None else make_indicator(pattern)
        plan = plan_frame(
            "1-0", "create", envelope(Event("create", source)), PlannerState(), settings, NOW
        )
        (action,) = plan.actions
        assert isinstance(action, Upsert)
        return action

    def version(doc_id: str) -> Guard:
        got = es_client.get(index=main, id=doc_id)
        return Guard(got["_seq_no"], got["_primary_term"])

    orphan = upsert("[domain-name:value = 'orphan.example']")
    raced = make_indicator("[domain-name:value = 'read.example']")
    stream = _outputs(es_client, main, lookup, None)(
        BulkWriter(es_client, require_alias=False), Metrics()
    )
    read = upsert("", raced)
    stream.write([orphan, read], {})
    orphan_read, raced_read = version(orphan.id), version(read.id)
    # The stream writes a newer state of `raced` after the reconciliation read the index.
    newer = updated(raced, 1_800_000_000_500, pattern="[domain-name:value = 'stream.example']")
    stream.write([upsert("", newer)], {})
    missing = upsert("[domain-name:value = 'missing.example']")
    stale = upsert(
        "", updated(raced, 1_800_000_000_100, pattern="[domain-name:value = 'x.example']")
    )

    repairs = BoundedWriter(
        es_client,
        es_settings,
        require_alias=False,
        stop=threading.Event(),
        outputs=stream.with_documents,
    )
    result = repairs(
        [
            Delete(main, orphan.id, "deleted", "gone from OpenCTI", guard=orphan_read),
            msgspec.structs.replace(stale, guard=raced_read),
            msgspec.structs.replace(missing, guard=Guard()),
        ]
    )

    assert (result.written, result.deleted, result.conflicts) == (1, 1, 1)
    documents = _all(es_client, main)
    expected: dict[str, Any] = {}
    for doc_id, document in documents.items():
        expected.update(
            {row: msgspec.json.decode(body) for row, body in rows(doc_id, document).items()}
        )
    looked_up = _all(es_client, lookup)
    assert looked_up == expected
    domains = sorted(row["threat"]["indicator"]["url"]["domain"] for row in looked_up.values())
    assert domains == ["missing.example", "stream.example"]
