"""The mappings and documents against an Elasticsearch API (noida-db, or ELASTICSEARCH_TEST_URL).

The pure tests prove every leaf is valid for its mapped type by our own reading of the types;
here the server itself checks: the index is created with ``INDICATOR_MAPPINGS`` /
``STIX_MAPPINGS`` and every example and generated document is bulk-indexed without an error.
"""

from __future__ import annotations

import json
from typing import Any

from elasticsearch import Elasticsearch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from returns.result import Success

from elastic_connector.core.indicators import MappingContext, ecs
from elastic_connector.core.indicators import document as indicators
from elastic_connector.core.pattern import Pattern
from elastic_connector.core.stix import Indicator
from elastic_connector.core.stix_mode import STIX_MAPPINGS, stix_document
from tests.core.indicators.indicator_strategies import any_patterns, contexts
from tests.core.indicators.indicator_strategies import indicators as indicator_values
from tests.core.indicators.test_mapping import CONTEXT, PATTERN_ROWS, indicator, pattern_of
from tests.core.test_stix_mode import NOW, raw_object, stix_json

_FIXTURE_SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _bulk(client: Elasticsearch, index: str, sources: list[bytes]) -> list[dict[str, Any]]:
    """Index ``sources``; the items Elasticsearch refused."""
    operations: list[dict[str, Any]] = []
    for number, source in enumerate(sources):
        operations.append({"index": {"_index": index, "_id": str(number)}})
        operations.append(json.loads(source))
    response = client.bulk(operations=operations, refresh=True)
    return [item for item in response["items"] if "error" in item["index"]]


def _index(client: Elasticsearch, name: str, mappings: dict[str, object]) -> str:
    if not client.indices.exists(index=name):
        client.indices.create(index=name, mappings=mappings)
    return name


def _example_documents() -> list[bytes]:
    documents = []
    for _row, text, _expected, _type in PATTERN_ROWS:
        mapped = indicators.indicator_document(indicator(text), pattern_of(text), CONTEXT)
        documents.append(ecs.encode_document(mapped.unwrap()))
    return documents


def test_the_server_checks_types(es_client: Elasticsearch, es_prefix: str) -> None:
    """Control: the server does reject what the mapping forbids (a CIDR in an ip field), so
    the acceptance tests below mean something."""
    index = _index(es_client, f"{es_prefix}-control", ecs.INDICATOR_MAPPINGS)
    bad = b'{"threat": {"indicator": {"confidence": "High", "ip": ["10.0.0.0/8"]}}}'
    assert len(_bulk(es_client, index, [bad])) == 1


def test_every_example_document_is_accepted_and_searchable(
    es_client: Elasticsearch, es_prefix: str
) -> None:
    index = _index(es_client, f"{es_prefix}-indicators", ecs.INDICATOR_MAPPINGS)
    documents = _example_documents()
    assert _bulk(es_client, index, documents) == []
    assert es_client.count(index=index)["count"] == len(documents)
    for field, value in [
        ("threat.indicator.ip", "198.51.100.7"),
        ("threat.indicator.url.domain", "Evil.Example.com"),
        ("threat.indicator.file.hash.md5", "d41d8cd98f00b204e9800998ecf8427e"),
        ("threat.indicator.registry.path", "HKCU\\Software\\Run\\updater"),
        ("opencti.observable.mac_addr.value", "00-1A-2B-3C-4D-5E"),
    ]:
        hits = es_client.search(index=index, query={"term": {field: value}})["hits"]["hits"]
        assert hits, (field, value)


@_FIXTURE_SETTINGS
@given(st.lists(st.tuples(indicator_values(), any_patterns(), contexts()), max_size=8))
def test_generated_indicator_documents_are_accepted(
    es_client: Elasticsearch,
    es_prefix: str,
    cases: list[tuple[Indicator, Pattern, MappingContext]],
) -> None:
    index = _index(es_client, f"{es_prefix}-generated", ecs.INDICATOR_MAPPINGS)
    documents = []
    for item, pattern, context in cases:
        mapped = indicators.indicator_document(item, pattern, context)
        if isinstance(mapped, Success):  # an Unmappable has nothing to index
            documents.append(ecs.encode_document(mapped.unwrap()))
    if documents:
        assert _bulk(es_client, index, documents) == []


@_FIXTURE_SETTINGS
@given(st.lists(stix_json(), min_size=1, max_size=8))
def test_generated_stix_documents_are_accepted(
    es_client: Elasticsearch, es_prefix: str, objects: list[dict[str, Any]]
) -> None:
    index = _index(es_client, f"{es_prefix}-stix", STIX_MAPPINGS)
    documents = [stix_document(raw_object(raw), NOW) for raw in objects]
    assert _bulk(es_client, index, documents) == []
