"""Stopping and restarting the daemon loses nothing and duplicates nothing.

* SIGTERM: exit 0 within 10 s, after a last ping that saves the acknowledged position;
  the next start resumes exactly there (``Last-Event-ID``) without re-reading anything.
* SIGKILL: no shutdown code runs; the platform keeps the position of the last ping, the next
  start resumes from it and rewrites the replayed events idempotently (deterministic ``_id``).

In both cases the final index is compared with the expected state document by document.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence

import msgspec
import pytest

from elastic_connector.core.config import ElasticsearchSettings
from elastic_connector.demo.opencti_data import Json, make_indicator
from tests.e2e.harness import (
    ConnectorHarness,
    dig,
    doc_id,
    is_at_or_after,
    updated,
    wait_for,
)
from tests.support.faulty_proxy import FailBulkItems, FaultyProxy, Stall

Harnesses = Callable[..., ConnectorHarness]


def ip_indicator(run: str, number: int) -> Json:
    return make_indicator(f"[ipv4-addr:value = '10.{len(run)}.{number // 250}.{number % 250}']")


def expect_index(connector: ConnectorHarness, expected: Sequence[Json]) -> None:
    """The index holds exactly one document per expected indicator (its latest version),
    with that version's pattern and confidence (``documents()`` also fails on a duplicated
    ``_id``)."""
    documents = connector.documents()
    assert sorted(documents) == sorted(doc_id(stix) for stix in expected)
    for stix in expected:
        document = documents[doc_id(stix)]
        assert dig(document, "opencti.indicator.pattern") == stix["pattern"]
        assert dig(document, "opencti.indicator.confidence") == stix["confidence"]


def publish_all(connector: ConnectorHarness, events: Sequence[tuple[str, Json]]) -> list[str]:
    return [connector.publish(kind, stix) for kind, stix in events]


def test_sigterm_exits_0_within_10_s_and_saves_the_position(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    daemon = connector.start()
    first_request = connector.standin.stream_requests[0]
    assert first_request.headers["last-event-id"] == "0-0"
    recover = first_request.query["recover"]
    indicators = [ip_indicator("a", n) for n in range(5)]
    ids = publish_all(connector, [("create", stix) for stix in indicators])
    connector.wait_for_commit(ids[-1])
    pings = connector.standin.ping_count(connector.connector_id)

    began = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    code = daemon.wait(10)
    elapsed = time.monotonic() - began

    assert code == 0, daemon.tail()
    assert elapsed < 10
    assert "received SIGTERM: shutting down" in daemon.output()
    assert connector.standin.ping_count(connector.connector_id) > pings, "no final ping"
    assert connector.saved_state() == {"start_from": ids[-1], "recover_until": recover}
    expect_index(connector, indicators)


def test_restart_after_sigterm_resumes_exactly_where_it_stopped(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    first = connector.start()
    created = [ip_indicator("b", n) for n in range(6)]
    ids = publish_all(connector, [("create", stix) for stix in created])
    connector.wait_for_commit(ids[-1])
    assert first.terminate() == 0
    saved = connector.saved_state()
    assert saved is not None
    assert saved["start_from"] == ids[-1]

    # While the connector is down, OpenCTI moves on.
    changed = updated(created[0], confidence=10)
    later = [ip_indicator("b", n) for n in range(6, 9)]
    down = publish_all(
        connector,
        [("update", changed), ("delete", created[1]), *[("create", stix) for stix in later]],
    )

    second = connector.start()
    connector.wait_for_commit(down[-1])

    requests = connector.standin.stream_requests
    assert len(requests) == 2
    assert requests[1].headers["last-event-id"] == ids[-1]
    assert requests[1].query == requests[0].query  # same recovery date: no second replay
    # Resumed after the saved id: nothing from the first run is read again.
    assert second.metric("events", event="create") == len(later)
    assert second.metric("events", event="update") == 1
    assert second.metric("events", event="delete") == 1
    expect_index(connector, [changed, *created[2:], *later])
    assert second.terminate() == 0
    final = connector.saved_state()
    assert final is not None
    assert final["start_from"] == down[-1]


def test_restart_after_sigkill_replays_from_the_last_ping_without_duplicates(
    e2e_harness: Harnesses,
) -> None:
    connector = e2e_harness()
    # Run 1 ends cleanly: the platform holds position P1.
    run1 = connector.start()
    wave1 = [ip_indicator("c", n) for n in range(4)]
    ids1 = publish_all(connector, [("create", stix) for stix in wave1])
    connector.wait_for_commit(ids1[-1])
    assert run1.terminate() == 0
    p1 = ids1[-1]

    # Run 2 is killed: its acknowledged progress never reaches the platform (pycti pings
    # every 40 s; this run is far shorter), so the platform still holds P1.
    run2 = connector.start()
    changed = updated(wave1[0], confidence=33)
    wave2 = [ip_indicator("c", n) for n in range(4, 8)]
    ids2 = publish_all(
        connector,
        [("update", changed), ("delete", wave1[1]), *[("create", stix) for stix in wave2]],
    )
    connector.wait_for_ack(ids2[-1])
    assert run2.kill() == -signal.SIGKILL
    held = connector.saved_state()
    assert held is not None
    at_kill = str(held["start_from"])
    assert at_kill == p1, "run 2 pinged its progress (did it last over 40 s?)"

    # While it is down: more changes, including to documents written by the killed run.
    changed_again = updated(wave2[0], confidence=66)
    wave3 = [ip_indicator("c", n) for n in range(8, 10)]
    ids3 = publish_all(
        connector,
        [
            ("update", changed_again),
            ("delete", wave2[1]),
            *[("create", stix) for stix in wave3],
        ],
    )

    run3 = connector.start()
    connector.wait_for_commit(ids3[-1])

    requests = connector.standin.stream_requests
    assert [r.headers["last-event-id"] for r in requests] == ["0-0", p1, at_kill]
    # Everything after the held position is delivered again (run 2's events, rewritten
    # idempotently), and only that.
    delivered = sum(run3.metric("events", event=k) for k in ("create", "update", "delete"))
    assert delivered == len(ids2) + len(ids3)
    expect_index(connector, [changed, *wave1[2:], changed_again, *wave2[2:], *wave3])
    assert run3.terminate() == 0
    assert connector.saved_state() == {
        "start_from": ids3[-1],
        "recover_until": requests[0].query["recover"],
    }


def test_kill_mid_batch_then_restart_converges(e2e_harness: Harnesses) -> None:
    """SIGKILL while many events are being written (small bulk requests): the restart
    rewrites what may or may not have landed, and the index ends exact."""
    connector = e2e_harness(env={"ELASTICSEARCH_BULK_MAX_ACTIONS": "10"})
    run1 = connector.start()
    indicators = [ip_indicator("d", n) for n in range(300)]
    ids = connector.standin.publish_many(("create", stix) for stix in indicators)
    wait_for(
        lambda: is_at_or_after(run1.last_ack_id(), ids[30]),
        timeout=15,
        what="part of the burst to be acknowledged",
        context=run1.tail,
    )
    run1.kill()
    acked_then = connector.documents()
    assert 0 < len(acked_then) < len(indicators), "the kill did not land mid-burst"

    run2 = connector.start()
    # Nothing was pinged: a first start again, whose recovery replays the knowledge base as
    # it is now (with ids "<update ms>-0", so wait on the index, not on an event id).
    assert connector.stream_request_positions() == ["0-0", "0-0"]
    connector.wait_for_documents(
        lambda documents: len(documents) == len(indicators), timeout=30, what="all documents"
    )
    expect_index(connector, indicators)
    assert run2.terminate() == 0


def test_sigterm_mid_burst_drains_what_was_read_and_saves_exactly_that(
    e2e_harness: Harnesses,
) -> None:
    connector = e2e_harness(env={"ELASTICSEARCH_BULK_MAX_ACTIONS": "10"})
    run1 = connector.start()
    indicators = [ip_indicator("e", n) for n in range(300)]
    ids = connector.standin.publish_many(("create", stix) for stix in indicators)
    wait_for(
        lambda: is_at_or_after(run1.last_ack_id(), ids[30]),
        timeout=15,
        what="part of the burst to be acknowledged",
        context=run1.tail,
    )
    assert run1.terminate() == 0
    saved = connector.saved_state()
    assert saved is not None
    position = str(saved["start_from"])
    # Every event up to the saved position is in the index: nothing committed unwritten.
    written = connector.documents()
    upto = [stix for stix, i in zip(indicators, ids, strict=True) if is_at_or_after(position, i)]
    assert {doc_id(stix) for stix in upto} <= set(written)

    run2 = connector.start()
    connector.wait_for_ack(ids[-1], timeout=30)
    assert connector.stream_request_positions()[-1] == position
    expect_index(connector, indicators)
    assert run2.terminate() == 0


def test_sigterm_with_elasticsearch_stalled_still_exits_within_10_s_without_committing(
    e2e_harness: Harnesses, faulty_proxy: FaultyProxy, es_settings: ElasticsearchSettings
) -> None:
    connector = e2e_harness()
    connector.es_settings = msgspec.structs.replace(es_settings, hosts=(faulty_proxy.url,))
    run1 = connector.start()
    written = ip_indicator("f", 1)
    acked = connector.publish_and_ack("create", written)
    connector.wait_for_commit(acked)
    # Elasticsearch stops answering bulk requests (they hang until the client's timeout).
    faulty_proxy.inject(Stall(60), times=None, path="/_bulk")
    stuck = ip_indicator("f", 2)
    stuck_id = connector.publish("create", stuck)
    wait_for(
        lambda: any(r.fault is not None for r in faulty_proxy.requests),
        what="a bulk request to hang",
        context=run1.tail,
    )

    began = time.monotonic()
    code = run1.terminate(10)
    assert code == 0
    assert time.monotonic() - began < 10
    # The final ping saved the acknowledged position, not the one still in flight.
    state = connector.saved_state()
    assert state is not None
    assert state["start_from"] == acked
    assert not is_at_or_after(str(state["start_from"]), stuck_id)

    faulty_proxy.clear()
    connector.start()
    connector.wait_for_ack(stuck_id)
    assert connector.stream_request_positions()[-1] == acked
    expect_index(connector, [written, stuck])


def test_opencti_down_at_start_is_waited_out(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    connector.standin.stop()
    daemon = connector.spawn("run")
    # One line: the URL, the error and the option to fix; not pycti's own traceback.
    daemon.wait_for_line(
        r"ERROR .*cannot register with OpenCTI \(retrying in .*\): cannot reach OpenCTI at "
        r"http://127\.0\.0\.1:\d+: connection refused; .* check opencti\.url \(OPENCTI_URL\)"
    )
    assert "Traceback" not in daemon.output()
    assert " api: " not in daemon.output()  # pycti's client logs nothing of its own
    assert daemon.running

    connector.standin.start()  # same port
    wait_for(daemon.stream_connected, timeout=20, what="the stream", context=daemon.tail)
    stix = ip_indicator("g", 1)
    connector.publish_and_ack("create", stix)
    expect_index(connector, [stix])
    assert daemon.terminate() == 0


def test_a_dropped_stream_resumes_after_the_last_event_received(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    daemon = connector.start()
    before = [ip_indicator("h", n) for n in range(3)]
    ids = publish_all(connector, [("create", stix) for stix in before])
    connector.wait_for_commit(ids[-1])

    assert connector.standin.drop_connections() == 1
    after = [ip_indicator("h", n) for n in range(3, 6)]
    later = publish_all(connector, [("create", stix) for stix in after])
    connector.wait_for_ack(later[-1])

    positions = connector.stream_request_positions()
    assert len(positions) == 2
    assert is_at_or_after(positions[1], ids[-1])
    assert not is_at_or_after(positions[1], later[0])
    assert daemon.metric("events", event="create") == len(before) + len(after)
    expect_index(connector, [*before, *after])


@pytest.mark.slow
def test_a_state_reset_in_opencti_restarts_the_stream_from_scratch(
    e2e_harness: Harnesses,
) -> None:
    """ "Reset state" in the UI reaches the connector with pycti's next ping (every 40 s)."""
    connector = e2e_harness()
    daemon = connector.start()
    first = [ip_indicator("i", n) for n in range(3)]
    ids = publish_all(connector, [("create", stix) for stix in first])
    connector.wait_for_commit(ids[-1])
    connector.standin.reset_connector_state(connector.connector_id)

    daemon.wait_for_line("the connector state was reset from OpenCTI", timeout=50)
    wait_for(
        lambda: len(connector.standin.stream_requests) >= 2,
        what="a new stream request",
        context=daemon.tail,
    )
    assert connector.stream_request_positions() == ["0-0", "0-0"]
    later = ip_indicator("i", 9)
    last = connector.publish_and_ack("create", later)
    connector.wait_for_commit(last)
    expect_index(connector, [*first, later])
    assert daemon.terminate() == 0
    state = connector.saved_state()
    assert state is not None
    assert state["start_from"] == last


def test_only_acknowledged_events_are_saved_while_the_reader_runs_ahead(
    e2e_harness: Harnesses, faulty_proxy: FaultyProxy, es_settings: ElasticsearchSettings
) -> None:
    """The reader is ahead of the writer (a queue apart). When Elasticsearch keeps refusing
    the second batch (429 on its items), the saved position must stay at the end of the first
    batch, not at what the reader has read: after a SIGTERM and a restart, nothing is lost."""
    connector = e2e_harness(env={"ELASTICSEARCH_BULK_MAX_ACTIONS": "10"})
    connector.es_settings = msgspec.structs.replace(es_settings, hosts=(faulty_proxy.url,))
    run1 = connector.start()
    first = [ip_indicator("j", n) for n in range(10)]
    second = [ip_indicator("j", n) for n in range(10, 20)]
    faulty_proxy.inject(
        FailBulkItems(status=429, ids=frozenset(doc_id(stix) for stix in second)),
        times=None,
        path="/_bulk",
    )
    ids = connector.standin.publish_many(("create", stix) for stix in [*first, *second])
    wait_for(
        lambda: (
            run1.last_ack_id() is not None
            and any(isinstance(r.fault, FailBulkItems) for r in faulty_proxy.requests)
            and is_at_or_after(run1.status_last_event_id(), ids[-1])
        ),
        what="the first batch acknowledged, the second refused, everything read",
        context=run1.tail,
    )

    assert run1.terminate() == 0
    state = connector.saved_state()
    assert state is not None
    assert not is_at_or_after(str(state["start_from"]), ids[10]), (state, ids[10])
    assert set(connector.documents()) <= {doc_id(stix) for stix in first}

    faulty_proxy.clear()
    connector.start()
    connector.wait_for_commit(ids[-1])
    expect_index(connector, [*first, *second])


def test_first_start_replays_the_knowledge_base_then_follows_the_live_stream(
    e2e_harness: Harnesses,
) -> None:
    """No saved state: the platform first replays what exists now (``recover``), and the
    position is saved only from the first live event on."""
    connector = e2e_harness()
    kept = ip_indicator("k", 1)
    gone = ip_indicator("k", 2)
    revoked = ip_indicator("k", 3)
    changed = ip_indicator("k", 4)
    before = publish_all(
        connector,
        [
            ("create", kept),
            ("create", gone),
            ("create", revoked),
            ("create", changed),
            ("delete", gone),
            ("update", updated(revoked, revoked=True)),
        ],
    )
    latest = updated(changed, confidence=5)
    before.append(connector.publish("update", latest))
    time.sleep(1.1)  # the recovery date has a one-second resolution: keep it after them

    daemon = connector.start()
    connector.wait_for_documents(
        lambda documents: set(documents) == {doc_id(kept), doc_id(latest)},
        what="the replayed knowledge base",
    )
    expect_index(connector, [kept, latest])
    # Replayed objects are creates of the current state, not the event history.
    assert daemon.metric("events", event="create") == 3
    assert daemon.metric("events", event="update") == 0

    live = ip_indicator("k", 5)
    live_id = connector.publish_and_ack("create", live)
    connector.wait_for_commit(live_id)
    expect_index(connector, [kept, latest, live])
    assert daemon.terminate() == 0
    state = connector.saved_state()
    assert state is not None
    assert state["start_from"] == live_id
    assert state["recover_until"] == connector.standin.stream_requests[0].query["recover"]
