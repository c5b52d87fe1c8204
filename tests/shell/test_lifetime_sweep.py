"""The expiry sweep with ``connector.indicator_ttl``, against Elasticsearch (noida-db).

The rule itself (and its agreement with the policy) is proven in tests/core/policy/test_lifetime.py;
here the query runs in Elasticsearch over indexed dates.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from elasticsearch import Elasticsearch

from elastic_connector.core.indicators import INDICATOR_MAPPINGS
from elastic_connector.shell.index_setup import delete_expired, ensure_setup, touch_indicators

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(days=30)


def _doc(**dates: datetime) -> dict[str, object]:
    indicator = {name: moment.isoformat() for name, moment in dates.items()}
    return {
        "@timestamp": (NOW - timedelta(days=40)).isoformat(),
        "opencti": {"indicator": indicator},
    }


def test_the_sweep_applies_the_ttl_to_indicators_without_valid_until(
    es_client: Elasticsearch, es_prefix: str
) -> None:
    index = f"{es_prefix}.indicator"
    ensure_setup(es_client, index=index, mappings=dict(INDICATOR_MAPPINGS))
    old, young = NOW - timedelta(days=31), NOW - timedelta(days=29)
    docs = {
        "valid-until-passed": _doc(valid_until=NOW - timedelta(days=1), valid_from=young),
        # valid_until wins over the ttl, in both directions
        "valid-until-later": _doc(valid_until=NOW + timedelta(days=1), valid_from=old),
        "old-valid-from": _doc(valid_from=old, created=young),
        "young-valid-from": _doc(valid_from=young, created=old),
        "old-created": _doc(created=old),
        "young-created": _doc(created=young),
        "no-dates": _doc(),
    }
    for doc_id, doc in docs.items():
        es_client.index(index=index, id=doc_id, document=doc)
    es_client.indices.refresh(index=index)

    assert touch_indicators(es_client, index, NOW, ttl=TTL).updated == 4
    assert delete_expired(es_client, index, NOW, ttl=TTL) == 3
    es_client.indices.refresh(index=index)
    hits = es_client.search(index=index, size=100).body["hits"]["hits"]
    assert {hit["_id"] for hit in hits} == {
        "valid-until-later",
        "young-valid-from",
        "young-created",
        "no-dates",
    }
    # Without a ttl only valid_until counts.
    assert delete_expired(es_client, index, NOW + timedelta(days=3650)) == 1
