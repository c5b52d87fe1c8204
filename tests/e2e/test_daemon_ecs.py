"""``ecs`` mode end to end: indicators go out, indicator-match alerts come back as sightings in
OpenCTI, each alert counted once, across a restart (the poll cursor lives in the connector
state)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from elasticsearch import Elasticsearch

from elastic_connector.core.config import ElasticsearchSettings
from elastic_connector.demo.opencti_data import make_indicator
from tests.e2e.harness import ConnectorHarness, doc_id, wait_for
from tests.support.faulty_proxy import FaultyProxy

pytest.importorskip("elastic_connector.shell.alerts")

from tests.support.alerts import AlertIndices

Harnesses = Callable[..., ConnectorHarness]


def kibana_time(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def indicator_match_alert(
    *, indicator_doc: str, indicator_index: str, ip: str, space: str, age: timedelta
) -> dict[str, object]:
    """An alert as Kibana 8.x writes it for an indicator-match rule (dotted ``kibana.*`` keys,
    nested ``threat.enrichments``), created ``age`` ago."""
    created = datetime.now(UTC) - age
    return {
        "@timestamp": kibana_time(created),
        "kibana.alert.uuid": str(uuid.uuid4()),
        "kibana.alert.original_time": kibana_time(created - timedelta(seconds=30)),
        "kibana.alert.rule.type": "threat_match",
        "kibana.alert.rule.name": "Threat Intel IP Address Indicator Match",
        "kibana.alert.rule.uuid": "0c9a0e7c-1111-4a4a-8b8b-9c9c9c9c9c9c",
        "kibana.alert.workflow_status": "open",
        "kibana.space_ids": [space],
        "event.kind": "signal",
        "source": {"ip": ip},
        "host": {"name": "web-01"},
        "threat": {
            "enrichments": [
                {
                    "feed": {"name": "OpenCTI"},
                    "indicator": {"type": "ipv4-addr", "ip": ip},
                    "matched": {
                        "atomic": ip,
                        "field": "source.ip",
                        "id": indicator_doc,
                        "index": indicator_index,
                        "type": "indicator_match_rule",
                    },
                }
            ]
        },
    }


def sighting_counts(connector: ConnectorHarness) -> dict[str, int]:
    totals: dict[str, int] = {}
    for sighting in connector.standin.sightings:
        count = sighting["attribute_count"]
        assert isinstance(count, int)
        key = str(sighting["fromId"])
        totals[key] = totals.get(key, 0) + count
    return totals


def test_alerts_become_sightings_each_counted_once_across_a_restart(
    e2e_harness: Harnesses,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    es_prefix: str,
    faulty_proxy: FaultyProxy,
) -> None:
    alerts = AlertIndices(es_client, es_prefix)
    alerts.create()
    connector = e2e_harness(
        "ecs",
        env={
            "SIGHTINGS_ALERTS_INDEX": alerts.alias,
            "SIGHTINGS_POLL_INTERVAL": "0.3",
            # The alerts below are written minutes "late" (their @timestamp is in the past):
            # a settle delay shorter than their age lets them be read at once.
            "SIGHTINGS_SETTLE_DELAY": "120",
            "SIGHTINGS_IDENTITY_NAME": "Elastic SIEM (e2e)",
        },
    )
    connector.es_settings = msgspec.structs.replace(es_settings, hosts=(faulty_proxy.url,))
    run1 = connector.start()
    indicator = make_indicator("[ipv4-addr:value = '203.0.113.9']")
    connector.publish_and_ack("create", indicator)
    backing = next(iter(es_client.indices.get_alias(name=connector.index).body))

    def raise_alert(minutes_ago: int) -> None:
        alert = indicator_match_alert(
            indicator_doc=doc_id(indicator),
            indicator_index=backing,
            ip="203.0.113.9",
            space=es_prefix,
            age=timedelta(minutes=minutes_ago),
        )
        es_client.index(
            index=alerts.alerts, id=str(alert["kibana.alert.uuid"]), document=alert, refresh=True
        )

    def counted(total: int) -> Callable[[], bool]:
        return lambda: sighting_counts(connector) == {doc_id(indicator): total}

    raise_alert(minutes_ago=10)
    wait_for(counted(1), what="one sighting of one alert", context=run1.tail)
    raise_alert(minutes_ago=9)
    wait_for(counted(2), what="the sighting count to reach 2", context=run1.tail)
    identities = [i for i in connector.standin.identities if i.get("name") == "Elastic SIEM (e2e)"]
    assert len(identities) == 1
    searched = [r.path for r in faulty_proxy.requests if alerts.alias in r.path]
    assert searched, "the poller never searched the configured alerts index"

    assert run1.terminate() == 0
    state = connector.saved_state()
    assert state is not None
    assert "alert_poller" in state, state
    assert "start_from" in state  # the stream position is kept beside the poll cursor

    run2 = connector.start()
    raise_alert(minutes_ago=8)
    # Only the new alert is counted: the two read before the restart are not read again.
    wait_for(counted(3), what="the third alert to be counted", context=run2.tail)
    wait_for(lambda: run2.metric("alerts_processed") >= 1, what="the alerts counter")
    assert run2.metric("alerts_processed") == 1
    assert sighting_counts(connector) == {doc_id(indicator): 3}
    assert run2.terminate() == 0
