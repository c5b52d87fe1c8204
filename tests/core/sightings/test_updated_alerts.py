"""The core rules for alerts Kibana updates in place (suppression, workflow status), the page
grid and identity, and the read-back judgement of a sighting's count."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.sightings.aggregation import (
    DEFAULT_RULE_INTERVAL,
    PAGE_GRID_MS,
    OwnershipRule,
    StoredSighting,
    aggregate,
    count_problem,
    counts,
    epoch_millis,
    grid_cell,
    grid_floor,
    scoped,
    suppressed_payloads,
    suppression_final_at,
)
from elastic_connector.core.sightings.alerts import Alert, decode_hit, parse_interval
from tests.core.sightings.alert_strategies import (
    OUR_INDEX,
    AlertSpec,
    Cut,
    Shape,
    SuppressionSpec,
    alert_specs,
    build_alert_specs,
    cuts,
    millis_times,
    render_8x,
)

OURS = OwnershipRule(indices=(OUR_INDEX,))
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def decode(spec: AlertSpec, cut: Cut | None = None, shape: Shape = "kibana") -> Alert:
    return decode_hit(render_8x(spec, shape, cut=cut)).unwrap()


def with_suppression(spec: AlertSpec, docs: int, window: tuple[int, str] | None) -> AlertSpec:
    return dataclasses.replace(
        spec,
        suppression=SuppressionSpec(
            docs_count=docs,
            start=spec.timestamp - timedelta(minutes=1),
            end=spec.timestamp + timedelta(minutes=3),
            last_detected=spec.timestamp + timedelta(minutes=4),
            window=window,
        ),
    )


# --- decoding -----------------------------------------------------------------------------------


def test_a_suppressed_alert_as_kibana_writes_it() -> None:
    [spec] = build_alert_specs(1, start=T0)
    alert = decode(with_suppression(spec, 7, (2, "h")))
    assert alert.suppression is not None
    assert (alert.suppression.docs_count, alert.suppression.window_ms) == (7, 2 * 3_600_000)
    assert alert.suppression.start == T0 - timedelta(minutes=1)
    assert alert.suppression.end == T0 + timedelta(minutes=3)
    assert alert.last_detected == T0 + timedelta(minutes=4)
    assert alert.detected == T0 + timedelta(minutes=4)
    assert (alert.alert_start, alert.rule_interval_ms) == (T0, 300_000)
    assert (alert.workflow_status, alert.building_block_type, alert.closed) == ("open", None, False)


@given(alert_specs(kinds=("ours",)), st.integers(0, 10**6), cuts())
def test_suppression_reads_the_same_in_any_writing(spec: AlertSpec, docs: int, cut: Cut) -> None:
    """Kibana's flattened keys, nested objects or any mixture: the same suppression."""
    spec = with_suppression(spec, docs, (5, "m"))
    kibana = decode(spec)
    mixed = decode(spec, cut=cut)
    nested = decode(spec, shape="nested")
    assert kibana.suppression == mixed.suppression == nested.suppression
    assert kibana.suppression is not None
    assert kibana.suppression.docs_count == docs


def test_building_block_and_closed_alerts() -> None:
    [spec] = build_alert_specs(1, start=T0)
    alert = decode(dataclasses.replace(spec, building_block=True, workflow_status="closed"))
    assert (alert.building_block_type, alert.closed) == ("default", True)


def test_unreadable_suppression_fields_keep_the_alert_and_say_why() -> None:
    [spec] = build_alert_specs(1, start=T0)
    hit = render_8x(with_suppression(spec, 3, None))
    source = hit["_source"]
    assert isinstance(source, dict)
    source["kibana.alert.suppression.docs_count"] = "many"
    alert = decode_hit(hit).unwrap()
    assert alert.suppression is None
    assert alert.skipped == ("kibana.alert.suppression.docs_count is not a count (got string)",)
    assert sum(s.count for s in aggregate([alert], OURS).sightings) == 1  # still counts once


@pytest.mark.parametrize(
    ("text", "ms"),
    [("5m", 300_000), ("30s", 30_000), ("1h", 3_600_000), ("2d", 172_800_000), ("x", None)],
)
def test_rule_intervals(text: str, ms: int | None) -> None:
    assert parse_interval(text) == ms
    assert parse_interval(5) is None


# --- when suppressed matches are final ----------------------------------------------------------


def test_a_window_closes_one_rule_interval_after_it_ends() -> None:
    [spec] = build_alert_specs(1, start=T0)
    assert suppression_final_at(decode(spec)) is None  # not a suppressed alert
    windowed = decode(with_suppression(spec, 2, (30, "m")))
    assert suppression_final_at(windowed) == T0 + timedelta(minutes=35)
    per_run = decode(dataclasses.replace(with_suppression(spec, 2, None), rule_interval="1m"))
    assert suppression_final_at(per_run) == T0 + timedelta(minutes=1)
    unknown = msgspec.structs.replace(per_run, rule_interval_ms=None)
    assert suppression_final_at(unknown) == T0 + DEFAULT_RULE_INTERVAL


@given(alert_specs(kinds=("ours", "copy", "foreign")), st.integers(0, 50))
def test_suppressed_matches_are_one_sighting_per_indicator_identified_by_the_alert(
    spec: AlertSpec, docs: int
) -> None:
    alert = decode(with_suppression(spec, docs, (1, "h")))
    payloads = suppressed_payloads(alert, OURS)
    sighted = {e.sighted for e in spec.enrichments if e.sighted is not None}
    if docs == 0:
        assert payloads == ()
        return
    assert {p.indicator_id for p in payloads} == sighted
    assert all(p.count == docs and p.suppressed_of == alert.id for p in payloads)
    assert all(p.detection == alert.detected for p in payloads)
    # The same alert read again with more matches is still the same sighting.
    more = suppressed_payloads(decode(with_suppression(spec, docs + 3, (1, "h"))), OURS)
    assert [p.stix_id for p in more] == [p.stix_id for p in payloads]
    assert len({p.stix_id for p in payloads}) == len(payloads)


# --- which alerts count --------------------------------------------------------------------------


def test_closed_alerts_date_the_page_but_count_only_when_asked() -> None:
    specs = build_alert_specs(3, indicators=("i-1",), start=T0, step=timedelta(seconds=1))
    specs[2] = dataclasses.replace(specs[2], workflow_status="closed")
    alerts = [decode(spec) for spec in specs]
    assert [counts(a, include_closed=False) for a in alerts] == [True, True, False]
    assert all(counts(a, include_closed=True) for a in alerts)
    [without] = aggregate(alerts, OURS, include_closed=False).sightings
    [with_closed] = aggregate(alerts, OURS).sightings
    assert (without.count, with_closed.count) == (2, 3)
    assert without.detection == with_closed.detection == specs[2].timestamp


def test_building_block_alerts_count() -> None:
    [spec] = build_alert_specs(1, start=T0)
    assert counts(decode(dataclasses.replace(spec, building_block=True)), include_closed=False)


# --- pages ----------------------------------------------------------------------------------------


@given(millis_times())
def test_the_page_grid(moment: datetime) -> None:
    floor = grid_floor(moment)
    assert floor <= moment < floor + timedelta(milliseconds=PAGE_GRID_MS)
    assert epoch_millis(floor) % PAGE_GRID_MS == 0
    assert grid_cell(epoch_millis(moment)) == grid_cell(epoch_millis(floor))


def test_a_scope_identifies_a_page_whatever_alerts_it_holds() -> None:
    specs = build_alert_specs(4, indicators=("i-1",), start=T0)
    [full] = aggregate([decode(s) for s in specs], OURS).sightings
    [fewer] = aggregate([decode(s) for s in specs[:2]], OURS).sightings
    assert full.stix_id != fewer.stix_id  # by alert ids
    assert scoped(full, "page:a>b").stix_id == scoped(fewer, "page:a>b").stix_id
    assert scoped(full, "page:a>b").stix_id != scoped(full, "page:a>c").stix_id


# --- what the platform did with a write -----------------------------------------------------------


def _upsert(
    before: StoredSighting | None, count: int, first: datetime, last: datetime, gate: bool
) -> StoredSighting:
    """The platform's upsert (``upsert-utils.js``), written out for the oracle."""
    if before is None:
        return StoredSighting("s", count, first, last, 50)
    assert before.first_seen is not None
    assert before.last_seen is not None
    assert before.count is not None
    if gate:
        return dataclasses.replace(before, confidence=90)
    widened = first < before.first_seen or last > before.last_seen
    return StoredSighting(
        "s",
        before.count + count if widened else count,
        min(first, before.first_seen),
        max(last, before.last_seen),
        50,
    )


writes = st.lists(
    st.tuples(st.integers(1, 20), st.integers(0, 3_600), st.integers(0, 3_600)),
    min_size=1,
    max_size=8,
)


@given(writes)
def test_writes_that_widen_are_judged_right(plan: list[tuple[int, int, int]]) -> None:
    before: StoredSighting | None = None
    last_seen = T0
    for count, back, forward in plan:
        last_seen += timedelta(seconds=forward + 1)  # the watermark rule: always later
        first = last_seen - timedelta(seconds=back)
        after = _upsert(before, count, first, last_seen, gate=False)
        assert count_problem(
            count=count, first_seen=first, last_seen=last_seen, after=after, before=before,
            confidence=50,
        ) is None  # fmt: skip
        # Without knowing the sighting before, nothing is claimed either.
        assert count_problem(
            count=count, first_seen=first, last_seen=last_seen, after=after, before=None,
            confidence=50,
        ) is None  # fmt: skip
        before = after


def test_a_confidence_gate_is_named() -> None:
    before = StoredSighting("s", 4, T0, T0 + timedelta(hours=1), 90)
    later = T0 + timedelta(hours=2)
    problem = count_problem(
        count=3, first_seen=T0, last_seen=later, after=before, before=before, confidence=50
    )
    assert problem is not None
    assert "confidence (90)" in problem
    assert "sightings.confidence 50" in problem
    unset = count_problem(
        count=3, first_seen=T0, last_seen=later, after=before, before=None, confidence=None
    )
    assert unset is not None
    assert "the user's" in unset


def test_a_replaced_count_is_named() -> None:
    before = StoredSighting("s", 10, T0, T0 + timedelta(hours=3), 50)
    inside = T0 + timedelta(hours=1)
    after = _upsert(before, 2, inside, inside, gate=False)
    assert after.count == 2
    problem = count_problem(
        count=2, first_seen=inside, last_seen=inside, after=after, before=None, confidence=50
    )
    assert problem is not None
    assert "replaced its count" in problem
