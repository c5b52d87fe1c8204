"""`elastic-connector sightings`: NDJSON alerts -> sighting lines, skips on stderr, exit codes."""

from __future__ import annotations

import dataclasses
import io
import json
import random as random_module
from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.config import (
    Config,
    ConnectorSettings,
    ElasticsearchSettings,
    OpenCTISettings,
    Secret,
)
from elastic_connector.sightings_command import run_sightings
from tests.core.sightings.alert_strategies import (
    FOREIGN_INDICES,
    INDICATORS,
    OUR_INDEX,
    AlertSpec,
    EnrichmentSpec,
    SuppressionSpec,
    alert_spec_lists,
    expected_pairs,
    render_7x,
    render_8x,
)

CONFIG = Config(
    opencti=OpenCTISettings(url="http://opencti:8080", token=Secret("token")),
    connector=ConnectorSettings(id="c0ffee00-0000-4000-8000-000000000001"),
)
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
A, B = sorted(INDICATORS[:2])


def ip(indicator: str, index: str = OUR_INDEX) -> EnrichmentSpec:
    return EnrichmentSpec("ours", indicator, "source.ip", "45.115.45.3", "ipv4-addr", index)


def port(indicator: str) -> EnrichmentSpec:
    return EnrichmentSpec("ours", indicator, "source.port", 57324, "ipv4-addr", OUR_INDEX)


def spec(n: int, *enrichments: EnrichmentSpec, rule: str = "IP match") -> AlertSpec:
    return AlertSpec(
        uuid=f"00000000-0000-4000-8000-{n:012d}",
        timestamp=T0 + timedelta(minutes=n),
        original_time=T0 + timedelta(seconds=n),
        rule_name=rule,
        rule_uuid="rule-uuid",
        space="default",
        enrichments=enrichments,
    )


def run(data: bytes, config: Config = CONFIG) -> tuple[int, list[dict[str, object]], list[str]]:
    output, errors = io.StringIO(), io.StringIO()
    code = run_sightings(io.BytesIO(data), output, errors, config)
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    return code, lines, errors.getvalue().splitlines()


def ndjson(*records: object) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def test_alerts_become_sighting_lines() -> None:
    hits = [
        render_8x(spec(1, ip(A), port(A))),  # one alert, two matched fields: counts once
        render_7x(spec(2, ip(A), rule="Legacy rule")),
        render_8x(spec(3, ip(B)))["_source"],  # a bare _source
    ]
    code, lines, errors = run(ndjson(*hits))
    assert code == 0
    assert errors == []
    assert lines == [
        {
            "indicator_id": A,
            "count": 2,
            "first_seen": "2024-05-01T12:00:01.000Z",
            "last_seen": "2024-05-01T12:00:02.000Z",
            "alert_ids": [
                "00000000-0000-4000-8000-000000000001",
                "00000000-0000-4000-8000-000000000002",
            ],
            "rules": ["IP match", "Legacy rule"],
        },
        {
            "indicator_id": B,
            "count": 1,
            "first_seen": "2024-05-01T12:00:03.000Z",
            "last_seen": "2024-05-01T12:00:03.000Z",
            "alert_ids": ["00000000-0000-4000-8000-000000000003"],
            "rules": ["IP match"],
        },
    ]


def test_malformed_lines_are_reported_with_their_line_number() -> None:
    good = json.dumps(render_8x(spec(1, ip(A)))).encode()
    data = b"\n".join(
        [
            b"{not json",
            good,
            b"",
            b"[1, 2]",
            b'{"kibana.alert.uuid": "x1", "@timestamp": "later"}',
            b'{"@timestamp": "2024-05-01T00:00:00Z"}',
        ]
    )
    code, lines, errors = run(data + b"\n")
    assert code == 0
    assert [line["indicator_id"] for line in lines] == [A]
    skips = [json.loads(error) for error in errors]
    assert [skip["line"] for skip in skips] == [1, 4, 5, 6]
    assert skips[0]["skip"].startswith("invalid JSON")
    assert skips[1]["skip"] == "not a JSON object (got array)"
    assert skips[2]["skip"] == "alert x1: @timestamp is not an ISO 8601 date: 'later'"
    assert skips[3]["skip"].startswith("no alert id")
    assert all(set(skip) == {"skip", "line"} for skip in skips)


def test_a_malformed_enrichment_is_reported_and_the_alert_still_counts() -> None:
    hit = render_8x(spec(1, ip(A)))
    source = hit["_source"]
    assert isinstance(source, dict)
    source["threat"]["enrichments"].append(7)
    code, lines, errors = run(ndjson({"_source": "bad", "_id": "z"}, hit, hit))
    assert code == 0
    assert lines[0]["count"] == 1
    assert [json.loads(error) for error in errors] == [
        {"skip": "_source is not an object (got string)", "line": 1},
        {
            "skip": "alert 00000000-0000-4000-8000-000000000001: "
            "threat.enrichments[1] is not an object (got number)",
            "line": 2,
        },
    ]


def test_foreign_alerts_produce_nothing() -> None:
    foreign = EnrichmentSpec(
        "foreign", "978785", "source.ip", "45.115.45.3", "ipv4-addr", FOREIGN_INDICES[0]
    )
    code, lines, errors = run(ndjson(render_8x(spec(1, foreign))))
    assert (code, lines, errors) == (0, [], [])


def test_the_configured_index_decides_ownership() -> None:
    custom = Config(
        opencti=CONFIG.opencti,
        connector=CONFIG.connector,
        elasticsearch=ElasticsearchSettings(index="cti-indicators"),
    )
    data = ndjson(render_8x(spec(1, ip(A, "cti-indicators-000002"))))
    assert [line["indicator_id"] for line in run(data, custom)[1]] == [A]
    unsigned = EnrichmentSpec(
        "ours", A, "source.ip", "1.2.3.4", "ipv4-addr", "cti-indicators", with_indicator_ids=False
    )
    assert run(ndjson(render_8x(spec(1, unsigned))))[1] == []


def test_a_saved_search_response_is_read_too() -> None:
    response = {
        "took": 3,
        "hits": {"hits": [render_8x(spec(1, ip(A))), {"_source": 1}, render_8x(spec(2, ip(A)))]},
    }
    code, lines, errors = run(json.dumps(response, indent=2).encode())
    assert code == 0
    assert lines[0]["count"] == 2
    assert [json.loads(error) for error in errors] == [
        {"skip": "_source is not an object (got number)", "hit": 2}
    ]


def test_empty_input_and_byte_order_mark() -> None:
    assert run(b"") == (0, [], [])
    assert run(b"\n \n") == (0, [], [])
    code, lines, _ = run(b"\xef\xbb\xbf" + ndjson(render_8x(spec(1, ip(A)))))
    assert (code, len(lines)) == (0, 1)


class _Unreadable(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: object) -> int:
        raise OSError(5, "Input/output error")


def test_unreadable_input_exits_2_with_one_line() -> None:
    output, errors = io.StringIO(), io.StringIO()
    code = run_sightings(io.BufferedReader(_Unreadable()), output, errors, CONFIG)
    assert code == 2
    assert output.getvalue() == ""
    assert errors.getvalue().count("\n") == 1
    assert errors.getvalue().startswith("elastic-connector sightings: cannot read input:")


@given(alert_spec_lists(max_size=12), st.randoms(use_true_random=False))
def test_output_matches_the_oracle_and_ignores_line_order(
    specs: list[AlertSpec], random: random_module.Random
) -> None:
    hits = [render_8x(s) for s in specs]
    code, lines, errors = run(ndjson(*hits))
    assert (code, errors) == (0, [])
    pairs = expected_pairs(specs)
    found: set[tuple[object, object]] = set()
    for line in lines:
        alert_ids = line["alert_ids"]
        assert isinstance(alert_ids, list)
        found.update((alert_id, line["indicator_id"]) for alert_id in alert_ids)
    assert found == pairs
    assert [line["indicator_id"] for line in lines] == sorted({i for _, i in pairs})
    shuffled = list(hits)
    random.shuffle(shuffled)
    assert run(ndjson(*shuffled))[1] == lines


def test_closed_alerts_and_suppressed_matches_as_the_poller_counts_them() -> None:
    held = dataclasses.replace(
        spec(1, ip(A)),
        suppression=SuppressionSpec(docs_count=4, start=T0, end=T0, last_detected=T0),
    )
    closed = dataclasses.replace(spec(2, ip(A)), workflow_status="closed")
    code, lines, _ = run(ndjson(render_8x(held), render_8x(closed)))
    assert code == 0
    assert [(line["count"], line.get("suppressed_of")) for line in lines] == [
        (1, None),
        (4, held.uuid),
    ]
    with_closed = msgspec.structs.replace(
        CONFIG, sightings=msgspec.structs.replace(CONFIG.sightings, include_closed=True)
    )
    _, lines, _ = run(ndjson(render_8x(held), render_8x(closed)), with_closed)
    assert [line["count"] for line in lines] == [2, 4]
