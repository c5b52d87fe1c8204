"""A typed consumer of the library, written as another tool would be: it imports nothing but the
public names of ``elastic_connector``. ``mypy --strict`` over ``tests/`` checks that those names
are enough to write fully typed code (every result narrowed, every outcome handled), and the
tests below run it. ``tests/test_api_surface.py`` checks it imports nothing else."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import assert_never

from elastic_connector import (
    Config,
    Deleted,
    Exported,
    InputError,
    InvalidPattern,
    MapResult,
    Outcome,
    ParsedPattern,
    PatternComparison,
    Sighting,
    SightingsResult,
    Skipped,
    SkippedAlert,
    Withheld,
    alerts_to_sightings,
    bundle_to_actions,
    indicator_to_ecs,
    iter_bundle_actions,
    make_config,
    parse_pattern,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)
RED = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"
INDEX = "logs-ti_opencti_connector.indicator"


def describe(outcome: Outcome) -> str:
    """One line per outcome; ``assert_never`` proves every kind is handled."""
    if isinstance(outcome, Exported):
        values = outcome.fields().get("threat.indicator.ip", [])
        return f"export {outcome.id} {values}"
    if isinstance(outcome, Withheld):
        return f"withhold {outcome.stix_id}: {outcome.code}"
    if isinstance(outcome, Deleted):
        return f"delete {outcome.id}"
    if isinstance(outcome, Skipped):
        return f"skip {outcome.id}: {outcome.code}"
    assert_never(outcome)


def policy(max_tlp: str) -> Config:
    config: Config | InputError = make_config({"connector": {"max_tlp": max_tlp}})
    if isinstance(config, InputError):
        raise ValueError(str(config))
    return config


def lines(bundle: Mapping[str, object], config: Config) -> list[str]:
    result: MapResult = bundle_to_actions(bundle, now=NOW, config=config)
    if result.error is not None:
        return [f"error: {result.error.reason}"]
    return [describe(outcome) for outcome in result.outcomes]


def streamed(text: str) -> tuple[int, InputError | None]:
    count, error = 0, None
    for item in iter_bundle_actions(text, now=NOW):
        if isinstance(item, InputError):
            error = item
        else:
            count += len(item.bulk_lines())
    return count, error


def comparisons(text: str) -> list[tuple[str, str, str | None]] | str:
    parsed: ParsedPattern | InvalidPattern = parse_pattern(text)
    if isinstance(parsed, InvalidPattern):
        return f"{parsed.position}: {parsed.message}"
    found: tuple[PatternComparison, ...] = parsed.comparisons
    return [(c.path, c.operator, c.value) for c in found]


def counts(alerts: Sequence[Mapping[str, object]]) -> tuple[dict[str, int], list[int]]:
    result: SightingsResult = alerts_to_sightings(alerts)
    sightings: tuple[Sighting, ...] = result.sightings
    skipped: tuple[SkippedAlert, ...] = result.skipped
    return {s.indicator_id: s.count for s in sightings}, [s.position for s in skipped]


def indicator(number: int, pattern: str, **fields: object) -> dict[str, object]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--00000000-0000-4000-8000-{number:012d}",
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": "2025-01-01T00:00:00Z",
        **fields,
    }


BUNDLE: dict[str, object] = {
    "type": "bundle",
    "id": "bundle--1",
    "objects": [
        indicator(1, "[ipv4-addr:value = '198.51.100.7']"),
        indicator(2, "[ipv4-addr:value = '203.0.113.9']", object_marking_refs=[RED]),
        {"type": "indicator", "id": "indicator--3", "pattern": 3},
    ],
}


def test_the_consumer_describes_a_bundle() -> None:
    assert lines(BUNDLE, policy("TLP:AMBER")) == [
        "export indicator--00000000-0000-4000-8000-000000000001 ['198.51.100.7']",
        "withhold indicator--00000000-0000-4000-8000-000000000002: tlp",
        "skip indicator--3: undecodable",
    ]


def test_the_consumer_streams_and_sees_the_error_last() -> None:
    size, error = streamed(json.dumps(BUNDLE) + '\n{"type": "bundle", "objects": 1}')
    assert size > 0
    assert error is not None


def test_the_consumer_reads_patterns_and_their_errors() -> None:
    assert comparisons("[ipv4-addr:value = '198.51.100.7']") == [
        ("ipv4-addr:value", "=", "'198.51.100.7'")
    ]
    problem = comparisons("[ipv4-addr:value = ")
    assert isinstance(problem, str)
    assert problem.startswith("19: expected ")


def test_the_consumer_maps_one_indicator() -> None:
    outcome = indicator_to_ecs(indicator(1, "[ipv4-addr:value = '198.51.100.7']"), now=NOW)
    assert not isinstance(outcome, InputError)
    assert describe(outcome).startswith("export ")


def test_the_consumer_counts_sightings() -> None:
    alert: dict[str, object] = {
        "@timestamp": "2025-06-01T08:00:00.000Z",
        "kibana.alert.uuid": "alert-1",
        "kibana.alert.rule.name": "IP match",
        "threat": {"enrichments": [{"matched": {"index": INDEX, "id": "internal-1"}}]},
    }
    assert counts([alert, {"_source": 5}]) == ({"internal-1": 1}, [2])
