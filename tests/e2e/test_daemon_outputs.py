"""The daemon with the ES|QL lookup index and dead letters: set up at start, rows in step with
the indicators, a refused document dead-lettered with its stream position; a cluster without
lookup mode is named at start."""

from __future__ import annotations

from collections.abc import Callable

from elasticsearch import Elasticsearch

from tests.e2e.harness import ConnectorHarness, doc_id
from tests.e2e.outputs_workload import (
    create_indices,
    dead_letter,
    lookup_domains,
    publish_creates,
    sweep_an_expired_row,
)

Harnesses = Callable[..., ConnectorHarness]


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
    create_indices(es_client, connector, lookup)
    daemon = connector.start()
    assert "is not a lookup-mode index" in daemon.output()

    published = publish_creates(connector)
    refused_event = connector.standin.event_ids[1]
    connector.wait_for_commit(connector.standin.event_ids[-1])
    assert lookup_domains(es_client, lookup) == ["gone.example", "kept.example"]

    connector.publish("delete", published.gone)
    connector.wait_for_commit(connector.standin.event_ids[-1])
    assert lookup_domains(es_client, lookup) == ["kept.example"]
    # Rows go first: the refused document's row was written, then taken back.
    assert daemon.metric("lookup_rows_written") == 3
    assert daemon.metric("lookup_rows_deleted") == 2
    assert daemon.metric("dead_letters_written") == 1
    sweep_an_expired_row(es_client, lookup, daemon)
    assert daemon.terminate() == 0

    assert dead_letter(es_client, dead) == {
        "id": doc_id(published.refused),
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
