"""Alerts as Kibana really writes them, through the poller, noida-db and the OpenCTI stand-in:
written late, updated in place by alert suppression, closed by analysts, building blocks; and a
point in time that may not be searched (403).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from elasticsearch import Elasticsearch

from elastic_connector.core.config import CloudSettings, ElasticsearchSettings, SightingsSettings
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from elastic_connector.shell.elastic import build_client
from tests.core.sightings.alert_strategies import AlertSpec, SuppressionSpec, build_alert_specs, iso
from tests.support.alert_loop import START, Clock, Loop, config_for
from tests.support.alerts import (
    AlertIndices,
    add_indicators,
    counts_by_indicator,
    expected_counts,
    more_alerts,
)
from tests.support.faulty_proxy import FaultyProxy, Reply, es_error_body

SETTLE = timedelta(seconds=SightingsSettings().settle_delay)
"""The default settle delay."""


@pytest.fixture
def standin(clean_opencti_env: None) -> Iterator[OpenCTIStandin]:
    with OpenCTIStandin(heartbeat_interval=0.2) as server:
        yield server


@pytest.fixture
def alerts(es_client: Elasticsearch, es_prefix: str) -> AlertIndices:
    indices = AlertIndices(es_client, es_prefix)
    indices.create()
    return indices


def suppressed(
    spec: AlertSpec, docs_count: int, window: tuple[int, str] | None = (1, "h")
) -> AlertSpec:
    """``spec`` as an alert that already folded ``docs_count`` later matches."""
    return dataclasses.replace(
        spec,
        suppression=SuppressionSpec(
            docs_count=docs_count,
            start=spec.timestamp - timedelta(seconds=30),
            end=spec.timestamp,
            last_detected=spec.timestamp,
            window=window,
        ),
    )


def fold(alerts: AlertIndices, spec: AlertSpec, docs_count: int, at: timedelta) -> AlertSpec:
    """Kibana suppressing more matches into ``spec`` in place, ``at`` after its creation."""
    assert spec.suppression is not None
    when = spec.timestamp + at
    alerts.update_in_place(
        spec.uuid,
        {
            "kibana.alert.suppression.docs_count": docs_count,
            "kibana.alert.suppression.end": iso(when),
            "kibana.alert.last_detected": iso(when),
        },
    )
    return dataclasses.replace(
        spec,
        suppression=dataclasses.replace(
            spec.suppression, docs_count=docs_count, end=when, last_detected=when
        ),
    )


# --- late alerts (issue 19, item 5) -----------------------------------------------------------


@pytest.mark.parametrize(("settle_delay", "counted"), [(None, 2), (60.0, 1)])
def test_an_alert_written_minutes_after_its_timestamp(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    settle_delay: float | None,
    counted: int,
) -> None:
    """Kibana stamps ``@timestamp`` first and writes the alert after its enrichments and bulk
    request: here 4 minutes later. With the default settle delay it is still counted; with a
    1-minute one the cursor has passed it by the time it appears (measured: it is lost)."""
    [indicator] = add_indicators(standin, 1)
    late, prompt = build_alert_specs(
        2, indicators=(indicator,), start=START, step=timedelta(seconds=20)
    )
    config = (
        config_for(standin, es_settings, alerts.pattern)
        if settle_delay is None
        else config_for(standin, es_settings, alerts.pattern, settle_delay=settle_delay)
    )
    clock = Clock(START + timedelta(minutes=3))
    loop = Loop(standin, es_client, config, clock=clock)
    alerts.index_8x([prompt])  # searchable at once
    loop.poll()
    clock.now = START + timedelta(minutes=4)
    alerts.index_8x([late])  # searchable 4 minutes after its @timestamp
    for minutes in (5, 12, 30):
        clock.now = START + timedelta(minutes=minutes)
        loop.poll()

    assert counts_by_indicator(standin) == {indicator: counted}


# --- closed and building-block alerts ----------------------------------------------------------


@pytest.mark.parametrize("include_closed", [False, True])
def test_closed_alerts_count_only_when_asked(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    include_closed: bool,
) -> None:
    indicators = add_indicators(standin, 2)
    specs = [
        dataclasses.replace(spec, workflow_status=status)
        for spec, status in zip(
            build_alert_specs(6, indicators=tuple(indicators), start=START),
            ("open", "closed", "acknowledged", "closed", "open", "closed"),
            strict=True,
        )
    ]
    alerts.index_8x(specs)
    config = config_for(standin, es_settings, alerts.pattern, include_closed=include_closed)

    Loop(standin, es_client, config).poll()

    assert counts_by_indicator(standin) == expected_counts(specs, include_closed=include_closed)
    if not include_closed:  # the second indicator's alerts (1, 3 and 5) are all closed
        assert indicators[1] not in counts_by_indicator(standin)


def test_an_alert_closed_after_it_was_counted_stays_counted(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    """The documented limit: a sighting already written is not reduced when its alert is
    closed later (OpenCTI's counts can only be added to); later alerts are unaffected."""
    [indicator] = add_indicators(standin, 1)
    specs = build_alert_specs(3, indicators=(indicator,), start=START)
    alerts.index_8x(specs)
    clock = Clock()
    loop = Loop(standin, es_client, config_for(standin, es_settings, alerts.pattern), clock=clock)
    loop.poll()
    alerts.update_in_place(specs[0].uuid, {"kibana.alert.workflow_status": "closed"})
    later = more_alerts(2, [indicator], clock.now, "later")
    alerts.index_8x(later)
    clock.now += SETTLE + timedelta(minutes=2)

    loop.poll()

    assert counts_by_indicator(standin) == {indicator: 5}


def test_building_block_alerts_are_counted(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    [indicator] = add_indicators(standin, 1)
    specs = [
        dataclasses.replace(spec, building_block=n % 2 == 0)
        for n, spec in enumerate(build_alert_specs(4, indicators=(indicator,), start=START))
    ]
    alerts.index_8x(specs)

    Loop(standin, es_client, config_for(standin, es_settings, alerts.pattern)).poll()

    assert counts_by_indicator(standin) == {indicator: 4}


# --- alert suppression (issue 15, item 3) -------------------------------------------------------


def test_suppressed_matches_count_once_including_those_folded_in_after_the_first_read(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    indicators = add_indicators(standin, 2)
    plain, held = build_alert_specs(2, indicators=tuple(indicators), start=START)
    held = suppressed(held, docs_count=2)  # a one-hour window: open until START + 1 h
    alerts.index_8x([plain, held])
    clock = Clock(START + SETTLE + timedelta(minutes=1))
    loop = Loop(standin, es_client, config_for(standin, es_settings, alerts.pattern), clock=clock)

    loop.poll()
    # Each alert counts once at once; the suppressed matches wait for the window to close.
    assert counts_by_indicator(standin) == {indicators[0]: 1, indicators[1]: 1}
    assert set(loop.saved().suppressed) == {held.uuid}

    held = fold(alerts, held, docs_count=5, at=timedelta(minutes=20))
    clock.now = START + timedelta(minutes=40)
    loop.poll()
    assert counts_by_indicator(standin)[indicators[1]] == 1  # still open: nothing yet
    held = fold(alerts, held, docs_count=9, at=timedelta(minutes=55))

    # Window (1 h) + one rule interval (5 min) + the settle delay later, it is final.
    clock.now = START + timedelta(hours=1, minutes=5) + SETTLE + timedelta(seconds=1)
    loop.poll()
    clock.now += timedelta(hours=1)
    loop.poll()

    assert counts_by_indicator(standin) == expected_counts([plain, held])
    assert counts_by_indicator(standin)[indicators[1]] == 10
    assert loop.saved().suppressed == {}
    [sighting] = [s for s in standin.sightings if s["fromId"] == indicators[1]]
    assert "9 more matches suppressed into Elastic Security alert" in str(sighting["description"])


def test_suppression_per_rule_execution_is_final_one_interval_later(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    [indicator] = add_indicators(standin, 1)
    [spec] = build_alert_specs(1, indicators=(indicator,), start=START)
    alerts.index_8x([suppressed(spec, docs_count=3, window=None)])
    clock = Clock(START + SETTLE + timedelta(minutes=6))
    loop = Loop(standin, es_client, config_for(standin, es_settings, alerts.pattern), clock=clock)

    loop.poll()

    assert counts_by_indicator(standin) == {indicator: 4}  # one poll: the alert and its 3


def test_a_crash_after_the_suppressed_matches_were_written_counts_them_once(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    [indicator] = add_indicators(standin, 1)
    [spec] = build_alert_specs(1, indicators=(indicator,), start=START)
    alerts.index_8x([suppressed(spec, docs_count=4, window=(10, "m"))])
    clock = Clock(START + SETTLE + timedelta(minutes=1))
    config = config_for(standin, es_settings, alerts.pattern)
    loop = Loop(standin, es_client, config, clock=clock)
    loop.poll()
    saved_on_platform = copy.deepcopy(loop.store.state)  # the last ping before the crash
    clock.now = START + timedelta(minutes=30)
    loop.poll()  # writes the 4 suppressed matches, then dies before its state is pinged
    assert counts_by_indicator(standin) == {indicator: 5}
    writes = len(standin.sighting_inputs)

    restarted = Loop(standin, es_client, config, clock=clock)
    restarted.store.state = saved_on_platform
    restarted.poll()

    assert counts_by_indicator(standin) == {indicator: 5}
    assert len(standin.sighting_inputs) == writes  # found by its id, not sent again
    assert restarted.saved().suppressed == {}


def test_a_suppressed_alert_closed_before_its_window_ends_adds_nothing_more(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    [indicator] = add_indicators(standin, 1)
    [spec] = build_alert_specs(1, indicators=(indicator,), start=START)
    alerts.index_8x([suppressed(spec, docs_count=4, window=(10, "m"))])
    clock = Clock(START + SETTLE + timedelta(minutes=1))
    loop = Loop(standin, es_client, config_for(standin, es_settings, alerts.pattern), clock=clock)
    loop.poll()
    alerts.update_in_place(spec.uuid, {"kibana.alert.workflow_status": "closed"})
    clock.now = START + timedelta(hours=1)

    loop.poll()

    assert counts_by_indicator(standin) == {indicator: 1}
    assert loop.saved().suppressed == {}


# --- a point in time the role may not search (issue 19, item 1) ---------------------------------


def test_a_search_through_a_point_in_time_refused_with_403_falls_back_to_search_after(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_settings: ElasticsearchSettings,
    faulty_proxy: FaultyProxy,
    proxied_settings: ElasticsearchSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A role granting ``read`` on ``.alerts-security.alerts-*`` only opens a point in time but
    cannot search through it (the backing ``.internal.*`` indices): Elasticsearch answers 403."""
    indicators = add_indicators(standin, 2)
    specs = build_alert_specs(20, indicators=tuple(indicators), start=START)
    alerts.index_8x(specs)
    denied = es_error_body(
        403,
        "security_exception",
        "action [indices:data/read/search] is unauthorized for API key id [k] of user [u] on "
        f"indices [{alerts.alerts}]",
    )
    faulty_proxy.inject(Reply(403, denied), path="/_search", times=1)  # the first: in the PIT
    client = build_client(proxied_settings, CloudSettings())
    loop = Loop(standin, client, config_for(standin, es_settings, alerts.pattern, page_size=7))
    poller = loop.poller()

    with caplog.at_level(logging.WARNING, logger="elastic_connector"):
        report = poller.poll_once()
        alerts.index_8x(more_alerts(3, indicators, START + timedelta(minutes=5), "more"))
        again = poller.poll_once()

    assert (report.complete, report.alerts, again.alerts) == (True, 20, 3)
    warnings = [r.getMessage() for r in caplog.records if "point in time" in r.getMessage()]
    assert len(warnings) == 1
    assert "plain search_after" in warnings[0]
    searches = [r.path.split("?")[0] for r in faulty_proxy.requests if "_search" in r.path]
    assert searches[0] == "/_search"
    assert all(path == f"/{alerts.pattern}/_search" for path in searches[1:])
    assert sum(1 for r in faulty_proxy.requests if "/_pit" in r.path and r.method == "POST") == 1
    assert counts_by_indicator(standin) == expected_counts(
        [*specs, *more_alerts(3, indicators, START + timedelta(minutes=5), "more")]
    )
