"""The benchmark code itself: a deterministic, realistic generator and a runner whose JSON has
every section. Nothing here measures or asserts a speed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from benchmarks.generator import indicator_patterns, stream_events
from benchmarks.mapping import map_events
from benchmarks.null_bulk import bulk_answer
from benchmarks.runner import SECTIONS, main
from returns.result import Success
from stix2patterns.v21.pattern import Pattern as ReferencePattern

from elastic_connector.core.indicators.path_rules import RULES
from elastic_connector.core.pattern import comparisons, parse
from elastic_connector.core.stix import DecodeError, Indicator, read_event

MAPPED_TYPES = frozenset(object_type for object_type, _ in RULES)


def test_the_same_seed_gives_the_same_bytes() -> None:
    assert stream_events(400, seed=7) == stream_events(400, seed=7)
    assert stream_events(400, seed=7) != stream_events(400, seed=8)


def test_a_longer_stream_starts_with_the_shorter_one() -> None:
    # The end-to-end runs take prefixes of one stream: sizes must not change the events.
    assert stream_events(1000, seed=3)[:250] == stream_events(250, seed=3)


def test_every_observable_type_the_mapping_knows_is_generated() -> None:
    seen: set[str] = set()
    for text in indicator_patterns(stream_events(300, seed=1)):
        parsed = parse(text)
        assert isinstance(parsed, Success), text
        seen.update(site.test.path.object_type for site in comparisons(parsed.unwrap()))
    assert seen >= MAPPED_TYPES, sorted(MAPPED_TYPES - seen)


def test_single_comparisons_dominate_and_compound_patterns_are_frequent() -> None:
    patterns = indicator_patterns(stream_events(2000, seed=5))
    compound = [p for p in patterns if " OR " in p or " AND " in p or "FOLLOWEDBY" in p]
    assert 0.08 < len(compound) / len(patterns) < 0.4
    assert len(set(patterns)) > 0.85 * len(patterns)  # updates repeat a pattern, not more


def test_events_are_well_formed_opencti_stream_events() -> None:
    events = stream_events(1500, seed=11)
    kinds = Counter(event.event for event in events)
    assert set(kinds) == {"create", "update", "delete", "merge"}
    assert kinds["create"] > 0.8 * len(events)
    for event in events:
        decoded = read_event(event.id, event.event, event.data)
        assert not isinstance(decoded, DecodeError), (event.id, decoded)
        if isinstance(decoded.object.typed, Indicator):
            assert decoded.object.typed.extensions.opencti is not None
            assert decoded.object.opencti_id != decoded.object.id


def test_generated_patterns_are_valid_for_the_reference_parser_too() -> None:
    for text in sorted(set(indicator_patterns(stream_events(400, seed=2)))):
        ReferencePattern(text).inspect()  # raises on a pattern it does not accept


def test_the_stream_exercises_the_policy_and_the_mapping() -> None:
    lines, counts = map_events(stream_events(1500, seed=4))
    assert counts["upsert"] > 0.6 * 1500
    assert counts["delete"] > 0
    assert counts["skip"] == 0
    assert len(lines) == counts["upsert"] + counts["delete"]


def test_quick_run_writes_every_section(tmp_path: Path) -> None:
    """The whole runner on tiny sizes: core sections, the daemon against the null bulk endpoint
    and against noida-db (or ELASTICSEARCH_TEST_URL), the endpoint alone, both profiles, alert
    polling, reconciliation, and both kinds of first start with and without a crash."""
    output = tmp_path / "latest.json"
    code = main(
        [
            "--quick",
            "--events=120",
            "--ingest-sizes=60,150",
            "--endpoint-sizes=80",
            "--profile-events=60",
            "--alerts=90",
            "--repeats=1",
            "--reconcile-indicators=300",
            "--initial-sync-indicators=200",
            f"--output={output}",
        ]
    )
    assert code == 0
    results = json.loads(output.read_text())
    for section in SECTIONS:
        assert results[section], section
    assert results["profile"]["name"] == "quick"
    assert results["mapping"]["events"] == 120
    assert results["mapping"]["ratio"] > 0
    assert results["parser"]["patterns"] == results["mapping"]["indicator_events"]
    ingest = results["ingest"]
    assert [run["events"] for run in ingest["connector_runs"]] == [60, 150]
    assert [run["events"] for run in ingest["endpoint_runs"]] == [80]
    for run in ingest["connector_runs"]:
        assert run["endpoint"] == "null"
        assert run["documents"] == 0  # the null endpoint stores nothing
        assert run["peak_rss_mb"] >= run["rss_at_stream_start_mb"] > 0
    for run in ingest["endpoint_runs"]:
        assert run["endpoint"] == "elasticsearch"
        assert run["documents"] == run["expected_documents"] > 0
    assert ingest["endpoint_alone"]["actions"] > 0
    for name in ("profile", "connector_profile"):
        assert ingest[name]["events"] == 60
        assert ingest[name]["top"]
    assert results["alerts"]["alerts"] == 90
    assert results["alerts"]["sightings_per_page"] > 0
    reconcile = results["reconcile"]
    assert reconcile["indicators"] == 300
    fill, dry = reconcile["fill"]["summary"], reconcile["dry_run"]["summary"]
    assert fill["missing"] == fill["written"] == reconcile["expected_documents"]
    damaged = dry["missing"]
    assert damaged > 0
    assert (dry["stale"], dry["orphaned"]) == (damaged, damaged)
    assert dry["written"] == dry["deleted"] == 0
    assert reconcile["dry_run"]["peak_rss_mb"] > 0
    runs = results["initial_sync"]["runs"]
    assert [(run["mode"], bool(run["crash_at_documents"])) for run in runs] == [
        ("stream", False),
        ("reconcile", False),
        ("stream", True),
        ("reconcile", True),
    ]
    assert all(run["documents"] > 0 for run in runs)
    assert set(results["targets"]) == {
        "mapping_ratio_at_least_15",
        "connector_alone_at_least_20k",
        "rss_flat",
        "connector_not_the_limit",
        "reconcile_dry_run_under_2_min",
        "reconcile_rss_under_250_mb",
    }


def test_the_null_endpoint_answers_every_action_as_applied() -> None:
    lines, counts = map_events(stream_events(300, seed=6))
    answer = json.loads(bulk_answer(b"".join(lines)))
    assert answer["errors"] is False
    ops = [next(iter(item)) for item in answer["items"]]
    assert ops.count("index") == counts["upsert"]
    assert ops.count("delete") == counts["delete"]
    assert all(next(iter(item.values()))["status"] in (200, 201) for item in answer["items"])


def test_unknown_sections_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sections=mapping,speed"]) == 2
    assert "speed" in capsys.readouterr().err
