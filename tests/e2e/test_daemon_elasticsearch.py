"""The daemon's side of Elasticsearch: one refused document is reported and the rest proceed;
``ecs_no_signals`` never reads alerts (checked on the wire, through the faulty proxy)."""

from __future__ import annotations

import re
from collections.abc import Callable

import msgspec
from elasticsearch import Elasticsearch

from elastic_connector.core.config import ElasticsearchSettings
from elastic_connector.demo.opencti_data import make_indicator
from tests.e2e.harness import ConnectorHarness, doc_id, wait_for
from tests.support.faulty_proxy import FaultyProxy

Harnesses = Callable[..., ConnectorHarness]


def test_a_document_elasticsearch_refuses_is_reported_and_the_rest_proceed(
    e2e_harness: Harnesses, es_client: Elasticsearch
) -> None:
    connector = e2e_harness()
    # An index made by someone else, where `threat.indicator.name` is a number: a name that
    # is not one is refused by Elasticsearch (mapper_parsing_exception, per item).
    es_client.indices.create(
        index=connector.index,
        mappings={
            "properties": {
                "threat": {"properties": {"indicator": {"properties": {"name": {"type": "long"}}}}}
            }
        },
    )
    daemon = connector.start()
    assert re.search(r"WARNING .*index mapping: .*threat\.indicator\.name", daemon.output())

    first = make_indicator("[ipv4-addr:value = '192.0.2.1']", name="1001")
    refused = make_indicator("[ipv4-addr:value = '192.0.2.2']", name="not a number")
    last = make_indicator("[ipv4-addr:value = '192.0.2.3']", name="1003")
    for stix in (first, refused, last):
        connector.publish("create", stix)
    last_id = connector.standin.event_ids[-1]
    connector.wait_for_commit(last_id)

    assert sorted(connector.documents()) == sorted([doc_id(first), doc_id(last)])
    lines = [line for line in daemon.lines() if "rejected" in line]
    assert len(lines) == 1, lines
    assert f"rejected the upsert of document {doc_id(refused)} in {connector.index}" in lines[0]
    assert "(HTTP 400)" in lines[0]
    assert daemon.metric("documents_rejected") == 1
    assert daemon.metric("documents_written") == 2
    # The refusal does not hold the stream back: the position moves past it.
    assert daemon.terminate() == 0
    state = connector.saved_state()
    assert state is not None
    assert state["start_from"] == last_id


def test_ecs_no_signals_never_searches_alerts(
    e2e_harness: Harnesses, faulty_proxy: FaultyProxy, es_settings: ElasticsearchSettings
) -> None:
    connector = e2e_harness(
        "ecs_no_signals",
        env={"SIGHTINGS_POLL_INTERVAL": "0.2", "CONNECTOR_EXPIRY_SWEEP_INTERVAL": "0.2"},
    )
    connector.es_settings = msgspec.structs.replace(es_settings, hosts=(faulty_proxy.url,))
    daemon = connector.start()
    connector.publish_and_ack("create", make_indicator("[ipv4-addr:value = '192.0.2.77']"))

    # The proxy sees the background work (the sweep, every 0.2 s): several poll intervals
    # pass while we watch, and not one request touches alerts.
    def sweeps() -> int:
        return sum("_delete_by_query" in request.path for request in faulty_proxy.requests)

    wait_for(lambda: sweeps() >= 5, what="five expiry sweeps", context=daemon.tail)
    assert daemon.terminate() == 0

    paths = [f"{request.method} {request.path}" for request in faulty_proxy.requests]
    assert any("/_bulk" in path for path in paths), paths
    assert [p for p in paths if "alerts" in p or "signals" in p or "/_pit" in p] == []
    assert [p for p in paths if "/_search" in p] == []
    assert "alert" not in daemon.output().lower()
