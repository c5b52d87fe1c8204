"""The lifetime rule: ``valid_until``, else ``valid_from`` (else ``created``) + indicator_ttl.

The policy (at every write) and the expiry sweep (a query over the written document) must agree
on which indicator has expired: the query is evaluated here, the way Elasticsearch evaluates it,
over the fields of the document the mapping writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.actions import Delete, Upsert
from elastic_connector.core.config import Mode
from elastic_connector.core.events import PlannerState, PlanSettings, plan_event
from elastic_connector.core.indicators import ecs
from elastic_connector.core.policy import PolicySettings, indicator_withheld
from elastic_connector.core.policy.lifetime import expired_query, expiry, lifetime_start
from elastic_connector.core.policy.settings import MarkingResolution
from elastic_connector.core.stix import Indicator, StixObject, StreamEvent
from tests.support.flat import flat_fields

# Whole seconds in UTC: Elasticsearch keeps dates to the millisecond, and the sweep compares
# them there; the policy compares Python datetimes.
moments = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=0))
ttls = st.none() | st.integers(1, 400 * 86400).map(lambda seconds: timedelta(seconds=seconds))


@st.composite
def dated_indicators(draw: st.DrawFn) -> Indicator:
    return Indicator(
        id="indicator--0d6a5a86-6a0e-4fd3-a0b4-3c3c0ff0c0de",
        pattern="[ipv4-addr:value = '198.51.100.7']",
        valid_from=draw(st.none() | moments),
        valid_until=draw(st.none() | moments),
        created=draw(st.none() | moments),
    )


@given(indicator=dated_indicators(), ttl=ttls)
def test_valid_until_wins_over_any_ttl(indicator: Indicator, ttl: timedelta | None) -> None:
    if indicator.valid_until is not None:
        assert expiry(indicator, ttl) == indicator.valid_until
    elif ttl is None or lifetime_start(indicator) is None:
        assert expiry(indicator, ttl) is None
    else:
        start = indicator.valid_from or indicator.created
        assert expiry(indicator, ttl) == start + ttl  # type: ignore[operator]  # start is set here


@given(indicator=dated_indicators(), ttl=ttls, longer=st.integers(0, 10**6), now=moments)
def test_a_longer_ttl_never_expires_an_indicator_sooner(
    indicator: Indicator, ttl: timedelta | None, longer: int, now: datetime
) -> None:
    settings = PolicySettings(indicator_ttl=ttl)
    stretched = PolicySettings(indicator_ttl=None if ttl is None else ttl + timedelta(longer))
    if indicator_withheld(indicator, MarkingResolution(None), stretched, now) is not None:
        assert indicator_withheld(indicator, MarkingResolution(None), settings, now) is not None


@given(indicator=dated_indicators(), ttl=ttls, now=moments)
def test_the_policy_withholds_exactly_the_expired(
    indicator: Indicator, ttl: timedelta | None, now: datetime
) -> None:
    withheld = indicator_withheld(
        indicator, MarkingResolution(None), PolicySettings(indicator_ttl=ttl), now
    )
    expires = expiry(indicator, ttl)
    assert (withheld is not None and withheld.code == "expired") == (
        expires is not None and expires <= now
    )


def _plan(indicator: Indicator, ttl: timedelta | None, now: datetime) -> Upsert | Delete:
    event = StreamEvent(
        "1-0",
        "create",
        StixObject("indicator", indicator.id, indicator, msgspec.json.encode(indicator)),
    )
    settings = PlanSettings(mode=Mode.ECS, index="ti", policy=PolicySettings(indicator_ttl=ttl))
    (action,) = plan_event(event, PlannerState(), settings, now).actions
    assert isinstance(action, Upsert | Delete)
    return action


@given(indicator=dated_indicators(), ttl=ttls, written=moments, swept=moments)
def test_the_sweep_query_deletes_exactly_what_the_policy_calls_expired(
    indicator: Indicator, ttl: timedelta | None, written: datetime, swept: datetime
) -> None:
    action = _plan(indicator, ttl, written)
    if not isinstance(action, Upsert):
        return  # expired (or otherwise withheld) when written: there is no document to sweep
    document = flat_fields(msgspec.json.decode(action.document))
    expires = expiry(indicator, ttl)
    assert _matches(expired_query(swept, ttl), document) == (
        expires is not None and expires <= swept
    )


@given(indicator=dated_indicators(), ttl=ttls, now=moments)
def test_the_document_carries_the_expiry_a_ttl_gives(
    indicator: Indicator, ttl: timedelta | None, now: datetime
) -> None:
    action = _plan(indicator, ttl, now)
    if isinstance(action, Upsert):
        written = ecs.decode_document(action.document).opencti.indicator.expires_at
        expected = None if indicator.valid_until is not None else expiry(indicator, ttl)
        assert written == expected


def test_a_ttl_that_has_elapsed_is_named_in_the_reason() -> None:
    indicator = Indicator(id="indicator--1", pattern="[x:y = 'z']", created=datetime(2025, 1, 1))
    withheld = indicator_withheld(
        indicator,
        MarkingResolution(None),
        PolicySettings(indicator_ttl=timedelta(days=30)),
        datetime(2025, 3, 1, tzinfo=UTC),
    )
    assert withheld is not None
    assert withheld.code == "expired"
    assert "indicator_ttl" in withheld.reason
    assert "created" in withheld.reason


def test_a_ttl_beyond_the_calendar_never_expires() -> None:
    indicator = Indicator(id="i", pattern="p", valid_from=datetime(9999, 12, 1, tzinfo=UTC))
    assert expiry(indicator, timedelta(days=365)) is None
    query = expired_query(datetime(2025, 1, 1, tzinfo=UTC), timedelta(days=10**6))
    assert query == expired_query(datetime(2025, 1, 1, tzinfo=UTC), None)


# --- the query, evaluated as Elasticsearch does over a flat document ----------------------------


def _date(text: object) -> datetime:
    assert isinstance(text, str)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _matches(query: Mapping[str, object], document: Mapping[str, object]) -> bool:
    ((kind, body),) = query.items()
    assert isinstance(body, dict)
    if kind == "exists":
        return body["field"] in document
    if kind == "range":
        ((field, bounds),) = body.items()
        if field not in document:
            return False
        value = _date(document[field])
        return all(
            value < _date(limit) if op == "lt" else value <= _date(limit)
            for op, limit in bounds.items()
        )
    assert kind == "bool"
    should = [_matches(q, document) for q in body.get("should", [])]
    return (
        all(_matches(q, document) for q in body.get("filter", []))
        and not any(_matches(q, document) for q in body.get("must_not", []))
        and (not should or sum(should) >= body.get("minimum_should_match", 1))
    )
