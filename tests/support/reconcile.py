"""Reconciliation scenarios shared by the shell and end-to-end tests.

``Damage`` puts an index in the five states reconciliation must repair, each as it arises in
production: a document deleted by hand (*missing*), one edited by hand (*stale*), one whose
indicator got TLP:RED while nobody streamed it (*stale*, to delete), one of an indicator merged
away (*orphaned*) and one that was never an indicator's (*orphaned*). ``expected_documents`` is
the oracle: what the stream's planner makes of the indicators OpenCTI holds, each as a streamed
``create`` — computed without reconciliation's code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from elasticsearch import Elasticsearch

from elastic_connector.core.actions import Upsert
from elastic_connector.core.config import Config, ElasticsearchSettings
from elastic_connector.core.config.load import build_config, env_layer
from elastic_connector.core.events import PlannerState, PlanSettings, plan_frame
from elastic_connector.demo.opencti_data import Json, make_indicator
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from tests.e2e.harness import doc_id, documents_of, elasticsearch_environment

RED = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"
GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"


def indicator(number: int, **fields: object) -> Json:
    stix = make_indicator(
        f"[ipv4-addr:value = '10.44.{number // 250}.{number % 250}']",
        markings=[GREEN],
        updated_at="2025-01-01T00:00:00.000Z",
    )
    stix.update(fields)
    return stix


def config_for(
    standin: OpenCTIStandin,
    es_settings: ElasticsearchSettings,
    index: str,
    **env: str,
) -> Config:
    """The configuration a connector with this stand-in, cluster and index would load."""
    variables = {
        "OPENCTI_URL": standin.url,
        "OPENCTI_TOKEN": standin.token,
        "CONNECTOR_ID": "7d0b2f9e-4a7e-4c2b-9d3a-3f1f7f1e0a01",
        "CONNECTOR_MODE": "ecs_no_signals",
        "ELASTICSEARCH_INDEX": index,
        "ELASTICSEARCH_RETRY_MAX_BACKOFF": "0.1",
        **elasticsearch_environment(es_settings),
        **env,
    }
    return build_config([env_layer(variables)]).unwrap()


def comparable(document: Mapping[str, object]) -> dict[str, object]:
    return {key: value for key, value in document.items() if key != "@timestamp"}


def expected_documents(
    objects: Iterable[Mapping[str, object]],
    settings: PlanSettings,
    now: datetime | None = None,
) -> dict[str, dict[str, object]]:
    """``_id -> comparable _source`` the stream's planner makes of ``objects`` (creates)."""
    moment = now or datetime.now(UTC)
    expected: dict[str, dict[str, object]] = {}
    for number, obj in enumerate(objects):
        frame = json.dumps({"data": obj}).encode()
        plan = plan_frame(f"{number}-0", "create", frame, PlannerState(), settings, moment)
        for action in plan.actions:
            if isinstance(action, Upsert):
                expected[action.id] = comparable(json.loads(action.document))
    return expected


def index_documents(client: Elasticsearch, index: str) -> dict[str, dict[str, object]]:
    return {key: comparable(value) for key, value in documents_of(client, index).items()}


@dataclass
class Damage:
    """Which document is in which state (``apply`` made it so)."""

    missing: str = ""
    edited: str = ""
    raised: str = ""
    merged_away: str = ""
    extra: str = "not-an-indicator-of-opencti"
    survivors: list[Json] = field(default_factory=list)
    """The indicators OpenCTI holds afterwards."""

    @property
    def classes(self) -> dict[str, set[str]]:
        return {
            "missing": {self.missing},
            "stale": {self.edited, self.raised},
            "orphaned": {self.merged_away, self.extra},
        }


def damage(
    standin: OpenCTIStandin,
    client: Elasticsearch,
    index: str,
    indicators: list[Json],
) -> Damage:
    """Damage an index holding the documents of ``indicators`` (at least five) as described
    in the module documentation; OpenCTI changes only on the platform (no daemon reads the
    stream meanwhile)."""
    first, second, third, fourth, fifth = indicators[:5]
    result = Damage(
        missing=doc_id(first),
        edited=doc_id(second),
        raised=doc_id(third),
        merged_away=doc_id(fourth),
    )
    client.delete(index=index, id=doc_id(first), refresh=True)
    edited = client.get(index=index, id=doc_id(second))["_source"]
    edited["threat"]["indicator"]["confidence"] = "None"
    edited["tags"] = ["edited-by-hand"]
    client.index(index=index, id=doc_id(second), document=edited, refresh=True)
    standin.publish("update", {**third, "object_marking_refs": [RED]}, {"patch": []})
    standin.publish("merge", fifth, {"sources": [fourth], "patch": []})
    client.index(
        index=index,
        id=result.extra,
        document={"threat": {"indicator": {"type": "ipv4-addr", "ip": "192.0.2.1"}}},
        refresh=True,
    )
    kept = [stix for stix in indicators if stix["id"] != fourth["id"]]
    kept[kept.index(third)] = {**third, "object_marking_refs": [RED]}
    result.survivors = kept
    return result
