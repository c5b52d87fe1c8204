"""The options of issue 15 read as documented, and a bad value names its key."""

from __future__ import annotations

import pytest
from returns.result import Failure, Success

from elastic_connector.core.config.load import build_config, env_layer
from elastic_connector.core.events import PlanSettings

BASE = {
    "OPENCTI_URL": "https://opencti.example.org",
    "OPENCTI_TOKEN": "token",
    "CONNECTOR_ID": "5bd4ad4e-8bd8-4d8d-9d4e-62a4b4a1d3f0",
}


def _errors(**env: str) -> list[str]:
    result = build_config([env_layer({**BASE, **env})])
    assert isinstance(result, Failure)
    return [str(error) for error in result.failure()]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CONNECTOR_MIN_SCORE", "150", "150 is not between 0 and 100"),
        ("CONNECTOR_MIN_CONFIDENCE", "high", "'high' is not an integer"),
        ("CONNECTOR_INDICATOR_TTL", "0", "0.0 must be greater than 0"),
        ("CONNECTOR_INDICATOR_TTL", "90 days", "'90 days' is not a number of seconds or a"),
        ("ELASTICSEARCH_LOOKUP_INDEX", "Lookup", "'Lookup' is not a valid index name"),
        ("ELASTICSEARCH_DEAD_LETTER_INDEX", "a,b", "'a,b' is not a valid index name"),
    ],
)
def test_a_bad_value_names_its_key(name: str, value: str, message: str) -> None:
    (error,) = _errors(**{name: value})
    assert error.startswith(f"env {name}: {message}"), error


def test_an_unknown_observable_type_is_named_among_the_known_ones() -> None:
    (error,) = _errors(CONNECTOR_INDICATOR_TYPES="IPv4-Addr,Domian-Name")
    assert error.startswith(
        "env CONNECTOR_INDICATOR_TYPES: 'Domian-Name' is not an OpenCTI observable type (one of "
    ), error
    assert "Domain-Name" in error


def test_filters_reach_the_planner_in_the_platform_spelling_and_any_case() -> None:
    result = build_config([env_layer({
        **BASE,
        "CONNECTOR_MIN_SCORE": "40",
        "CONNECTOR_LABELS_INCLUDE": "C2, Botnet ,c2",
        "CONNECTOR_LABELS_EXCLUDE": "False-Positive",
        "CONNECTOR_INDICATOR_TYPES": "ipv4-addr,FILE,url",
        "CONNECTOR_INDICATOR_TTL": "90d",
    })])  # fmt: skip
    assert isinstance(result, Success)
    config = result.unwrap()
    assert config.connector.labels_include == ("C2", "Botnet")
    assert config.connector.indicator_types == ("IPv4-Addr", "StixFile", "Url")
    policy = PlanSettings.from_config(config).policy
    assert policy.min_score == 40
    assert policy.labels_include == frozenset({"c2", "botnet"})
    assert policy.labels_exclude == frozenset({"false-positive"})
    assert policy.indicator_types == frozenset({"IPv4-Addr", "StixFile", "Url"})
    assert policy.indicator_ttl is not None
    assert policy.indicator_ttl.days == 90
