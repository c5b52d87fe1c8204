"""Decoding Elastic alerts: both generations, any dotted/nested writing, never an exception."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Success

from elastic_connector.core.sightings.alerts import (
    Alert,
    AlertError,
    AlertSchema,
    decode_hit,
    get_path,
    parse_time,
    space_from_index,
)
from tests.core.sightings.alert_strategies import (
    OUR_INDEX,
    AlertSpec,
    EnrichmentSpec,
    alert_hits,
    alert_like_json,
    alert_specs,
    cuts,
    dotted,
    json_values,
    nested,
    render_7x,
    render_8x,
    shape,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)


def ok(hit: object) -> Alert:
    assert isinstance(hit, bytes | str | Mapping)
    decoded = decode_hit(hit)
    alert = decoded.value_or(None)
    assert alert is not None, decoded
    return alert


def error(hit: object) -> AlertError:
    assert isinstance(hit, bytes | str | Mapping)
    decoded = decode_hit(hit)
    failure = decoded.swap().value_or(None)
    assert failure is not None, decoded
    return failure


def spec(*enrichments: EnrichmentSpec, original: datetime | None = T0) -> AlertSpec:
    return AlertSpec(
        uuid="5f3bb6c1-6e8a-4b6f-9c34-3a1f1c2d0e01",
        timestamp=T0 + timedelta(minutes=5),
        original_time=original,
        rule_name="Threat Intel IP Address Indicator Match",
        rule_uuid="0c2e4a0b-4b4f-4e2a-9a5e-0a8a4b1f1c01",
        space="soc",
        enrichments=enrichments,
    )


IP = EnrichmentSpec(
    "ours",
    "9b7c7f4e-2a53-4c39-bb25-1a0e1ce6f2a1",
    "source.ip",
    "45.115.45.3",
    "ipv4-addr",
    OUR_INDEX,
)
PORT = EnrichmentSpec("ours", IP.indicator, "source.port", 57324, "ipv4-addr", OUR_INDEX)


# --- get_path -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        {"a.b.c": 1},
        {"a": {"b": {"c": 1}}},
        {"a": {"b.c": 1}},
        {"a.b": {"c": 1}},
        {"a": {"b": {"x": 2}}, "a.b.c": 1},
        {"a": {"b.c": None, "b": {"c": 1}}},
    ],
)
def test_get_path_reads_any_split(source: dict[str, object]) -> None:
    assert get_path(source, "a.b.c") == 1


@pytest.mark.parametrize(
    "source",
    [{}, {"a": [{"b": {"c": 1}}]}, {"a": {"b": 3}}, {"a.b.c": None}, {"a": "b.c"}],
)
def test_get_path_absent(source: dict[str, object]) -> None:
    assert get_path(source, "a.b.c") is None


@given(
    st.lists(st.sampled_from("abcd"), min_size=1, max_size=5).map(".".join),
    json_values.filter(lambda v: v is not None),
    cuts(),
)
def test_get_path_finds_a_value_under_any_writing(path: str, value: object, cut: object) -> None:
    assert callable(cut)
    document = shape({path: value, "zz.other": 1}, cut)
    assert get_path(document, path) == value


# --- dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T12:00:00.123Z", T0),
        ("2024-05-01T14:00:00.123+02:00", T0),
        ("2024-05-01T12:00:00.123", T0),
        ("2024-05-01T12:00:00.123456789Z", T0.replace(microsecond=123456)),
        (1714564800123, T0),
        ("1714564800123", T0),
        (1714564800123.0, T0),
    ],
)
def test_parse_time(value: object, expected: datetime) -> None:
    assert parse_time(value) == expected


@pytest.mark.parametrize(
    "value", [True, None, [], "yesterday", "", "²³⁴⁵⁶⁷⁸⁹⁰", 10**30, float("nan"), "9" * 5000]
)
def test_parse_time_rejects_with_a_reason(value: object) -> None:
    assert isinstance(parse_time(value), str)


@given(st.one_of(json_values, st.text(), st.floats(), st.integers()))
def test_parse_time_never_raises(value: object) -> None:
    result = parse_time(value)
    assert isinstance(result, str) or result.tzinfo is not None


# --- the two generations, as Kibana writes them -----------------------------------------------


def test_decodes_an_8x_hit_as_kibana_writes_it() -> None:
    hit = render_8x(spec(IP, PORT))
    source = hit["_source"]
    assert isinstance(source, dict)
    assert "kibana.alert.rule.name" in source  # Kibana's flattened writing
    alert = ok(hit)
    assert alert.id == "5f3bb6c1-6e8a-4b6f-9c34-3a1f1c2d0e01"
    assert alert.schema is AlertSchema.ALERTS
    assert alert.timestamp == T0 + timedelta(minutes=5)
    assert alert.original_time == T0
    assert alert.seen == T0
    assert alert.rule_name == "Threat Intel IP Address Indicator Match"
    assert alert.rule_uuid == "0c2e4a0b-4b4f-4e2a-9a5e-0a8a4b1f1c01"
    assert alert.rule_type == "threat_match"
    assert alert.space_ids == ("soc",)
    assert alert.index == ".internal.alerts-security.alerts-soc-000001"
    assert [(e.matched_field, e.matched_atomic) for e in alert.enrichments] == [
        ("source.ip", "45.115.45.3"),
        ("source.port", "57324"),
    ]
    first = alert.enrichments[0]
    assert first.matched_id == IP.indicator
    assert first.matched_index == OUR_INDEX
    assert first.matched_type == "indicator_match_rule"
    assert first.indicator_ids[0] == IP.indicator
    assert first.indicator_ids[1].startswith("indicator--")
    assert first.feed_name == "OpenCTI"
    assert alert.skipped == ()


def test_decodes_a_7x_signal() -> None:
    alert = ok(render_7x(spec(IP)))
    assert alert.schema is AlertSchema.SIGNALS
    assert alert.id == "5f3bb6c1-6e8a-4b6f-9c34-3a1f1c2d0e01"
    assert alert.original_time == T0
    assert alert.rule_name == "Threat Intel IP Address Indicator Match"
    assert alert.rule_uuid == "0c2e4a0b-4b4f-4e2a-9a5e-0a8a4b1f1c01"
    assert alert.space_ids == ("soc",)  # from the index name: 7.x has no kibana.space_ids
    assert len(alert.enrichments) == 1


def test_bare_source_and_json_bytes() -> None:
    hit = render_8x(spec(IP))
    from_source = ok(hit["_source"])
    from_bytes = ok(json.dumps(hit).encode())
    from_text = ok(json.dumps(hit))
    assert from_source.id == from_bytes.id == from_text.id
    assert from_source.index is None
    assert from_bytes == from_text == ok(hit)


def test_original_time_missing_falls_back_to_timestamp() -> None:
    alert = ok(render_8x(spec(IP, original=None)))
    assert alert.original_time is None
    assert alert.seen == alert.timestamp


def test_kibana_alert_uuid_wins_over_id_and_id_is_the_fallback() -> None:
    hit = render_8x(spec(IP))
    hit["_id"] = "other"
    assert ok(hit).id == "5f3bb6c1-6e8a-4b6f-9c34-3a1f1c2d0e01"
    source = hit["_source"]
    assert isinstance(source, dict)
    del source["kibana.alert.uuid"]
    assert ok(hit).id == "other"


def test_single_values_may_be_one_element_arrays() -> None:
    hit = render_8x(spec(IP))
    source = hit["_source"]
    assert isinstance(source, dict)
    source["kibana.alert.rule.name"] = ["Rule in an array"]
    source["kibana.space_ids"] = "soc"
    alert = ok(hit)
    assert alert.rule_name == "Rule in an array"
    assert alert.space_ids == ("soc",)


def test_an_alert_without_enrichments_is_valid_and_empty() -> None:
    alert = ok({"@timestamp": "2024-05-01T12:00:00Z", "kibana.alert.uuid": "x"})
    assert alert.enrichments == ()


@pytest.mark.parametrize(
    ("index", "space"),
    [
        (".siem-signals-default-000001", "default"),
        (".siem-signals-team-2-000003", "team-2"),
        (".internal.alerts-security.alerts-soc-000001", "soc"),
        (".alerts-security.alerts-default", "default"),
        (".alerts-security.alerts-my-space-2", "my-space-2"),
        ("logs-endpoint.alerts-default", None),
    ],
)
def test_space_from_index(index: str, space: str | None) -> None:
    assert space_from_index(index) == space


# --- malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hit", "reason"),
    [
        (b"not json", "invalid JSON"),
        (b"[1, 2]", "not a JSON object (got array)"),
        (b'"text"', "not a JSON object (got string)"),
        ({"_source": [1], "_id": "a"}, "_source is not an object (got array)"),
        ({"_source": {}, "_id": 7}, "_id is not a string (got number)"),
        ({"_source": {}, "_id": "a", "_index": {}}, "_index is not a string (got object)"),
        ({"@timestamp": "2024-05-01T12:00:00Z"}, "no alert id"),
        ({"kibana.alert.uuid": "a"}, "no @timestamp"),
        ({"kibana.alert.uuid": 12, "@timestamp": 1}, "kibana.alert.uuid is not a string"),
        ({"kibana.alert.uuid": "a", "@timestamp": "soon"}, "@timestamp is not an ISO 8601 date"),
        ({"kibana.alert.uuid": "a", "@timestamp": True}, "@timestamp is not a date"),
        (
            {"kibana.alert.uuid": "a", "@timestamp": 1, "kibana.alert.original_time": {}},
            "kibana.alert.original_time is not a date",
        ),
        (
            {"kibana.alert.uuid": "a", "@timestamp": 1, "threat": {"enrichments": {"x": 1}}},
            "threat.enrichments is not a list (got object)",
        ),
        (
            {"kibana.alert.uuid": "a", "@timestamp": 1, "kibana.alert.rule.name": 5},
            "kibana.alert.rule.name is not a string (got number)",
        ),
        (
            {"kibana.alert.uuid": "a", "@timestamp": 1, "kibana.space_ids": ["a", 2]},
            "kibana.space_ids is not a string or a list of strings",
        ),
        (b"[" * 100_000, "invalid JSON"),
    ],
)
def test_malformed_hits_are_errors_with_the_reason(hit: object, reason: str) -> None:
    failure = error(hit)
    assert reason in failure.reason


def test_error_names_the_alert_when_known() -> None:
    failure = error({"kibana.alert.uuid": "a1", "@timestamp": "soon"})
    assert failure.alert_id == "a1"
    assert str(failure).startswith("alert a1: ")


def test_error_never_echoes_values() -> None:
    secret = "hunter2-credential"
    failure = error({"kibana.alert.uuid": "a", "@timestamp": 1, "kibana.space_ids": [secret, 1]})
    assert secret not in str(failure)


def test_a_malformed_enrichment_is_skipped_and_the_others_kept() -> None:
    hit = render_8x(spec(IP, PORT))
    source = hit["_source"]
    assert isinstance(source, dict)
    enrichments = source["threat"]["enrichments"]
    enrichments.insert(1, "garbage")
    enrichments.append({"matched": {"id": 42, "index": OUR_INDEX}})
    enrichments.append({"matched": {"id": "x", "atomic": {"a": 1}}})
    enrichments.append({"matched": {"id": "x"}, "indicator": {"id": ["ok", 3]}})
    alert = ok(hit)
    assert [e.position for e in alert.enrichments] == [0, 2]
    assert alert.skipped == (
        "threat.enrichments[1] is not an object (got string)",
        "threat.enrichments[3]: matched.id is not a string (got number)",
        "threat.enrichments[4]: matched.atomic is not a value (got object)",
        "threat.enrichments[5]: indicator.id is not a string or a list of strings",
    )


@pytest.mark.parametrize(
    ("atomic", "text"),
    [(57324, "57324"), (1.5, "1.5"), (True, "true"), (["a", 2], "a, 2"), ("x", "x")],
)
def test_matched_atomic_becomes_text(atomic: object, text: str) -> None:
    alert = ok(
        {
            "kibana.alert.uuid": "a",
            "@timestamp": 1,
            "threat.enrichments": [{"matched.atomic": atomic, "matched.id": "i"}],
        }
    )
    assert alert.enrichments[0].matched_atomic == text


# --- properties -----------------------------------------------------------------------------


@given(st.binary())
def test_decode_never_raises_on_bytes(data: bytes) -> None:
    result = decode_hit(data)
    assert isinstance(result, Success | Failure)


@given(json_values)
def test_decode_never_raises_on_any_json(value: object) -> None:
    assert isinstance(decode_hit(msgspec.json.encode(value)), Success | Failure)
    if isinstance(value, dict):
        assert isinstance(decode_hit(value), Success | Failure)


@given(alert_like_json())
def test_decode_never_raises_on_alert_like_json(value: object) -> None:
    result = decode_hit(msgspec.json.encode(value))
    assert isinstance(result, Success | Failure)
    if isinstance(result, Failure):
        assert result.failure().reason


@given(alert_hits())
def test_every_realistic_hit_decodes_without_skips(hit: dict[str, object]) -> None:
    alert = ok(hit)
    assert alert.skipped == ()


@given(alert_specs(), cuts(), st.sampled_from((nested, dotted)))
def test_dotted_nested_and_mixed_writings_decode_the_same(
    alert: AlertSpec, cut: object, enrichment_cut: object
) -> None:
    assert callable(cut)
    assert callable(enrichment_cut)
    kibana = ok(render_8x(alert))
    assert ok(render_8x(alert, "nested")) == kibana
    assert ok(render_8x(alert, "dotted")) == kibana
    assert ok(render_8x(alert, cut=cut, enrichment_cut=enrichment_cut)) == kibana


@given(alert_specs())
def test_decoded_fields_match_the_spec(alert: AlertSpec) -> None:
    for decoded in (ok(render_8x(alert)), ok(render_7x(alert))):
        assert decoded.id == alert.uuid
        assert decoded.timestamp == alert.timestamp
        assert decoded.original_time == alert.original_time
        assert decoded.rule_name == alert.rule_name
        assert decoded.rule_uuid == alert.rule_uuid
        assert decoded.space_ids == (alert.space,)
        assert len(decoded.enrichments) == len(alert.enrichments)
