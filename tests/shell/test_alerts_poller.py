"""The alert poller end to end: alerts indexed as Kibana writes them in Elasticsearch (noida-db,
or ``ELASTICSEARCH_TEST_URL``), read with elasticsearch-py, written as sightings through real
pycti into the OpenCTI stand-in.

Most tests use the stand-in in ``merge_sightings`` mode, which stores sightings with the
platform's own upsert rules: there a count is right only if every page was written exactly
once and every merge widened the dates.
"""

from __future__ import annotations

import copy
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from elasticsearch import Elasticsearch
from pycti import OpenCTIConnectorHelper
from pycti.connector.opencti_connector_helper import PingAlive

from elastic_connector.core.config import (
    CloudSettings,
    ElasticsearchSettings,
    SightingsSettings,
)
from elastic_connector.core.sightings.aggregation import AlertCursor, epoch_millis
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from elastic_connector.shell.alerts import (
    AFTER_EVERY_UUID,
    STATE_KEY,
    AlertPoller,
    PollPosition,
    position_from_state,
    position_to_state,
)
from elastic_connector.shell.connector_state import ConnectorState
from elastic_connector.shell.elastic import build_client
from tests.core.sightings.alert_strategies import AlertSpec, build_alert_specs
from tests.support.alert_loop import Clock, Loop, config_for
from tests.support.alerts import (
    AlertIndices,
    add_indicators,
    counts_by_indicator,
    expected_counts,
    more_alerts,
    same_millisecond_specs,
)
from tests.support.faulty_proxy import FaultyProxy, Reply, es_error_body
from tests.support.opencti import HelperFactory
from tests.support.waiting import wait_until

START = datetime(2024, 5, 1, tzinfo=UTC)
NOW = START + timedelta(hours=1)
LOOKBACK = 86_400.0


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def standin(clean_opencti_env: None) -> Iterator[OpenCTIStandin]:
    """The OpenCTI stand-in with the platform's sighting merge rules."""
    with OpenCTIStandin(heartbeat_interval=0.2, merge_sightings=True) as server:
        yield server


@pytest.fixture
def alerts(es_client: Elasticsearch, es_prefix: str) -> AlertIndices:
    return AlertIndices(es_client, es_prefix)


def sighting_writes(standin: OpenCTIStandin) -> int:
    return len(standin.sighting_inputs)


def searches_of(proxy: FaultyProxy) -> list[str]:
    return [f"{r.method} {r.path.split('?')[0]}" for r in proxy.requests if "_search" in r.path]


# --- paging ---------------------------------------------------------------------------------


def test_every_alert_is_counted_once_across_pages(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    indicators = add_indicators(standin, 6)
    specs = build_alert_specs(2500, indicators=tuple(indicators), start=START)
    alerts.create()
    alerts.index_8x(specs)
    loop = Loop(standin, es_client, config_for(standin, es_settings, alerts.pattern, page_size=600))

    report = loop.poll()

    assert report.complete, report
    # 240 alerts a minute: a page never spans two minutes, so 11 pages of at most 240.
    assert (report.alerts, report.pages, report.skipped, report.unusable) == (2500, 11, 0, 0)
    assert counts_by_indicator(standin) == expected_counts(specs)
    assert sum(counts_by_indicator(standin).values()) == 2500
    assert len(standin.sightings) == 6  # the platform merged each indicator's pages
    # Every third alert also matched another feed's indicator: never sent.
    assert {s["fromId"] for s in standin.sighting_inputs} == set(indicators)
    assert loop.metric("alerts_processed_total") == 2500
    assert loop.metric("sightings_written_total") == report.sightings == 11 * 6
    last = specs[-1]
    assert report.cursor == AlertCursor(last.timestamp_ms, last.uuid)
    assert loop.saved().cursor == report.cursor

    writes = sighting_writes(standin)
    again = loop.poll()

    assert (again.alerts, again.sightings, again.complete) == (0, 0, True)
    assert sighting_writes(standin) == writes
    assert counts_by_indicator(standin) == expected_counts(specs)


def test_alerts_of_one_rule_run_share_a_millisecond_across_pages(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    indicators = add_indicators(standin, 2)
    specs = same_millisecond_specs(
        build_alert_specs(60, indicators=tuple(indicators)),
        group=25,  # a rule run with more alerts than a page: pages inside one millisecond
        start=START,
        step=timedelta(seconds=1),
    )
    alerts.create()
    alerts.index_8x(specs)
    loop = Loop(standin, es_client, config_for(standin, es_settings, alerts.pattern, page_size=10))

    report = loop.poll()

    assert (report.complete, report.alerts, report.pages) == (True, 60, 6)
    assert counts_by_indicator(standin) == expected_counts(specs)
    assert len(standin.sightings) == 2


def test_only_alerts_older_than_the_settle_delay_are_read(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    [indicator] = add_indicators(standin, 1)
    settle = timedelta(seconds=SightingsSettings().settle_delay)
    clock = Clock(START + settle + timedelta(seconds=70))
    specs = build_alert_specs(40, indicators=(indicator,), start=START, step=timedelta(seconds=3))
    alerts.create()
    alerts.index_8x(specs)
    loop = Loop(standin, es_client, config_for(standin, es_settings, alerts.pattern), clock=clock)

    first = loop.poll()
    clock.now += timedelta(minutes=5)
    second = loop.poll()

    # Up to now - settle_delay, rounded down to the minute (START + 60 s), then the rest.
    assert (first.alerts, second.alerts) == (20, 20)
    assert counts_by_indicator(standin) == {indicator: 40}


def test_no_alerts_index_yet_then_alerts_arrive(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    [indicator] = add_indicators(standin, 1)
    clock = Clock(START)
    config = config_for(standin, es_settings, alerts.pattern, initial_lookback=0)
    loop = Loop(standin, es_client, config, clock=clock)

    empty = loop.poll()

    assert (empty.complete, empty.alerts) == (True, 0)
    # With no lookback the start is "now" of the first poll, kept for the next ones.
    assert empty.cursor == AlertCursor(epoch_millis(START), "")
    specs = build_alert_specs(5, indicators=(indicator,), start=START + timedelta(seconds=1))
    alerts.create()
    alerts.index_8x(specs)
    clock.now = START + timedelta(hours=1)

    assert loop.poll().alerts == 5
    assert counts_by_indicator(standin) == {indicator: 5}


def test_pages_read_in_a_point_in_time_while_new_alerts_arrive(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    faulty_proxy: FaultyProxy,
    proxied_settings: ElasticsearchSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    indicators = add_indicators(standin, 3)
    old = build_alert_specs(50, indicators=tuple(indicators), start=START)
    alerts.create()
    alerts.index_8x(old)
    client = build_client(proxied_settings, CloudSettings())
    clock = Clock()
    loop = Loop(
        standin, client, config_for(standin, es_settings, alerts.pattern, page_size=8), clock=clock
    )
    new = [
        AlertSpec(
            uuid=str(uuid.uuid4()),
            timestamp=NOW - timedelta(seconds=30) + n * timedelta(milliseconds=3),
            original_time=None,
            rule_name=spec.rule_name,
            rule_uuid=spec.rule_uuid,
            space=spec.space,
            enrichments=spec.enrichments,
        )
        for n, spec in enumerate(build_alert_specs(20, indicators=tuple(indicators)))
    ]
    search = client.search
    calls: list[int] = []

    def search_while_kibana_writes(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:  # Kibana's next rule run lands between our pages
            alerts.index_8x(new)
        return search(*args, **kwargs)  # type: ignore[arg-type]  # passing the call through

    monkeypatch.setattr(client, "search", search_while_kibana_writes)

    first = loop.poll()

    assert (first.complete, first.alerts, first.pages) == (True, 50, 7)
    requests = [f"{r.method} {r.path.split('?')[0]}" for r in faulty_proxy.requests]
    assert requests.count("POST /_search") == 7  # every page inside the point in time
    assert requests[0].endswith("/_pit")
    assert requests[-1] == "DELETE /_pit"
    assert counts_by_indicator(standin) == expected_counts(old)

    clock.now += timedelta(minutes=15)
    second = loop.poll()

    assert (second.complete, second.alerts) == (True, 20)
    assert counts_by_indicator(standin) == expected_counts([*old, *new])


def test_a_cluster_refusing_points_in_time_is_read_with_search_after(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_settings: ElasticsearchSettings,
    faulty_proxy: FaultyProxy,
    proxied_settings: ElasticsearchSettings,
) -> None:
    indicators = add_indicators(standin, 2)
    specs = build_alert_specs(30, indicators=tuple(indicators), start=START)
    alerts.create()
    alerts.index_8x(specs)
    faulty_proxy.inject(
        Reply(400, es_error_body(400, "illegal_argument_exception", "point in time disabled")),
        path="/_pit",
        times=None,
    )
    client = build_client(proxied_settings, CloudSettings())
    loop = Loop(standin, client, config_for(standin, es_settings, alerts.pattern, page_size=7))
    poller = loop.poller()

    report = poller.poll_once()
    more = more_alerts(3, indicators, START + timedelta(minutes=10), "more")
    alerts.index_8x(more)
    again = poller.poll_once()

    assert (report.complete, report.alerts, report.pages, again.alerts) == (True, 30, 5, 3)
    assert searches_of(faulty_proxy) == [f"POST /{alerts.pattern}/_search"] * 6
    assert sum(1 for r in faulty_proxy.requests if "/_pit" in r.path) == 1  # not asked again
    assert counts_by_indicator(standin) == expected_counts([*specs, *more])


def test_elasticsearch_errors_end_the_poll_and_the_next_one_resumes(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_settings: ElasticsearchSettings,
    faulty_proxy: FaultyProxy,
    proxied_settings: ElasticsearchSettings,
) -> None:
    [indicator] = add_indicators(standin, 1)
    specs = build_alert_specs(12, indicators=(indicator,), start=START)
    alerts.create()
    alerts.index_8x(specs)
    client = build_client(proxied_settings, CloudSettings())
    loop = Loop(standin, client, config_for(standin, es_settings, alerts.pattern, page_size=5))
    faulty_proxy.inject(
        Reply(503, es_error_body(503, "cluster_block_exception", "no master")),
        path="/_search",
        times=None,
    )

    failed = loop.poll()

    assert failed.complete is False
    assert failed.error is not None
    assert "HTTP 503" in failed.error
    assert (failed.alerts, sighting_writes(standin)) == (0, 0)
    faulty_proxy.clear()
    assert loop.poll().alerts == 12
    assert counts_by_indicator(standin) == {indicator: 12}


# --- OpenCTI failures -----------------------------------------------------------------------


def test_an_opencti_outage_delays_sightings_but_loses_none(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    indicators = add_indicators(standin, 3)
    specs = build_alert_specs(90, indicators=tuple(indicators), start=START)
    alerts.create()
    alerts.index_8x(specs)
    loop = Loop(standin, es_client, config_for(standin, es_settings, alerts.pattern, page_size=30))
    # A proxy in front of OpenCTI times out (the platform may have written), then the
    # platform itself fails for a while.
    standin.fail_graphql(status=502, times=3, fields=["stixSightingRelationshipAdd"])
    standin.fail_graphql(status=None, code="DATABASE_ERROR", times=4)

    report = loop.poll()

    assert (report.complete, report.alerts, report.skipped) == (True, 90, 0)
    assert counts_by_indicator(standin) == expected_counts(specs)
    sent = [request.fields for request in standin.graphql_requests]
    assert sent.count(("stixSightingRelationshipAdd",)) == 9 + 3  # three were retried
    # After each proxy error the platform was asked whether the write had happened.
    assert sent.count(("stixSightingRelationship",)) >= 3


def test_a_long_outage_keeps_the_page_for_the_next_poll(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    indicators = add_indicators(standin, 2)
    specs = build_alert_specs(40, indicators=tuple(indicators), start=START)
    alerts.create()
    alerts.index_8x(specs)
    loop = Loop(standin, es_client, config_for(standin, es_settings, alerts.pattern, page_size=15))
    loop.poll()  # everything so far is written
    later = more_alerts(20, indicators, START + timedelta(minutes=5), "later")
    alerts.index_8x(later)
    cursor = loop.saved().cursor
    standin.fail_graphql(status=502, times=None, fields=["stixSightingRelationshipAdd"])

    stuck = loop.poll(max_write_rounds=3)

    assert (stuck.complete, stuck.sightings) == (False, 0)
    assert loop.saved().cursor == cursor  # the page is not passed
    standin.clear_graphql_failures()
    resumed = loop.poll()
    assert (resumed.complete, resumed.alerts) == (True, 20)
    assert counts_by_indicator(standin) == expected_counts([*specs, *later])


def test_opencti_down_while_polling_is_waited_out(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    indicators = add_indicators(standin, 2)
    specs = build_alert_specs(20, indicators=tuple(indicators), start=START)
    alerts.create()
    alerts.index_8x(specs)
    loop = Loop(standin, es_client, config_for(standin, es_settings, alerts.pattern, page_size=10))
    standin.stop()
    restart = threading.Timer(0.5, standin.start)
    restart.start()
    try:
        report = loop.poll()
    finally:
        restart.join()

    assert (report.complete, report.alerts) == (True, 20)
    assert counts_by_indicator(standin) == expected_counts(specs)


def test_a_deleted_indicator_is_skipped_and_the_rest_proceed(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    kept_a, deleted, kept_b = add_indicators(standin, 3)
    standin.forget_object(deleted)
    specs = build_alert_specs(60, indicators=(kept_a, deleted, kept_b), start=START)
    alerts.create()
    alerts.index_8x(specs)
    loop = Loop(standin, es_client, config_for(standin, es_settings, alerts.pattern, page_size=20))

    report = loop.poll()
    again = loop.poll()

    expected = expected_counts(specs)
    assert (report.complete, report.skipped, report.sightings) == (True, 3, 6)
    assert counts_by_indicator(standin) == {kept_a: expected[kept_a], kept_b: expected[kept_b]}
    assert loop.metric("sighting_errors_total", code="indicator_missing") == 3
    last = specs[-1]
    assert loop.saved().cursor == AlertCursor(last.timestamp_ms, last.uuid)
    assert (again.alerts, again.skipped) == (0, 0)  # skipped once, not retried forever


def test_a_sighting_an_analyst_froze_is_warned_about_once_and_counted_per_write(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """docs/sightings.md, "Counts OpenCTI does not apply": an analyst raises a sighting's
    confidence above the connector's, so the platform applies nothing of later writes. Each
    such write is counted in ``sighting_count_mismatches_total``; the warning comes once per
    sighting, not once per write."""
    [indicator] = add_indicators(standin, 1)
    first = more_alerts(3, [indicator], START, "first")
    alerts.create()
    alerts.index_8x(first)
    config = config_for(standin, es_settings, alerts.pattern, confidence=50)
    loop = Loop(standin, es_client, config)
    poller = loop.poller()
    assert poller.poll_once().complete
    [sighting] = standin.sightings
    sighting_id = str(sighting["id"])
    standin.set_sighting_confidence(sighting_id, 90)

    caplog.set_level(logging.WARNING, logger="elastic_connector.shell.alerts")
    for n, tag in enumerate(("second", "third"), start=1):
        alerts.index_8x(more_alerts(2, [indicator], START + timedelta(minutes=10 * n), tag))
        report = poller.poll_once()
        assert (report.complete, report.alerts, report.sightings) == (True, 2, 1)

    assert [s["id"] for s in standin.sightings] == [sighting_id]  # merged into the frozen one
    assert counts_by_indicator(standin) == expected_counts(first)  # later matches not applied
    assert loop.metric("sighting_count_mismatches_total") == 2
    assert loop.metric("sightings_written_total") == 3
    warnings = [r.getMessage() for r in caplog.records if "does not count" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert sighting_id in warnings[0]
    assert indicator in warnings[0]
    assert "confidence (90)" in warnings[0]
    assert "sighting_count_mismatches_total" in warnings[0]


# --- restarts and the connector state -------------------------------------------------------


def test_a_restart_between_polls_loses_nothing_and_counts_nothing_twice(
    opencti_standin: OpenCTIStandin,
    pycti_helper: HelperFactory,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    indicators = add_indicators(opencti_standin, 4)
    before = build_alert_specs(400, indicators=tuple(indicators), start=START)
    alerts.create()
    alerts.index_8x(before)
    connector_id = str(uuid.uuid4())
    config = config_for(opencti_standin, es_settings, alerts.pattern, page_size=150)
    first = pycti_helper(connector_id=connector_id)
    Loop(opencti_standin, es_client, config, ConnectorState(first)).poll()
    first.force_ping()  # what a clean shutdown does
    first.ping.stop()
    # Alerts created while the connector is down.
    during = more_alerts(250, indicators, START + timedelta(minutes=20), "during")
    alerts.index_8x(during)
    writes = sighting_writes(opencti_standin)

    second = pycti_helper(connector_id=connector_id)
    report = Loop(opencti_standin, es_client, config, ConnectorState(second)).poll()

    assert (report.complete, report.alerts) == (True, 250)
    assert counts_by_indicator(opencti_standin) == expected_counts([*before, *during])
    assert sighting_writes(opencti_standin) == writes + report.sightings


def test_a_crash_before_the_state_reached_opencti_recounts_nothing(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    indicators = add_indicators(standin, 3)
    before = build_alert_specs(60, indicators=tuple(indicators), start=START)
    alerts.create()
    alerts.index_8x(before)
    config = config_for(standin, es_settings, alerts.pattern, page_size=20)
    loop = Loop(standin, es_client, config)
    loop.poll()
    saved_on_platform = copy.deepcopy(loop.store.state)
    after = more_alerts(90, indicators, START + timedelta(minutes=5), "after")
    alerts.index_8x(after)
    loop.poll()  # written to OpenCTI, then the process dies before its state is pinged
    writes = sighting_writes(standin)

    restarted = Loop(standin, es_client, config)
    restarted.store.state = saved_on_platform
    report = restarted.poll()

    assert (report.complete, report.alerts, report.sightings) == (True, 90, 15)
    assert sighting_writes(standin) == writes  # every replayed sighting was found, not re-sent
    assert counts_by_indicator(standin) == expected_counts([*before, *after])


def adopt_the_platform_state(helper: OpenCTIConnectorHelper, standin: OpenCTIStandin) -> None:
    """One ping of pycti's own ping thread, which adopts the state the platform answers
    (``force_ping`` does not: it sends the local state again). The helper's thread waits
    40 s between pings; a second one pings at once."""
    pings = standin.ping_count(helper.connector_id)
    ping = PingAlive(
        helper.connector_logger,
        helper.connector_id,
        helper.api,
        helper.get_state,
        helper.set_state,
        helper.metric,
        helper.connector_info,
    )
    ping.start()
    try:
        wait_until(lambda: standin.ping_count(helper.connector_id) > pings, what="a ping")
    finally:
        ping.stop()
        ping.join(5)


def test_a_state_reset_in_opencti_restarts_from_the_initial_lookback(
    opencti_standin: OpenCTIStandin,
    pycti_helper: HelperFactory,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    indicators = add_indicators(opencti_standin, 2)
    specs = build_alert_specs(50, indicators=tuple(indicators), start=START)
    alerts.create()
    alerts.index_8x(specs)
    helper = pycti_helper()
    state = ConnectorState(helper)
    config = config_for(opencti_standin, es_settings, alerts.pattern, page_size=20)
    poller = Loop(opencti_standin, es_client, config, state).poller()
    assert poller.poll_once().alerts == 50
    helper.force_ping()
    writes = sighting_writes(opencti_standin)

    opencti_standin.reset_connector_state(helper.connector_id)
    adopt_the_platform_state(helper, opencti_standin)
    assert helper.get_state() is None
    replay = poller.poll_once()

    assert (replay.complete, replay.alerts) == (True, 50)  # from the initial lookback again
    assert sighting_writes(opencti_standin) == writes  # found already there, not re-sent
    assert counts_by_indicator(opencti_standin) == expected_counts(specs)
    # Until the stream pipeline has restarted too (it acknowledges the reset), the position
    # stays in memory; then it is saved again.
    assert helper.get_state() is None
    state.acknowledge_reset()
    poller.poll_once()
    saved = position_from_state((helper.get_state() or {}).get(STATE_KEY))
    assert isinstance(saved, PollPosition)
    assert saved.cursor == AlertCursor(specs[-1].timestamp_ms, specs[-1].uuid)


def test_a_state_reset_during_a_poll_ends_it_and_the_next_starts_over(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_settings: ElasticsearchSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    indicators = add_indicators(standin, 2)
    before = build_alert_specs(20, indicators=tuple(indicators), start=START)
    alerts.create()
    alerts.index_8x(before)
    client = build_client(es_settings, CloudSettings())
    loop = Loop(standin, client, config_for(standin, es_settings, alerts.pattern, page_size=10))
    poller = loop.poller()
    poller.poll_once()
    later = more_alerts(20, indicators, START + timedelta(minutes=5), "later")
    alerts.index_8x(later)
    search = client.search

    def reset_while_searching(*args: object, **kwargs: object) -> object:
        loop.store.state = None  # a ping brought back the state reset in the UI
        return search(*args, **kwargs)  # type: ignore[arg-type]  # passing the call through

    monkeypatch.setattr(client, "search", reset_while_searching)
    interrupted = poller.poll_once()
    monkeypatch.setattr(client, "search", search)
    loop.state.acknowledge_reset()
    replay = poller.poll_once()

    assert interrupted.error == "connector state reset"
    assert (replay.complete, replay.alerts) == (True, 40)
    assert counts_by_indicator(standin) == expected_counts([*before, *later])
    assert loop.saved().cursor == AlertCursor(later[-1].timestamp_ms, later[-1].uuid)


def test_position_round_trips_through_the_connector_state() -> None:
    position = PollPosition(
        AlertCursor(1_714_521_600_000, AFTER_EVERY_UUID), ("a", "b"), {"x": 1_714_521_600_001}
    )
    stored = msgspec.json.decode(msgspec.json.encode(position_to_state(position)))
    assert position_from_state(stored) == position
    assert position_from_state(None) == PollPosition()
    assert isinstance(position_from_state({"cursor": {"timestamp_ms": "x"}}), str)


# --- alert generations ----------------------------------------------------------------------


def _stop_after_searches(
    client: Elasticsearch, monkeypatch: pytest.MonkeyPatch, count: int
) -> Callable[[AlertPoller], None]:
    """Make the poller stop itself right after its ``count``-th search."""
    search = client.search
    calls: list[int] = []
    holder: list[AlertPoller] = []

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == count and holder:
            holder[0].stop()
        return search(*args, **kwargs)  # type: ignore[arg-type]  # passing the call through

    monkeypatch.setattr(client, "search", counted)
    return holder.append


def test_7x_signals_and_8x_alerts_behind_one_alias(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_settings: ElasticsearchSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    indicators = add_indicators(standin, 2)
    specs = build_alert_specs(20, indicators=tuple(indicators))
    # Eleven 7.x signals from three rule runs (one millisecond each, no kibana.alert.uuid)
    # before nine 8.x alerts, as after a Kibana 8 upgrade.
    legacy = same_millisecond_specs(
        specs[:11], group=5, start=START - timedelta(minutes=1), step=timedelta(seconds=1)
    )
    modern = same_millisecond_specs(specs[11:], group=1, start=START, step=timedelta(seconds=1))
    alerts.create(legacy=True)
    alerts.index_7x(legacy)
    alerts.index_8x(modern)
    client = build_client(es_settings, CloudSettings())
    loop = Loop(standin, client, config_for(standin, es_settings, alerts.pattern, page_size=3))
    # Stop while reading the second page: the first page (three of the first run's five
    # signals) is done, the rest is left for the next poller.
    register = _stop_after_searches(client, monkeypatch, count=2)
    first = loop.poller()
    register(first)

    stopped = first.poll_once()

    assert (stopped.complete, stopped.alerts) == (False, 3)
    saved = loop.saved()
    first_run = {spec.uuid for spec in legacy[:5]}
    assert saved.cursor == AlertCursor(legacy[0].timestamp_ms, AFTER_EVERY_UUID)
    assert len(saved.unsorted) == 3
    assert set(saved.unsorted) <= first_run

    resumed = loop.poll()

    assert (resumed.complete, resumed.alerts) == (True, 17)
    assert counts_by_indicator(standin) == expected_counts([*legacy, *modern])
    assert loop.saved().cursor == AlertCursor(modern[-1].timestamp_ms, modern[-1].uuid)


def test_a_7x_signals_index_pattern(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    [indicator] = add_indicators(standin, 1)
    legacy = same_millisecond_specs(
        build_alert_specs(14, indicators=(indicator,)),
        group=4,
        start=START,
        step=timedelta(milliseconds=10),
    )
    alerts.create(legacy=True)
    alerts.index_7x(legacy)
    pattern = f".siem-signals-{alerts.space}-*"
    loop = Loop(standin, es_client, config_for(standin, es_settings, pattern, page_size=3))

    report = loop.poll()
    again = loop.poll()

    assert (report.complete, report.alerts, again.alerts) == (True, 14, 0)
    assert counts_by_indicator(standin) == {indicator: 14}
    position = loop.saved()
    assert position.cursor == AlertCursor(legacy[-1].timestamp_ms, AFTER_EVERY_UUID)
    assert set(position.unsorted) == {spec.uuid for spec in legacy[-2:]}


def test_unusable_alerts_are_reported_and_passed(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    [indicator] = add_indicators(standin, 1)
    specs = build_alert_specs(4, indicators=(indicator,), start=START)
    alerts.create()
    alerts.index_8x(specs)
    # Accepted by the mapping (a keyword takes a number) but not an alert we can read.
    broken = {
        "@timestamp": "2024-05-01T00:00:00.100Z",
        "kibana.alert.uuid": "broken-1",
        "kibana.alert.rule.type": "threat_match",
        "kibana.alert.rule.name": 42,
    }
    es_client.index(index=alerts.alerts, id="broken-1", document=broken, refresh=True)
    loop = Loop(standin, es_client, config_for(standin, es_settings, alerts.pattern))

    report = loop.poll()

    assert (report.complete, report.alerts, report.unusable) == (True, 5, 1)
    assert loop.metric("sighting_errors_total", code="alert_invalid") == 1
    assert counts_by_indicator(standin) == {indicator: 4}


# --- the thread -----------------------------------------------------------------------------


def test_the_poller_thread_polls_until_stopped(
    standin: OpenCTIStandin,
    alerts: AlertIndices,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> None:
    [indicator] = add_indicators(standin, 1)
    alerts.create()
    alerts.index_8x(build_alert_specs(3, indicators=(indicator,), start=START))
    clock = Clock()
    loop = Loop(standin, es_client, config_for(standin, es_settings, alerts.pattern), clock=clock)
    poller = loop.poller()

    poller.start()
    try:
        wait_until(lambda: counts_by_indicator(standin) == {indicator: 3}, what="3 sightings")
        alerts.index_8x(more_alerts(2, [indicator], NOW, "next"))
        clock.now += timedelta(minutes=15)  # past the settle delay
        wait_until(lambda: counts_by_indicator(standin) == {indicator: 5}, what="5 sightings")
        assert poller.is_alive()
    finally:
        poller.stop()

    assert not poller.is_alive()
