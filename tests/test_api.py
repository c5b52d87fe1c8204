"""The library (``elastic_connector``): what each function gives, that it is what the commands
print, and that no input makes it raise."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from elastic_connector import (
    Deleted,
    Exported,
    InputError,
    InvalidPattern,
    MapResult,
    ParsedPattern,
    SightingsResult,
    Skipped,
    Withheld,
    alerts_to_sightings,
    bundle_to_actions,
    indicator_to_ecs,
    iter_bundle_actions,
    make_config,
    parse_pattern,
)
from elastic_connector.core.config import Config, Mode
from elastic_connector.core.stix import OPENCTI_EXTENSION
from elastic_connector.map_command import run_map
from elastic_connector.sightings_command import run_sightings
from tests.core.pattern.pattern_strategies import near_miss_texts, pattern_texts
from tests.core.sightings.alert_strategies import (
    INDICATORS,
    OUR_INDEX,
    AlertSpec,
    EnrichmentSpec,
    alert_spec_lists,
    render_7x,
    render_8x,
)
from tests.test_map_command import _VALUES, any_input

NOW = datetime(2025, 6, 1, tzinfo=UTC)
AMBER = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
RED = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"
CUSTOM = "marking-definition--3f1e6b7a-9c2d-4e8f-a1b0-5d6c7e8f9a0b"
AUTHOR = "identity--7b3a3c1e-2f4d-4c55-9a1b-0c2d3e4f5a6b"
INDEX = "logs-ti_opencti_connector.indicator"


def _indicator(number: int, pattern: str, **fields: object) -> dict[str, object]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--00000000-0000-4000-8000-{number:012d}",
        "name": f"indicator {number}",
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": "2025-01-01T00:00:00Z",
        "extensions": {OPENCTI_EXTENSION: {"id": f"internal-{number}"}},
        **fields,
    }


IDENTITY = {"type": "identity", "id": AUTHOR, "name": "ACME CERT", "identity_class": "class"}
MARKING = {
    "type": "marking-definition",
    "id": CUSTOM,
    "name": "TLP:AMBER+STRICT",
    "definition_type": "statement",
    "definition": {"statement": "AMBER+STRICT"},
}
BUNDLE: dict[str, object] = {
    "type": "bundle",
    "id": "bundle--1",
    "objects": [
        _indicator(1, "[ipv4-addr:value = '198.51.100.7']", object_marking_refs=[AMBER]),
        _indicator(2, "[url:value = 'https://evil.example/a']", created_by_ref=AUTHOR),
        _indicator(3, "[ipv4-addr:value = '203.0.113.9']", object_marking_refs=[RED]),
        _indicator(4, "[domain-name:value = 'x.example']", object_marking_refs=[CUSTOM]),
        {"type": "indicator", "id": "indicator--5", "pattern": 42},
        {"type": "malware", "id": "malware--1", "name": "m", "is_family": True},
        IDENTITY,
        MARKING,
    ],
}


def _text_lines(text: str) -> list[str]:
    """The lines of NDJSON text: cut at newlines only. ``str.splitlines`` also cuts at U+0085,
    U+2028 and other separators, which a JSON string may hold unescaped."""
    return [line for line in text.split("\n") if line]


def _cli_map(data: bytes, config: Config, now: datetime = NOW) -> tuple[int, bytes, list[str]]:
    output, errors = io.BytesIO(), io.StringIO()
    code = run_map(io.BytesIO(data), output, errors, config, now)
    return code, output.getvalue(), _text_lines(errors.getvalue())


def _nested(fields: dict[str, object], prefix: str) -> dict[str, object]:
    """The dotted ``fields`` under ``prefix``, nested again."""
    nested: dict[str, object] = {}
    for name, value in fields.items():
        head, _, rest = name.partition(".")
        if head != prefix:
            continue
        node = nested
        *parents, leaf = rest.split(".")
        for parent in parents:
            child = node.setdefault(parent, {})
            assert isinstance(child, dict)
            node = child
        node[leaf] = value
    return nested


def _config(**connector: object) -> Config:
    config = make_config({"connector": connector} if connector else None)
    assert isinstance(config, Config), config
    return config


# --- bundle_to_actions ---------------------------------------------------------------------


def test_a_bundle_gives_each_object_its_outcome() -> None:
    result = bundle_to_actions(BUNDLE, now=NOW)
    assert result.error is None
    assert [(type(o).__name__, getattr(o, "id", "")) for o in result.outcomes] == [
        ("Exported", "internal-1"),
        ("Exported", "internal-2"),
        ("Withheld", "internal-3"),
        ("Exported", "internal-4"),  # its custom marking, later in the bundle, was read first
        ("Skipped", "indicator--5"),
    ]
    first, second, fourth = result.exported
    assert first.stix_id == _indicator(1, "")["id"]
    assert first.fields()["threat.indicator.ip"] == ["198.51.100.7"]
    assert first.fields()["threat.indicator.marking.tlp"] == "AMBER"
    assert first.document["threat"] == _nested(first.fields(), "threat")
    assert second.fields()["threat.indicator.provider"] == "ACME CERT"
    assert second.fields()["threat.indicator.url.full"] == ["https://evil.example/a"]
    assert fourth.fields()["threat.indicator.marking.tlp"] == "AMBER+STRICT"
    (withheld,) = result.withheld
    assert (withheld.code, withheld.stix_id) == ("tlp", _indicator(3, "")["id"])
    assert withheld.reason == "marked TLP:RED, above max_tlp TLP:AMBER+STRICT"
    (skipped,) = result.skipped
    assert skipped.code == "undecodable"
    assert "$.data.pattern" in skipped.reason


def test_the_outcomes_are_what_map_prints() -> None:
    data = json.dumps(BUNDLE).encode()
    result = bundle_to_actions(data, now=NOW)
    code, out, err = _cli_map(data, _config())
    assert code == 0
    assert result.bulk() == out
    shown = [
        {"skip": o.reason, "id": o.id} for o in result.outcomes if isinstance(o, Withheld | Skipped)
    ]
    assert [json.loads(line) for line in err] == shown


def test_dicts_text_and_bytes_give_the_same_result() -> None:
    expected = bundle_to_actions(BUNDLE, now=NOW)
    text = json.dumps(BUNDLE, indent=2)
    assert bundle_to_actions(text, now=NOW) == expected
    assert bundle_to_actions(text.encode(), now=NOW) == expected
    assert bundle_to_actions(cast("bytes", bytearray(text.encode())), now=NOW) == expected
    objects = BUNDLE["objects"]
    assert isinstance(objects, list)
    assert bundle_to_actions(objects, now=NOW).outcomes == expected.outcomes
    assert bundle_to_actions(tuple(objects), now=NOW).outcomes == expected.outcomes


def test_the_config_is_the_daemons_policy() -> None:
    green = bundle_to_actions(BUNDLE, now=NOW, config={"connector": {"max_tlp": "TLP:GREEN"}})
    assert [w.code for w in green.withheld] == ["tlp", "tlp", "tlp"]
    assert bundle_to_actions(BUNDLE, now=NOW, config=_config(max_tlp="TLP:GREEN")) == green
    detection = bundle_to_actions(
        BUNDLE, now=NOW, config={"connector": {"require_detection": True}}
    )
    assert not detection.exported
    assert {w.code for w in detection.withheld} == {"detection", "tlp"}
    stix = bundle_to_actions(BUNDLE, now=NOW, config={"connector": {"mode": "stix"}})
    assert {o.index for o in stix.exported} == {"opencti-stix"}
    assert len(stix.exported) == 7  # every object but the RED one, the identity and marking too


def test_an_invalid_config_is_an_input_error_listing_every_problem() -> None:
    config = {"connector": {"max_tlp": "TLP:PURPLE", "mode": "nope"}}
    result = bundle_to_actions(BUNDLE, now=NOW, config=config)
    assert result.outcomes == ()
    assert result.error is not None
    assert result.error.reason == "invalid configuration"
    assert len(result.error.problems) == 2
    assert all(problem.startswith("config connector.") for problem in result.error.problems)
    assert make_config(config) == result.error
    assert isinstance(make_config(cast("dict[str, object]", ["connector"])), InputError)


def test_now_decides_expiry_and_the_timestamp_and_naive_means_utc() -> None:
    bundle = [
        _indicator(1, "[ipv4-addr:value = '198.51.100.7']", valid_until="2025-03-01T00:00:00Z")
    ]
    before = bundle_to_actions(bundle, now=datetime(2025, 2, 1, 12))
    (exported,) = before.exported
    assert exported.document["@timestamp"] == "2025-02-01T12:00:00Z"
    (expired,) = bundle_to_actions(bundle, now=NOW).withheld
    assert expired.code == "expired"
    result = bundle_to_actions(bundle, now=cast("datetime", "2025-06-01"))
    assert result.error == InputError("now must be a datetime, not str")


def test_unreadable_input_keeps_what_came_before() -> None:
    good = json.dumps(
        {
            "id": "1-0",
            "event": "create",
            "data": {"type": "create", "data": _indicator(1, "[ipv4-addr:value = '1.2.3.4']")},
        }
    )
    text = good + "\n" + '{"type": "bundle", "objects": 5}\n'
    result = bundle_to_actions(text, now=NOW)
    assert [o.id for o in result.exported] == ["internal-1"]
    assert result.error == InputError("not a STIX bundle: `objects` is not an array of objects")
    items = list(iter_bundle_actions(text, now=NOW))
    assert items == [*result.outcomes, result.error]
    assert bundle_to_actions("not json", now=NOW).error is not None
    assert bundle_to_actions(b"", now=NOW) == MapResult(outcomes=())
    (from_a_set,) = bundle_to_actions([{"a": {1, 2}}], now=NOW).outcomes  # a set is a list
    assert isinstance(from_a_set, Skipped)
    unencodable = bundle_to_actions([{"type": "indicator", "x": object()}], now=NOW)
    assert unencodable.error is not None
    assert unencodable.error.reason.startswith("not JSON data")
    assert bundle_to_actions(cast("bytes", 5), now=NOW).error is not None


def test_a_merge_deletes_the_merged_away_documents() -> None:
    data = {
        "type": "merge",
        "data": _indicator(1, "[ipv4-addr:value = '1.2.3.4']"),
        "context": {"sources": [_indicator(9, "[ipv4-addr:value = '1.2.3.5']")]},
    }
    result = bundle_to_actions([{"id": "5-0", "event": "merge", "data": data}], now=NOW)
    merged, exported = result.outcomes
    assert isinstance(merged, Deleted)
    assert (merged.id, merged.code, merged.stix_id) == ("internal-9", "merged", "")
    assert isinstance(exported, Exported)
    assert exported.stix_id == _indicator(1, "")["id"]
    deleted = bundle_to_actions(
        [{"id": "6-0", "event": "delete", "data": {"type": "delete", "data": _indicator(1, "")}}],
        now=NOW,
    )
    assert deleted.outcomes == (
        Deleted(
            index=INDEX,
            id="internal-1",
            stix_id=str(_indicator(1, "")["id"]),
            code="deleted",
            reason="deleted in OpenCTI",
        ),
    )


def test_to_dict_is_plain_json() -> None:
    result = bundle_to_actions(BUNDLE, now=NOW)
    plain = json.loads(json.dumps(result.to_dict()))
    assert plain["error"] is None
    assert [o["outcome"] for o in plain["outcomes"]] == [
        "exported",
        "exported",
        "withheld",
        "exported",
        "skipped",
    ]
    assert plain["outcomes"][0]["document"] == result.exported[0].document
    assert plain["outcomes"][2]["code"] == "tlp"


@settings(max_examples=200, deadline=None)
@given(data=any_input(), mode=st.sampled_from(["ecs", "stix"]))
@example(data=b'{"data": "\\u0085"}', mode="ecs")  # a skip reason quoting U+0085
def test_any_input_gives_a_result_and_map_prints_exactly_it(data: bytes, mode: str) -> None:
    config = _config(mode=mode)
    result = bundle_to_actions(data, now=NOW, config=config)
    code, out, err = _cli_map(data, config)
    assert out == result.bulk()
    assert code == (2 if result.error else 0)
    skips = [
        {"skip": o.reason, "id": o.id} for o in result.outcomes if isinstance(o, Withheld | Skipped)
    ]
    assert [json.loads(line) for line in err if not line.startswith("elastic-connector")] == skips
    assert all(o.code != "internal_error" for o in result.skipped)
    json.dumps(result.to_dict())


_PYTHON_VALUES = st.recursive(
    _VALUES
    | st.binary(max_size=8)
    | st.datetimes()
    | st.decimals(allow_nan=False)
    | st.sets(st.integers(), max_size=2),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=_PYTHON_VALUES, now=st.datetimes() | st.none())
def test_no_python_value_makes_a_function_raise(value: object, now: datetime | None) -> None:
    # What a notebook may pass, whatever the annotations say.
    anything, moment = cast("bytes", value), cast("datetime", now)
    assert isinstance(bundle_to_actions(anything, now=moment), MapResult)
    single = indicator_to_ecs(anything, now=moment, related=[cast("dict[str, object]", value)])
    assert isinstance(single, Exported | Withheld | Deleted | Skipped | InputError)
    assert isinstance(alerts_to_sightings(anything), SightingsResult)
    assert isinstance(alerts_to_sightings(anything, config=cast("Config", value)), SightingsResult)
    assert isinstance(parse_pattern(cast("str", value)), ParsedPattern | InvalidPattern)
    assert isinstance(make_config(cast("dict[str, object]", value)), Config | InputError)


# --- indicator_to_ecs ----------------------------------------------------------------------


def test_one_indicator_is_the_outcome_it_has_in_its_bundle() -> None:
    objects = BUNDLE["objects"]
    assert isinstance(objects, list)
    in_bundle = bundle_to_actions(BUNDLE, now=NOW).outcomes
    for number, expected in zip((1, 2, 3, 4), in_bundle[:4], strict=True):
        assert indicator_to_ecs(objects[number - 1], now=NOW, related=objects) == expected
    assert indicator_to_ecs(objects[4], now=NOW) == in_bundle[4]


def test_what_an_indicator_refers_to_comes_in_related() -> None:
    custom = _indicator(
        4, "[domain-name:value = 'x.example']", object_marking_refs=[CUSTOM], created_by_ref=AUTHOR
    )
    alone = indicator_to_ecs(custom, now=NOW)
    assert isinstance(alone, Withheld)
    assert (alone.code, alone.subject) == ("unknown_marking", CUSTOM)
    known = indicator_to_ecs(
        custom, now=NOW, related=[MARKING, IDENTITY, _indicator(9, "[x:y = 'z']")]
    )
    assert isinstance(known, Exported)
    assert known.fields()["threat.indicator.provider"] == "ACME CERT"
    assert known.fields()["threat.indicator.marking.tlp"] == "AMBER+STRICT"


def test_indicator_to_ecs_maps_ecs_whatever_the_mode() -> None:
    first = _indicator(1, "[ipv4-addr:value = '198.51.100.7']")
    mapped = indicator_to_ecs(first, now=NOW, config={"connector": {"mode": "stix"}})
    assert isinstance(mapped, Exported)
    assert mapped.index == INDEX
    assert "threat" in mapped.document


def test_indicator_to_ecs_says_what_it_cannot_map() -> None:
    malware = indicator_to_ecs({"type": "malware", "id": "malware--1", "name": "m"}, now=NOW)
    assert malware == Skipped(
        id="malware--1",
        code="not_an_indicator",
        reason="not an indicator: only indicators become ECS documents",
    )
    assert indicator_to_ecs(BUNDLE, now=NOW) == InputError(
        "expected one STIX object or stream event, got 8"
    )
    assert isinstance(indicator_to_ecs("{", now=NOW), InputError)
    for related in (BUNDLE, None, "x"):
        wrong = indicator_to_ecs(
            _indicator(1, ""), now=NOW, related=cast("list[dict[str, object]]", related)
        )
        assert isinstance(wrong, InputError)
        assert wrong.reason.startswith("related must be a list of STIX objects")
    assert indicator_to_ecs({"x": 1}, now=NOW) == Skipped(
        id="item-1",
        code="not_a_stream_event",
        reason="not a stream event: neither a STIX object (type, id), a bundle nor a stream event "
        "(data)",
    )
    event = {
        "id": "7-0",
        "event": "create",
        "data": {"type": "create", "data": _indicator(1, "[ipv4-addr:value = '1.2.3.4']")},
    }
    assert isinstance(indicator_to_ecs(json.dumps(event), now=NOW), Exported)


# --- parse_pattern -------------------------------------------------------------------------


def test_a_pattern_prints_back_in_canonical_form() -> None:
    parsed = parse_pattern(
        "[ipv4-addr:value IN ('198.51.100.7','203.0.113.9')]  OR "
        "([file:name NOT = 'a.exe' AND EXISTS file:size])"
    )
    assert isinstance(parsed, ParsedPattern)
    assert str(parsed) == (
        "[ipv4-addr:value IN ('198.51.100.7', '203.0.113.9')] OR "
        "[file:name NOT = 'a.exe' AND EXISTS file:size]"
    )
    assert [c.to_dict() for c in parsed.comparisons] == [
        {
            "observation": 0,
            "path": "ipv4-addr:value",
            "operator": "IN",
            "value": "('198.51.100.7', '203.0.113.9')",
            "negated": False,
        },
        {
            "observation": 1,
            "path": "file:name",
            "operator": "=",
            "value": "'a.exe'",
            "negated": True,
        },
        {
            "observation": 1,
            "path": "file:size",
            "operator": "EXISTS",
            "value": None,
            "negated": False,
        },
    ]
    assert json.loads(json.dumps(parsed.to_dict()))["pattern"] == str(parsed)


def test_an_invalid_pattern_says_where_and_why() -> None:
    bad = parse_pattern("[ipv4-addr:value = '198.51.100.7'")
    assert bad == InvalidPattern(
        message="expected ']' or AND or OR but found end of input",
        position=33,
        expected=("']'", "AND", "OR"),
        found="",
    )
    assert str(bad) == "expected ']' or AND or OR but found end of input at position 33"
    assert bad.to_dict()["position"] == 33


@settings(max_examples=200, deadline=None)
@given(text=pattern_texts() | near_miss_texts())
def test_a_parsed_pattern_parses_back_to_itself(text: str) -> None:
    parsed = parse_pattern(text)
    if isinstance(parsed, ParsedPattern):
        again = parse_pattern(str(parsed))
        assert again == parsed
    else:
        assert 0 <= parsed.position <= len(text)


# --- alerts_to_sightings -------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(specs=alert_spec_lists(), legacy=st.booleans())
def test_every_alert_form_gives_what_the_sightings_command_prints(
    specs: list[AlertSpec], legacy: bool
) -> None:
    hits = [render_7x(spec) if legacy else render_8x(spec) for spec in specs]
    ndjson = b"".join(json.dumps(hit).encode() + b"\n" for hit in hits)
    config = _config()
    output, errors = io.StringIO(), io.StringIO()
    assert run_sightings(io.BytesIO(ndjson), output, errors, config) == 0
    result = alerts_to_sightings(ndjson, config=config)
    assert [json.loads(line) for line in _text_lines(output.getvalue())] == [
        s.to_dict() for s in result.sightings
    ]
    assert [json.loads(line) for line in _text_lines(errors.getvalue())] == [
        s.to_dict() for s in result.skipped
    ]
    response = {"took": 1, "hits": {"total": {"value": len(hits)}, "hits": hits}}
    for form in (hits, response, json.dumps(response), ndjson.decode()):
        other = alerts_to_sightings(form, config=config)
        assert other.sightings == result.sightings
        assert [s.reason for s in other.skipped] == [s.reason for s in result.skipped]


def test_alert_positions_name_their_unit() -> None:
    hit = json.dumps({"_id": "a", "_source": {}})
    assert alerts_to_sightings(f"{hit}\n\n[1]\n").skipped[1].to_dict() == {
        "skip": "not a JSON object (got array)",
        "line": 3,
    }
    response = {"hits": {"hits": [{"_id": "a", "_source": 5}]}}
    assert [s.to_dict() for s in alerts_to_sightings(response).skipped] == [
        {"skip": "_source is not an object (got number)", "hit": 1}
    ]
    items = alerts_to_sightings(cast("list[dict[str, object]]", [5, {"_source": 7}]))
    assert [(s.unit, s.position) for s in items.skipped] == [("item", 1), ("item", 2)]
    assert items.skipped[0].reason == "not an alert object (got int)"
    assert alerts_to_sightings(cast("bytes", 3.5)).error is not None
    bad_config = alerts_to_sightings(b"", config={"sightings": {"include_closed": "maybe"}})
    assert bad_config.error is not None
    assert bad_config.error.problems


def test_the_sightings_config_applies() -> None:
    def alert(number: int, status: str) -> dict[str, object]:
        ours = EnrichmentSpec(
            "ours",
            INDICATORS[0],
            "source.ip",
            "1.2.3.4",
            "ipv4-addr",
            OUR_INDEX,
            with_indicator_ids=False,  # claimed by its index only
        )
        moment = datetime(2025, 6, 1, 8, number, tzinfo=UTC)
        uuid = f"00000000-0000-4000-8000-{number:012d}"
        return render_8x(AlertSpec(uuid, moment, None, "IP", "r", "default", (ours,), status))

    alerts = [alert(1, "open"), alert(2, "closed")]
    (default,) = alerts_to_sightings(alerts).sightings
    assert default.count == 1
    (counted,) = alerts_to_sightings(
        alerts, config={"sightings": {"include_closed": True}}
    ).sightings
    assert counted.count == 2
    elsewhere = {"output": {"elasticsearch": {"index": "somewhere-else"}}}
    assert alerts_to_sightings(alerts, config=elsewhere).sightings == ()


def test_decimal_and_mode_values_are_not_special() -> None:
    # A Decimal (what some JSON loaders give) is encoded as the number it is.
    result = bundle_to_actions(
        [_indicator(1, "[ipv4-addr:value = '1.2.3.4']", confidence=Decimal(80))], now=NOW
    )
    (exported,) = result.exported
    assert exported.fields()["threat.indicator.confidence"] == "High"
    assert _config(mode="stix").connector.mode is Mode.STIX


@pytest.mark.parametrize("value", [b"\xff\xfe", "\ud800", b"{" * 10_000])
def test_odd_text_is_an_error_or_a_skip(value: bytes | str) -> None:
    result = bundle_to_actions(value, now=NOW)
    assert result.error is not None or result.skipped
    assert isinstance(alerts_to_sightings(value).skipped, tuple)
    msgspec.json.encode(result.to_dict())
