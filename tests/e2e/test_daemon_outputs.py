"""The daemon with the ES|QL lookup index and dead letters: set up at start, rows in step with
the indicators, a refused document dead-lettered with its stream position; a cluster without
lookup mode is named at start."""

from __future__ import annotations

from collections.abc import Callable

from elasticsearch import Elasticsearch

from elastic_connector.core.elastic.lookup_rows import LOOKUP_MAPPINGS
from elastic_connector.demo.opencti_data import make_indicator
from tests.e2e.harness import ConnectorHarness, doc_id, documents_of, wait_for

Harnesses = Callable[..., ConnectorHarness]


def _domains(client: Elasticsearch, index: str) -> list[str]:
    client.indices.refresh(index=index)
    rows = documents_of(client, index).values()
    return sorted(str(row["threat"]["indicator"]["url"]["domain"]) for row in rows)  # type: ignore[index]


def test_rows_and_dead_letters_through_the_daemon(
    e2e_harness: Harnesses, es_client: Elasticsearch, es_prefix: str
) -> None:
    lookup, dead = f"{es_prefix}-lookup", f"{es_prefix}-dead"
    connector = e2e_harness(
        env={
            "ELASTICSEARCH_LOOKUP_INDEX": lookup,
            "ELASTICSEARCH_DEAD_LETTER_INDEX": dead,
            "CONNECTOR_EXPIRY_SWEEP_INTERVAL": "0.3",
        }
    )
    # noida-db has no lookup mode: the lookup index is made beforehand, as a standard index.
    es_client.indices.create(index=lookup, mappings=dict(LOOKUP_MAPPINGS))
    # An indicator index where `threat.indicator.name` is a number: other names are refused.
    es_client.indices.create(
        index=connector.index,
        mappings={"properties": {"threat": {"properties": {"indicator": {"properties": {
            "name": {"type": "long"}}}}}}},
    )  # fmt: skip
    daemon = connector.start()
    assert "is not a lookup-mode index" in daemon.output()

    kept = make_indicator("[domain-name:value = 'kept.example']", name="1")
    refused = make_indicator("[domain-name:value = 'refused.example']", name="not a number")
    gone = make_indicator("[domain-name:value = 'gone.example']", name="2")
    for stix in (kept, refused, gone):
        connector.publish("create", stix)
    refused_event = connector.standin.event_ids[1]
    connector.wait_for_commit(connector.standin.event_ids[-1])
    assert _domains(es_client, lookup) == ["gone.example", "kept.example"]

    connector.publish("delete", gone)
    connector.wait_for_commit(connector.standin.event_ids[-1])
    assert _domains(es_client, lookup) == ["kept.example"]
    # Rows go first: the refused document's row was written, then taken back.
    assert daemon.metric("lookup_rows_written") == 3
    assert daemon.metric("lookup_rows_deleted") == 2
    assert daemon.metric("dead_letters_written") == 1
    # The row of an indicator that expired while OpenCTI said nothing: the sweep removes it.
    expired = {
        "threat": {"indicator": {"url": {"domain": "expired.example"}}},
        "opencti": {"indicator": {"valid_until": "2020-01-01T00:00:00Z"}},
    }
    es_client.index(index=lookup, id="expired-row", document=expired, refresh=True)
    wait_for(
        lambda: _domains(es_client, lookup) == ["kept.example"],
        what="the sweep to remove the expired row",
        context=daemon.tail,
    )
    assert daemon.terminate() == 0

    es_client.indices.refresh(index=dead)
    (letter,) = documents_of(es_client, dead).values()
    target = letter["opencti"]["dead_letter"]  # type: ignore[index]
    assert target == {
        "id": doc_id(refused),
        "index": connector.index,
        "status": 400,
        "stream_position": refused_event,
    }


def test_a_cluster_without_lookup_mode_is_named_at_start(e2e_harness: Harnesses) -> None:
    connector = e2e_harness(env={"ELASTICSEARCH_LOOKUP_INDEX": "ectest-no-lookup-mode"})
    daemon = connector.spawn("run")
    assert daemon.wait() == 1
    assert "index.mode lookup, which needs Elasticsearch 8.18 or later" in daemon.output()
    assert "Traceback" not in daemon.output()
