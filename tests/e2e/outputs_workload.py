"""What the daemon's ES|QL lookup index and dead letters are given in the e2e tests (the plain
run in ``test_daemon_outputs.py``, the run under the documented outputs role in
``test_elasticsearch_roles_features.py``): the indices as an administrator made them, three
indicators of which one is refused and one deleted, and a row that expired unseen."""

from __future__ import annotations

from typing import NamedTuple

from elasticsearch import Elasticsearch

from elastic_connector.core.elastic.lookup_rows import LOOKUP_MAPPINGS
from elastic_connector.demo.opencti_data import Json, make_indicator
from tests.e2e.harness import ConnectorHarness, ConnectorProcess, documents_of, wait_for


class Indicators(NamedTuple):
    kept: Json
    refused: Json
    """Its ``threat.indicator.name`` is not a number: the indicator index refuses it."""
    gone: Json


def lookup_domains(client: Elasticsearch, index: str) -> list[str]:
    """The URL domains of the lookup index's rows, sorted."""
    client.indices.refresh(index=index)
    rows = documents_of(client, index).values()
    return sorted(str(row["threat"]["indicator"]["url"]["domain"]) for row in rows)  # type: ignore[index]


def create_indices(client: Elasticsearch, connector: ConnectorHarness, lookup: str) -> None:
    """The lookup index, as a standard index (noida-db has no lookup mode; without the
    connector's mapping fingerprint, so the connector updates it), and an indicator index where
    ``threat.indicator.name`` is a number, so that other names are refused and dead-lettered."""
    client.indices.create(index=lookup, mappings=dict(LOOKUP_MAPPINGS))
    client.indices.create(
        index=connector.index,
        mappings={"properties": {"threat": {"properties": {"indicator": {"properties": {
            "name": {"type": "long"}}}}}}},
    )  # fmt: skip


def publish_creates(connector: ConnectorHarness) -> Indicators:
    """Creates of the three indicators (the refused one second)."""
    published = Indicators(
        kept=make_indicator("[domain-name:value = 'kept.example']", name="1"),
        refused=make_indicator("[domain-name:value = 'refused.example']", name="not a number"),
        gone=make_indicator("[domain-name:value = 'gone.example']", name="2"),
    )
    for stix in published:
        connector.publish("create", stix)
    return published


def sweep_an_expired_row(client: Elasticsearch, lookup: str, daemon: ConnectorProcess) -> None:
    """A row whose indicator expired while OpenCTI said nothing: waits for the expiry sweep to
    remove it, leaving the kept indicator's row alone."""
    expired = {
        "threat": {"indicator": {"url": {"domain": "expired.example"}}},
        "opencti": {"indicator": {"valid_until": "2020-01-01T00:00:00Z"}},
    }
    client.index(index=lookup, id="expired-row", document=expired, refresh=True)
    wait_for(
        lambda: lookup_domains(client, lookup) == ["kept.example"],
        what="the sweep to remove the expired row",
        context=daemon.tail,
    )


def dead_letter(client: Elasticsearch, dead: str) -> dict[str, object]:
    """The dead-letter index's only document's ``opencti.dead_letter``."""
    client.indices.refresh(index=dead)
    (letter,) = documents_of(client, dead).values()
    target = letter["opencti"]["dead_letter"]  # type: ignore[index]
    assert isinstance(target, dict)
    return target
