"""Alert -> sighting aggregation, ownership, Kibana links, and the alert cursor/search body."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Success

from elastic_connector.core.config import (
    Config,
    ConnectorSettings,
    ElasticsearchSettings,
    OpenCTISettings,
    Secret,
)
from elastic_connector.core.sightings.aggregation import (
    Aggregation,
    AlertCursor,
    OwnershipRule,
    SightingPayload,
    aggregate,
    claim,
    cursor_from_state,
    cursor_to_state,
    describe,
    epoch_millis,
    format_time,
    hit_position,
    kibana_alert_link,
    merge_sightings,
    next_cursor,
    ownership_for,
    schema_for_index,
    search_body,
)
from elastic_connector.core.sightings.alerts import (
    Alert,
    AlertError,
    AlertSchema,
    Enrichment,
    get_path,
)
from tests.core.sightings.alert_strategies import (
    COPY_INDICES,
    FOREIGN_INDICES,
    INDICATORS,
    OUR_INDEX,
    AlertSpec,
    EnrichmentSpec,
    JsonObject,
    Kind,
    alert_spec_lists,
    alert_specs,
    build_alert_specs,
    cuts,
    enrichment_specs,
    expected_pairs,
    millis_times,
    render_7x,
    render_8x,
    standard_id,
)
from tests.core.sightings.test_alerts import ok

OURS = OwnershipRule(indices=(OUR_INDEX,))
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
IND = INDICATORS[0]


def decode_all(hits: Sequence[JsonObject]) -> list[Alert]:
    return [ok(hit) for hit in hits]


def run(
    specs: Sequence[AlertSpec],
    render: Callable[[AlertSpec], JsonObject] = render_8x,
    ours: OwnershipRule = OURS,
    kibana_url: str | None = None,
) -> Aggregation:
    return aggregate(decode_all([render(spec) for spec in specs]), ours, kibana_url)


def ip(kind: Kind = "ours", indicator: str = IND, index: str = OUR_INDEX) -> EnrichmentSpec:
    return EnrichmentSpec(kind, indicator, "source.ip", "45.115.45.3", "ipv4-addr", index)


def port(kind: Kind = "ours", indicator: str = IND, index: str = OUR_INDEX) -> EnrichmentSpec:
    return EnrichmentSpec(kind, indicator, "source.port", 57324, "ipv4-addr", index)


def alert(
    n: int,
    *enrichments: EnrichmentSpec,
    seen: datetime | None = None,
    rule: str = "IP match",
    space: str = "default",
) -> AlertSpec:
    return AlertSpec(
        uuid=f"00000000-0000-4000-8000-{n:012d}",
        timestamp=T0 + timedelta(minutes=n),
        original_time=seen,
        rule_name=rule,
        rule_uuid=f"rule-{rule}",
        space=space,
        enrichments=enrichments,
    )


def dig(value: object, *keys: str | int) -> object:
    """``value[k1][k2]...`` through dicts and lists, asserting the shape on the way."""
    for key in keys:
        if isinstance(key, int):
            assert isinstance(value, list)
            value = value[key]
        else:
            assert isinstance(value, dict)
            value = value[key]
    return value


def only(aggregation: Aggregation) -> SightingPayload:
    assert len(aggregation.sightings) == 1, aggregation
    return aggregation.sightings[0]


# --- ownership ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "owned"),
    [
        (OUR_INDEX, True),
        (f"{OUR_INDEX}-000001", True),
        (f".ds-{OUR_INDEX}-2024.05.01-000003", True),
        (f"remote:{OUR_INDEX}", True),
        (f"{OUR_INDEX}x", False),
        (f"x{OUR_INDEX}", False),
        ("logs-ti_opencti_connector_indicator", False),  # the dot is literal, not a wildcard
        ("filebeat-8.0.0-2021.01.26-000001", False),
    ],
)
def test_owns_index(index: str, owned: bool) -> None:
    assert OURS.owns_index(index) is owned


def test_owns_index_with_a_pattern() -> None:
    rule = OwnershipRule(indices=("opencti-ti-*",))
    assert rule.owns_index("opencti-ti-2024")
    assert rule.owns_index("opencti-ti-")
    assert not rule.owns_index("opencti-tix")


def test_ownership_for_config_uses_the_configured_index() -> None:
    opencti = OpenCTISettings(url="http://opencti:8080", token=Secret("t"))
    connector = ConnectorSettings(id="c0ffee00-0000-4000-8000-000000000001")
    assert ownership_for(Config(opencti=opencti, connector=connector)).owns_index(OUR_INDEX)
    custom = Config(
        opencti=opencti, connector=connector, elasticsearch=ElasticsearchSettings(index="cti")
    )
    assert ownership_for(custom).indices == ("cti",)
    assert ownership_for(custom).owns_index("cti-000002")
    assert not ownership_for(custom).owns_index(OUR_INDEX)


def enrichment(
    matched_id: str | None = None,
    matched_index: str | None = None,
    matched_type: str | None = None,
    indicator_ids: tuple[str, ...] = (),
) -> Enrichment:
    return Enrichment(
        position=0,
        matched_id=matched_id,
        matched_index=matched_index,
        matched_type=matched_type,
        indicator_ids=indicator_ids,
    )


def test_claim_from_our_index_uses_matched_id() -> None:
    ids = ("b" * 8 + "-bbbb-4bbb-8bbb-" + "b" * 12, standard_id(IND))
    found = enrichment(matched_id=IND, matched_index=OUR_INDEX, indicator_ids=ids)
    assert claim(found, OURS) == IND


def test_claim_from_our_index_without_matched_id_uses_the_internal_id() -> None:
    ids = (standard_id(IND), IND.upper())
    assert claim(enrichment(matched_index=OUR_INDEX, indicator_ids=ids), OURS) == IND
    standard_only = enrichment(matched_index=OUR_INDEX, indicator_ids=(standard_id(IND),))
    assert claim(standard_only, OURS) == standard_id(IND)


def test_claim_from_our_index_with_no_id_is_an_error() -> None:
    claimed = claim(enrichment(matched_index=OUR_INDEX, indicator_ids=("x",)), OURS)
    assert isinstance(claimed, AlertError)
    assert OUR_INDEX in claimed.reason


def test_claim_from_another_index_needs_our_id_signature() -> None:
    signature = (IND, standard_id(IND))
    copied = enrichment(matched_id="doc-1", matched_index="restored", indicator_ids=signature)
    assert claim(copied, OURS) == IND
    assert claim(copied, OwnershipRule(indices=(OUR_INDEX,), trust_indicator_ids=False)) is None
    uuid_only = enrichment(matched_id="doc-1", matched_index="other", indicator_ids=(IND,))
    assert claim(uuid_only, OURS) is None
    stix_only = enrichment(matched_index="other", indicator_ids=(standard_id(IND),))
    assert claim(stix_only, OURS) is None


def test_claim_ignores_enrichments_not_from_an_indicator_match_rule() -> None:
    other = enrichment(matched_id=IND, matched_index=OUR_INDEX, matched_type="investigation_time")
    assert claim(other, OURS) is None
    untyped = enrichment(matched_id=IND, matched_index=OUR_INDEX)
    assert claim(untyped, OURS) == IND


# --- aggregation rules ----------------------------------------------------------------------


def test_one_alert_matching_one_indicator_on_two_fields_counts_once() -> None:
    sighting = only(run([alert(1, ip(), port(), seen=T0)]))
    assert sighting.indicator_id == IND
    assert sighting.count == 1
    assert sighting.alert_ids == ("00000000-0000-4000-8000-000000000001",)
    assert sighting.alerts[0].matched_fields == ("source.ip", "source.port")


def test_count_is_the_number_of_distinct_alerts() -> None:
    specs = [alert(1, ip(), port()), alert(2, ip()), alert(3, port())]
    assert only(run(specs)).count == 3


def test_seen_times_come_from_original_time_then_timestamp() -> None:
    early = T0 - timedelta(hours=1)
    specs = [alert(1, ip(), seen=early), alert(2, ip()), alert(3, ip(), seen=T0)]
    sighting = only(run(specs))
    assert sighting.first_seen == early
    assert sighting.last_seen == T0 + timedelta(minutes=2)  # alert 2's @timestamp


def test_one_alert_can_sight_several_indicators() -> None:
    other = INDICATORS[1]
    result = run([alert(1, ip(), port(indicator=other))])
    assert [s.indicator_id for s in result.sightings] == sorted([IND, other])
    assert all(s.count == 1 for s in result.sightings)


def test_rules_and_spaces_are_distinct_and_sorted() -> None:
    specs = [
        alert(1, ip(), rule="b rule", space="soc"),
        alert(2, ip(), rule="a rule"),
        alert(3, ip(), rule="b rule"),
    ]
    sighting = only(run(specs))
    assert sighting.rules == ("a rule", "b rule")
    assert sighting.rule_uuids == ("rule-a rule", "rule-b rule")
    assert sighting.space_ids == ("default", "soc")


def test_foreign_enrichments_are_ignored() -> None:
    foreign = ip("foreign", "978785", FOREIGN_INDICES[0])
    assert run([alert(1, foreign)]).sightings == ()
    assert run([alert(1, foreign)]).skipped == ()
    assert only(run([alert(1, foreign, ip())])).count == 1


def test_enrichments_of_a_copied_index_count_through_their_indicator_ids() -> None:
    copied = ip("copy", IND, COPY_INDICES[0])
    sighting = only(run([alert(1, copied), alert(2, ip())]))
    assert sighting.indicator_id == IND
    assert sighting.count == 2


def test_the_same_alert_read_twice_counts_once() -> None:
    spec = alert(1, ip())
    assert only(run([spec, spec])).count == 1


def test_skips_are_reported_with_the_alert_id() -> None:
    hit = render_8x(alert(1, ip()))
    source = hit["_source"]
    assert isinstance(source, dict)
    source["threat"]["enrichments"].extend(
        ["junk", {"matched": {"index": OUR_INDEX}, "indicator": {"id": []}}]
    )
    result = aggregate([ok(hit)], OURS)
    assert only(result).count == 1
    assert [(s.alert_id, s.reason.split(" ")[0]) for s in result.skipped] == [
        ("00000000-0000-4000-8000-000000000001", "threat.enrichments[1]"),
        ("00000000-0000-4000-8000-000000000001", "threat.enrichments[2]"),
    ]


def test_kibana_links_when_a_kibana_url_is_configured() -> None:
    sighting = only(run([alert(1, ip(), space="soc")], kibana_url="https://kibana.example/"))
    assert sighting.alerts[0].url == (
        "https://kibana.example/s/soc/app/security/alerts/redirect/"
        "00000000-0000-4000-8000-000000000001"
        "?index=.alerts-security.alerts-soc&timestamp=2024-05-01T12:01:00.000Z"
    )
    assert only(run([alert(1, ip())])).alerts[0].url is None
    signals = only(run([alert(1, ip())], render_7x, kibana_url="https://kibana.example"))
    assert signals.alerts[0].url is None  # 7.x Kibana has no alert redirect page


def test_kibanas_own_alert_url_is_kept_without_configuration() -> None:
    hit = render_8x(alert(1, ip()))
    source = hit["_source"]
    assert isinstance(source, dict)
    source["kibana.alert.url"] = "https://k/app/security/alerts/redirect/x"
    assert (
        only(aggregate([ok(hit)], OURS)).alerts[0].url == "https://k/app/security/alerts/redirect/x"
    )


def test_identity_is_deterministic_and_depends_on_the_alert_set() -> None:
    specs = [alert(1, ip()), alert(2, ip())]
    first, again = only(run(specs)), only(run(list(reversed(specs))))
    assert first == again
    assert first.stix_id == again.stix_id
    assert first.stix_id.startswith("sighting--")
    assert only(run(specs[:1])).stix_id != first.stix_id
    assert only(run([alert(1, ip(indicator=INDICATORS[1]))])).key != only(run(specs[:1])).key


def test_describe() -> None:
    sighting = only(run([alert(1, ip(), port(), seen=T0), alert(2, ip(), rule="URL match")]))
    assert describe(sighting) == (
        "2 Elastic Security indicator match alerts from IP match, URL match, "
        "2024-05-01T12:00:00.000Z to 2024-05-01T12:02:00.000Z; "
        "matched on source.ip, source.port."
    )
    single = only(run([alert(3, ip())]))
    assert describe(single).startswith("1 Elastic Security indicator match alert from IP match,")


def test_format_time() -> None:
    moment = datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=UTC) + timedelta(hours=0)
    assert format_time(moment) == "2024-05-01T14:00:00.123Z"


# --- Kibana links (Kibana's own snapshot tests for getAlertDetailsUrl) ------------------------


def test_kibana_alert_link_matches_kibana() -> None:
    stamp = datetime(2023, 4, 18, tzinfo=UTC)
    assert kibana_alert_link(
        "http://somebasepath.com", "default", "testId", stamp, "testIndex"
    ) == (
        "http://somebasepath.com/app/security/alerts/redirect/testId"
        "?index=testIndex&timestamp=2023-04-18T00:00:00.000Z"
    )
    assert kibana_alert_link(
        "http://somebasepath.com", "test-space", "testId", stamp, "testIndex"
    ) == (
        "http://somebasepath.com/s/test-space/app/security/alerts/redirect/testId"
        "?index=testIndex&timestamp=2023-04-18T00:00:00.000Z"
    )


def test_kibana_alert_link_escapes() -> None:
    link = kibana_alert_link("https://k/base/", "a b", "id/1?x", T0)
    assert link.startswith("https://k/base/s/a%20b/app/security/alerts/redirect/id%2F1%3Fx?")
    assert "index=.alerts-security.alerts-a%20b&" in link


# --- cursor and search body -----------------------------------------------------------------


def test_search_body_first_poll() -> None:
    body = search_body(None, 500, T0)
    assert body["size"] == 500
    assert "search_after" not in body
    assert body["sort"] == [
        {"@timestamp": {"order": "asc"}},
        {"kibana.alert.uuid": {"order": "asc", "unmapped_type": "keyword"}},
    ]
    assert dig(body, "query", "bool", "filter", 0) == {
        "range": {"@timestamp": {"gte": epoch_millis(T0), "format": "epoch_millis"}}
    }
    should = dig(body, "query", "bool", "filter", 1, "bool", "should")
    assert isinstance(should, list)
    assert {"term": {"kibana.alert.rule.type": "threat_match"}} in should
    assert {"term": {"signal.rule.type": "threat_match"}} in should


def test_search_body_after_a_cursor_ignores_since_and_bounds_until() -> None:
    cursor = AlertCursor(1_714_564_800_123, "abc")
    body = search_body(cursor, 10, T0 + timedelta(days=30), until=T0 + timedelta(days=1))
    assert body["search_after"] == [1_714_564_800_123, "abc"]
    assert dig(body, "query", "bool", "filter", 0, "range", "@timestamp") == {
        "gte": 1_714_564_800_123,
        "lt": epoch_millis(T0 + timedelta(days=1)),  # exclusive: polls end on a grid line
        "format": "epoch_millis",
    }


def test_search_body_for_7x_signals_breaks_ties_on_id() -> None:
    body = search_body(None, 10, T0, schema=AlertSchema.SIGNALS)
    assert body["sort"] == [{"@timestamp": {"order": "asc"}}, {"_id": {"order": "asc"}}]
    assert schema_for_index(".siem-signals-default") is AlertSchema.SIGNALS
    assert schema_for_index(".alerts-security.alerts-*") is AlertSchema.ALERTS


def test_hit_position_prefers_sort_values() -> None:
    spec = alert(1, ip())
    hit = render_8x(spec)
    assert hit_position(hit) == AlertCursor(spec.timestamp_ms, spec.uuid)
    hit["sort"] = [5, "z", 99]  # a point in time appends _shard_doc
    assert hit_position(hit) == AlertCursor(5, "z")
    hit["sort"] = ["2024-05-01T12:00:00.000Z", "z"]
    assert hit_position(hit) == AlertCursor(epoch_millis(T0), "z")
    assert hit_position(render_8x(spec, with_sort=False)) == AlertCursor(
        spec.timestamp_ms, spec.uuid
    )
    assert hit_position({"_source": [], "sort": [1, "a"]}) == AlertCursor(1, "a")
    assert hit_position({"_source": []}) is None
    assert hit_position({"_source": [], "sort": [True, "a"]}) is None


def test_next_cursor() -> None:
    hits = [render_8x(alert(n, ip())) for n in (1, 2, 3)]
    last = AlertCursor(
        epoch_millis(T0 + timedelta(minutes=3)), "00000000-0000-4000-8000-000000000003"
    )
    assert next_cursor(None, hits) == last
    assert next_cursor(None, []) is None
    ahead = AlertCursor(last.timestamp_ms + 1, "")
    assert next_cursor(ahead, hits) == ahead  # never moves back
    assert next_cursor(last, []) == last
    broken: JsonObject = {"_source": "broken", "sort": [last.timestamp_ms, "zzz"]}
    malformed_tail = [*hits, broken]
    assert next_cursor(None, malformed_tail) == AlertCursor(last.timestamp_ms, "zzz")


def test_cursor_state_round_trip() -> None:
    cursor = AlertCursor(1_714_564_800_123, "abc")
    assert cursor_from_state(cursor_to_state(cursor)) == Success(cursor)
    assert cursor_from_state(None) == Success(None)
    for bad in ({"timestamp_ms": "x", "tiebreaker": "a"}, {"tiebreaker": "a"}, [1], "c"):
        result = cursor_from_state(bad)
        assert isinstance(result, Failure)
        assert "invalid alert cursor" in result.failure().reason
    assert cursor.timestamp == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)


# --- properties -----------------------------------------------------------------------------


def counted(aggregation: Aggregation) -> set[tuple[str, str]]:
    return {(a, s.indicator_id) for s in aggregation.sightings for a in s.alert_ids}


@given(alert_spec_lists())
def test_counts_equal_distinct_alert_indicator_pairs(specs: list[AlertSpec]) -> None:
    result = run(specs)
    pairs = expected_pairs(specs)
    assert counted(result) == pairs
    per_indicator = Counter(indicator for _, indicator in pairs)
    assert {s.indicator_id: s.count for s in result.sightings} == dict(per_indicator)
    for sighting in result.sightings:
        assert sighting.count == len(sighting.alert_ids) == len(sighting.alerts)
        assert sighting.first_seen <= sighting.last_seen
        seen = [spec.seen for spec in specs if (spec.uuid, sighting.indicator_id) in pairs]
        assert (sighting.first_seen, sighting.last_seen) == (min(seen), max(seen))
    assert result.skipped == ()


@given(alert_spec_lists(), st.lists(st.integers(0, 12), max_size=5))
def test_folding_pages_equals_one_pass(specs: list[AlertSpec], cuts_at: list[int]) -> None:
    bounds = sorted({0, len(specs), *(min(c, len(specs)) for c in cuts_at)})
    pages = [specs[a:b] for a, b in itertools.pairwise(bounds)]
    per_page = [run(page).sightings for page in pages]
    folded = merge_sightings(s for page in per_page for s in page)
    assert folded == run(specs).sightings
    # Pages are disjoint, so counts simply add up.
    totals: Counter[str] = Counter()
    for page in per_page:
        totals.update({s.indicator_id: s.count for s in page})
    assert {s.indicator_id: s.count for s in folded} == dict(totals)


@given(alert_spec_lists())
def test_aggregation_ignores_input_order(specs: list[AlertSpec]) -> None:
    assert run(specs) == run(list(reversed(specs)))


@given(alert_spec_lists(), st.data())
def test_foreign_enrichments_change_nothing(specs: list[AlertSpec], data: st.DataObject) -> None:
    with_foreign = [
        replace(
            spec,
            enrichments=spec.enrichments
            + tuple(data.draw(st.lists(enrichment_specs(("foreign",)), max_size=3))),
        )
        for spec in specs
    ]
    assert run(with_foreign) == run(specs)


@given(alert_spec_lists(max_size=10), cuts())
def test_dotted_nested_and_mixed_writings_aggregate_the_same(
    specs: list[AlertSpec], cut: Callable[[str], int]
) -> None:
    expected = run(specs)
    assert run(specs, lambda s: render_8x(s, "nested")) == expected
    assert run(specs, lambda s: render_8x(s, "dotted")) == expected
    assert run(specs, lambda s: render_8x(s, cut=cut)) == expected


@given(alert_spec_lists())
def test_7x_and_8x_writings_aggregate_the_same(specs: list[AlertSpec]) -> None:
    assert run(specs, render_7x) == run(specs)


@given(alert_spec_lists(), st.integers(0, 12))
def test_a_retried_page_gives_identical_payloads(page: list[AlertSpec], cut: int) -> None:
    first = run(page)
    assert run(page) == first
    # Another set of alerts never takes the identity of this one.
    head, tail = run(page[:cut]), run(page[cut:])
    for part in (head, tail):
        for sighting in part.sightings:
            same = next(s for s in first.sightings if s.indicator_id == sighting.indicator_id)
            assert (sighting.key == same.key) == (sighting.alert_ids == same.alert_ids)


@given(st.lists(st.lists(alert_specs(), max_size=5), max_size=4), st.data())
def test_cursor_is_monotone(pages: list[list[AlertSpec]], data: st.DataObject) -> None:
    cursor: AlertCursor | None = None
    for page in pages:
        hits = [render_8x(spec, with_sort=data.draw(st.booleans())) for spec in page]
        moved = next_cursor(cursor, hits)
        if cursor is not None:
            assert moved is not None
            assert moved >= cursor
        for spec in page:
            assert moved is not None
            assert moved >= AlertCursor(spec.timestamp_ms, spec.uuid)
        cursor = moved


# A small interpreter of the search body, to check that cursor and query agree: whatever the
# page size and however many alerts share a millisecond, every alert is read exactly once.


def _sort_key(hit: JsonObject, body: dict[str, object]) -> tuple[object, ...]:
    sort = body["sort"]
    assert isinstance(sort, list)
    key: list[object] = []
    for clause in sort:
        (field,) = clause
        source = hit["_source"]
        assert isinstance(source, dict)
        if field == "@timestamp":
            key.append(ok(hit).timestamp)
        elif field == "_id":
            key.append(hit["_id"])
        else:
            key.append(get_path(source, field))
    return tuple(key)


def search(body: dict[str, object], hits: Sequence[JsonObject]) -> list[JsonObject]:
    bounds = dig(body, "query", "bool", "filter", 0, "range", "@timestamp")
    assert isinstance(bounds, dict)
    assert bounds["format"] == "epoch_millis"

    def visible(hit: JsonObject) -> bool:
        stamp = epoch_millis(ok(hit).timestamp)
        return bounds["gte"] <= stamp and ("lt" not in bounds or stamp < bounds["lt"])

    ordered = sorted((h for h in hits if visible(h)), key=lambda h: _sort_key(h, body))
    after = body.get("search_after")
    if after is not None:
        assert isinstance(after, list)
        wanted = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=after[0]), after[1])
        ordered = [h for h in ordered if _sort_key(h, body) > wanted]
    size = body["size"]
    assert isinstance(size, int)
    # The server returns sort values; the cursor is computed from them.
    return [
        {**h, "sort": [epoch_millis(ok(h).timestamp), _sort_key(h, body)[1]]}
        for h in ordered[:size]
    ]


@given(
    alert_spec_lists(max_size=20, times=millis_times(1_714_564_800_000, 1_714_564_800_004)),
    st.integers(1, 7),
    st.sampled_from(("8x", "7x")),
)
def test_paging_reads_every_alert_exactly_once(
    specs: list[AlertSpec], page_size: int, generation: str
) -> None:
    render = render_8x if generation == "8x" else render_7x
    schema = AlertSchema.ALERTS if generation == "8x" else AlertSchema.SIGNALS
    hits = [render(spec) for spec in specs]
    since = datetime(2024, 5, 1, tzinfo=UTC)
    cursor: AlertCursor | None = None
    read: list[str] = []
    pages: list[Aggregation] = []
    for _ in range(len(specs) + 2):
        page = search(search_body(cursor, page_size, since, schema=schema), hits)
        if not page:
            break
        read.extend(ok(hit).id for hit in page)
        pages.append(aggregate(decode_all(page), OURS))
        cursor = next_cursor(cursor, page)
    assert sorted(read) == sorted(spec.uuid for spec in specs)
    assert len(read) == len(set(read))
    folded = merge_sightings(s for page in pages for s in page.sightings)
    assert folded == run(specs, render).sightings


def test_the_benchmark_builder_makes_countable_alerts() -> None:
    specs = build_alert_specs(30)
    result = run(specs)
    assert sum(s.count for s in result.sightings) == 30
    assert {s.indicator_id for s in result.sightings} == set(INDICATORS)
    assert all(len(a.matched_fields) == 2 for s in result.sightings for a in s.alerts)
