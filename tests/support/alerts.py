"""Alert indices as Kibana creates them, alert documents as Kibana writes them, and the OpenCTI
side of the sighting loop (indicators in the stand-in, a pycti API client), for the alert
poller and sighting writer tests.

The mappings follow Kibana's: 8.x/9.x ``.internal.alerts-security.alerts-<space>-000001`` behind
the alias ``.alerts-security.alerts-<space>``, ``dynamic: false``, ``kibana.alert.*`` keywords
and dates (alerts-as-data field map), the ECS ``threat.enrichments`` as ``nested``, and the
legacy ``signal.rule.type`` as an alias of ``kibana.alert.rule.type``; 7.x
``.siem-signals-<space>-000001`` with ``signal.*`` objects, which Kibana 8 puts behind the same
``.alerts-security.alerts-<space>`` alias when it upgrades a space.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from elasticsearch import Elasticsearch, helpers

from elastic_connector.demo.kibana_alerts import ALERTS_MAPPINGS, SIGNALS_MAPPINGS
from elastic_connector.demo.opencti_standin import OpenCTIStandin, make_indicator
from tests.core.sightings.alert_strategies import AlertSpec, build_alert_specs, render_7x, render_8x

_RENAME = uuid.UUID("6f1c2a3e-0b7d-4e59-a8c1-2d3e4f5a6b7c")


class AlertIndices:
    """One Kibana space's alert indices in the test cluster (named with the test prefix)."""

    def __init__(self, client: Elasticsearch, space: str) -> None:
        self.client = client
        self.space = space
        self.alias = f".alerts-security.alerts-{space}"
        self.pattern = f"{self.alias}*"
        """What the connector is configured with, shaped like the default
        ``.alerts-security.alerts-*``. (noida-db opens a point in time on an alias name over
        its write index only; a pattern covers every index behind the alias, as
        Elasticsearch does for both.)"""
        self.alerts = f".internal.alerts-security.alerts-{space}-000001"
        self.signals = f".siem-signals-{space}-000001"

    def create(self, *, legacy: bool = False) -> None:
        """The 8.x alerts index behind its alias; with ``legacy``, a 7.x signals index too,
        behind the same alias (what a Kibana 8 upgrade leaves)."""
        self.client.indices.create(
            index=self.alerts,
            mappings=ALERTS_MAPPINGS,
            settings={"index": {"hidden": True}},
            aliases={self.alias: {"is_write_index": True, "is_hidden": True}},
        )
        if legacy:
            self.client.indices.create(
                index=self.signals,
                mappings=SIGNALS_MAPPINGS,
                settings={"index": {"hidden": True}},
                aliases={self.alias: {"is_hidden": True}},
            )

    def index_8x(self, specs: Iterable[AlertSpec]) -> None:
        """Write alerts as Kibana 8.x writes them (dotted ``kibana.*`` keys)."""
        self._bulk(self.alerts, (render_8x(spec) for spec in specs))

    def index_7x(self, specs: Iterable[AlertSpec]) -> None:
        """Write 7.x signals (nested ``signal.*``) into the legacy index."""
        self._bulk(self.signals, (render_7x(spec) for spec in specs))

    def update_in_place(self, alert_id: str, fields: dict[str, object]) -> None:
        """What Kibana does to an existing alert (suppression, workflow status): a partial
        update of flattened keys, ``@timestamp`` untouched."""
        self.client.update(index=self.alerts, id=alert_id, doc=fields, refresh=True)

    def _bulk(self, index: str, hits: Iterable[dict[str, object]]) -> None:
        actions = ({"_index": index, "_id": hit["_id"], "_source": hit["_source"]} for hit in hits)
        helpers.bulk(self.client, actions, chunk_size=5000, max_chunk_bytes=50_000_000)
        self.client.indices.refresh(index=index)


def add_indicators(standin: OpenCTIStandin, count: int) -> list[str]:
    """``count`` indicators in the stand-in; their OpenCTI internal ids (= our document ids)."""
    ids: list[str] = []
    for n in range(count):
        indicator = make_indicator(f"[ipv4-addr:value = '198.51.100.{n + 1}']")
        standin.publish("create", indicator)
        extensions = indicator["extensions"]
        assert isinstance(extensions, dict)
        extension = next(iter(extensions.values()))
        ids.append(str(extension["id"]))
    return ids


def counts_by_indicator(standin: OpenCTIStandin) -> dict[str, int]:
    """Sighting counts per indicator internal id, summed over the stored sightings."""
    totals: dict[str, int] = {}
    for sighting in standin.sightings:
        count = sighting["attribute_count"]
        assert isinstance(count, int)
        key = str(sighting["fromId"])
        totals[key] = totals.get(key, 0) + count
    return totals


def expected_counts(specs: Sequence[AlertSpec], *, include_closed: bool = False) -> dict[str, int]:
    """The oracle: distinct matches per OpenCTI indicator among ``specs`` (an alert and what it
    suppressed; closed alerts only with ``include_closed``)."""
    totals: dict[str, int] = {}
    for spec in specs:
        if spec.workflow_status == "closed" and not include_closed:
            continue
        for indicator in {e.sighted for e in spec.enrichments if e.sighted is not None}:
            totals[indicator] = totals.get(indicator, 0) + spec.matches
    return totals


def same_millisecond_specs(
    specs: Sequence[AlertSpec], group: int, start: datetime, step: timedelta
) -> list[AlertSpec]:
    """``specs`` re-timed so that each run of ``group`` alerts shares one ``@timestamp``, as
    the alerts of one rule execution do."""
    out: list[AlertSpec] = []
    for n, spec in enumerate(specs):
        moment = start + (n // group) * step
        out.append(
            AlertSpec(
                uuid=spec.uuid,
                timestamp=moment,
                original_time=moment - timedelta(seconds=30 + n % 5),
                rule_name=spec.rule_name,
                rule_uuid=spec.rule_uuid,
                space=spec.space,
                enrichments=spec.enrichments,
            )
        )
    return out


def more_alerts(
    count: int, indicators: Sequence[str], start: datetime, tag: str
) -> list[AlertSpec]:
    """``build_alert_specs`` with alert ids of their own (``build_alert_specs`` numbers its
    alerts from 0 on every call, so two calls would write the same documents)."""
    return [
        dataclasses.replace(spec, uuid=str(uuid.uuid5(_RENAME, f"{tag}:{spec.uuid}")))
        for spec in build_alert_specs(count, indicators=tuple(indicators), start=start)
    ]
