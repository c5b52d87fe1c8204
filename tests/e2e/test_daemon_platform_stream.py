"""The daemon against the stand-in's platform-faithful stream (``shared/reference/opencti.md``,
"Platform behaviours a connector must survive"): an event's dependencies sent under its id, a
heartbeat inside the group, clock heartbeat ids, the recovery replay, a trimmed stream, a queue
that stays full, a reset from the UI, ``listen_delete: false`` and an unknown live stream.

Each test fails on the connector as it was before issue 11 (it committed the last id read,
reconnected from it, kept reading with a full queue, pinged a reset state back...)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import msgspec

from elastic_connector.core.config import ElasticsearchSettings
from elastic_connector.core.stream import parse_stream_id
from elastic_connector.demo.opencti_data import Json, make_indicator
from elastic_connector.demo.opencti_standin import OpenCTIStandin, StreamSwitches
from tests.e2e.harness import ConnectorHarness, dig, doc_id, is_at_or_after, wait_for
from tests.support.faulty_proxy import FaultyProxy, Stall

Harnesses = Callable[..., ConnectorHarness]

GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"


def indicator(number: int, markings: tuple[str, ...] = ()) -> Json:
    return make_indicator(
        f"[ipv4-addr:value = '10.11.{number // 250}.{number % 250}']", markings=markings
    )


def faithful(harnesses: Harnesses, **env: str) -> ConnectorHarness:
    """A harness whose stand-in also puts a heartbeat inside every dependency group."""
    connector = harnesses(env=env or None)
    connector.standin.switches = StreamSwitches(heartbeat_in_groups=True)
    return connector


# --- same-id groups -----------------------------------------------------------------------------


def test_a_stop_inside_a_group_resumes_before_the_group(e2e_harness: Harnesses) -> None:
    connector = faithful(e2e_harness)
    run1 = connector.start()
    first = connector.publish_and_ack("create", indicator(1))
    connector.wait_for_commit(first)
    marked = indicator(2, markings=(GREEN,))
    group = connector.standin.publish("create", marked)
    connector.standin.hold_group(group)  # the marking and a heartbeat sent, not the indicator
    assert connector.standin.wait_for_held(group)
    wait_for(
        lambda: is_at_or_after(run1.last_ack_id(), group),
        what="the marking to be written",
        context=run1.tail,
    )

    assert run1.terminate() == 0
    saved = connector.saved_state()
    assert saved is not None
    assert saved["start_from"] == first, "the id of a group still arriving was saved"

    connector.standin.release_group(group)
    connector.start()
    connector.wait_for_commit(group)
    assert doc_id(marked) in connector.documents()
    assert connector.stream_request_positions()[-1] == first


def test_a_connection_lost_inside_a_group_loses_nothing(e2e_harness: Harnesses) -> None:
    connector = faithful(e2e_harness)
    daemon = connector.start()
    first = connector.publish_and_ack("create", indicator(3))
    marked = indicator(4, markings=(GREEN,))
    group = connector.standin.publish("create", marked)
    connector.standin.hold_group(group)
    assert connector.standin.wait_for_held(group)

    assert connector.standin.drop_connections() == 1
    connector.standin.release_group(group)
    connector.wait_for_commit(group)

    assert doc_id(marked) in connector.documents()
    positions = connector.stream_request_positions()
    assert len(positions) == 2
    assert positions[1] == first  # before the group, not at its id
    assert daemon.terminate() == 0


def test_a_heartbeat_position_is_saved_a_margin_back(e2e_harness: Harnesses) -> None:
    connector = e2e_harness(env={"CONNECTOR_STREAM_HEARTBEAT_MARGIN": "1"})
    daemon = connector.start()
    event_id = connector.publish_and_ack("create", indicator(5))
    # Idle: the platform's heartbeats carry its clock; after the margin they move the position.
    wait_for(
        lambda: daemon.committed_position() not in (None, event_id),
        what="a heartbeat-derived position",
        context=daemon.tail,
    )
    committed = parse_stream_id(daemon.committed_position() or "")
    assert committed is not None
    assert committed.seq == 0
    assert committed.ms <= int(time.time() * 1000) - 1000  # a second back from the clock
    assert is_at_or_after(str(committed), event_id)
    assert daemon.terminate() == 0


# --- the recovery replay ------------------------------------------------------------------------


def test_the_replay_commits_nothing_and_is_asked_again_after_a_reconnect(
    e2e_harness: Harnesses,
) -> None:
    connector = e2e_harness()
    objects = [indicator(10 + n, markings=(GREEN,)) for n in range(6)]
    for stix in objects:
        connector.publish("create", stix)
    time.sleep(1.1)  # the recovery date has a one-second resolution: keep it after them
    connector.standin.set_event_delay(0.3)  # a long replay
    daemon = connector.start()
    wait_for(
        lambda: len(connector.documents()) >= 2, what="part of the replay", context=daemon.tail
    )
    health = daemon.health()
    assert health is not None
    stream = health[1]["stream"]
    assert isinstance(stream, dict)
    assert stream["recovering"] is True
    assert stream["committed_position"] is None

    assert connector.standin.drop_connections() == 1
    wait_for(lambda: len(connector.standin.stream_requests) == 2, what="a reconnection")
    first, second = connector.standin.stream_requests
    # Replay ids are update times, in no order: the replay is asked for again from the start.
    assert second.headers["last-event-id"] == first.headers["last-event-id"] == "0-0"
    assert second.query == first.query
    connector.standin.set_event_delay(0)
    connector.wait_for_documents(
        lambda documents: set(documents) == {doc_id(stix) for stix in objects},
        what="the whole knowledge base",
    )
    assert connector.saved_state() is None  # nothing was saved during the replay
    assert daemon.terminate() == 0


# --- a trimmed stream ---------------------------------------------------------------------------


def test_a_position_older_than_the_stream_is_reported_as_a_gap(
    e2e_harness: Harnesses, clean_opencti_env: None
) -> None:
    with OpenCTIStandin(heartbeat_interval=0.2, max_stream_length=5) as standin:
        connector = e2e_harness(standin=standin)
        run1 = connector.start()
        saved = connector.publish_and_ack("create", indicator(20))
        connector.wait_for_commit(saved)
        assert run1.terminate() == 0
        # While the connector is down, more events than the stream keeps: `saved` is trimmed.
        later = [indicator(21 + n) for n in range(8)]
        ids = [standin.publish("create", stix) for stix in later]

        run2 = connector.start()
        connector.wait_for_commit(ids[-2])
        first_kept = ids[3]
        line = run2.wait_for_line(r"WARNING .*stream gap")
        assert saved in line.string
        assert first_kept in line.string
        assert "deletions" in line.string
        assert run2.metric("stream_gaps") == 1
        health = run2.health()
        assert health is not None
        stream = health[1]["stream"]
        assert isinstance(stream, dict)
        assert stream["gaps"] == 1
        assert stream["last_gap"] == {"saved_position": saved, "first_event_id": first_kept}
        # What the stream still holds is indexed by the stream, the trimmed events by the
        # reconciliation the gap runs (issue 14).
        run2.wait_for_line(r"INFO .*reconcile \(gap\): done")
        documents = connector.documents()
        assert {doc_id(stix) for stix in later} <= set(documents)
        assert run2.metric("reconcile_runs", trigger="gap", outcome="ok") == 1
        assert run2.terminate() == 0


# --- back-pressure ------------------------------------------------------------------------------


def test_a_queue_full_for_too_long_disconnects_and_resumes(
    e2e_harness: Harnesses, faulty_proxy: FaultyProxy, es_settings: ElasticsearchSettings
) -> None:
    connector = e2e_harness(
        env={
            "CONNECTOR_STREAM_QUEUE_FULL_TIMEOUT": "1",
            "ELASTICSEARCH_BULK_MAX_ACTIONS": "10",
            "ELASTICSEARCH_REQUEST_TIMEOUT": "60",
        }
    )
    connector.es_settings = msgspec.structs.replace(es_settings, hosts=(faulty_proxy.url,))
    daemon = connector.start()
    faulty_proxy.inject(Stall(4), times=1, path="/_bulk")
    indicators = [indicator(100 + n) for n in range(250)]
    ids = connector.standin.publish_many(("create", stix) for stix in indicators)
    daemon.wait_for_line(r"WARNING .*queue full.*disconnected from the OpenCTI stream")
    wait_for(
        lambda: connector.standin.open_stream_connections == 0,
        what="the daemon to hang up",
        context=daemon.tail,
    )
    faulty_proxy.clear()
    connector.wait_for_commit(ids[-2], timeout=60)
    assert len(connector.standin.stream_requests) >= 2
    assert set(connector.documents()) == {doc_id(stix) for stix in indicators}
    assert daemon.terminate() == 0


# --- state and configuration --------------------------------------------------------------------


def test_a_reset_from_the_ui_is_not_undone_by_the_final_ping(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    daemon = connector.start()
    event_id = connector.publish_and_ack("create", indicator(30))
    connector.wait_for_commit(event_id)
    pings = connector.standin.ping_count(connector.connector_id)
    connector.standin.reset_connector_state(connector.connector_id)  # before pycti's next ping

    assert daemon.terminate() == 0
    assert connector.standin.ping_count(connector.connector_id) == pings + 1
    assert connector.saved_state() is None, "the final ping wrote the old position back"
    assert "the connector state was reset from OpenCTI" in daemon.output()
    # The next start is a first start again.
    connector.start()
    assert connector.stream_request_positions()[-1] == "0-0"


def test_listen_delete_false_is_warned_at_start_and_in_check(e2e_harness: Harnesses) -> None:
    connector = e2e_harness(env={"CONNECTOR_LIVE_STREAM_LISTEN_DELETE": "false"})
    daemon = connector.start()
    line = daemon.wait_for_line(r"WARNING .*live_stream_listen_delete is false")
    assert connector.index in line.string
    assert daemon.terminate() == 0

    check = connector.run("check")
    warnings = [line for line in check.lines() if re.match(r"^WARN +stream: ", line)]
    assert any("live_stream_listen_delete is false" in line for line in warnings), check.tail()


def test_check_names_an_unknown_live_stream_on_401(e2e_harness: Harnesses) -> None:
    connector = e2e_harness(env={"CONNECTOR_LIVE_STREAM_ID": "no-such-stream"})
    check = connector.run("check")
    assert check.returncode == 1
    failures = [line for line in check.lines() if line.startswith("FAIL stream")]
    assert len(failures) == 1, check.tail()
    assert "no live stream has the id 'no-such-stream'" in failures[0]


def test_a_recovered_indicator_is_indexed_with_its_marking_learnt(e2e_harness: Harnesses) -> None:
    """The issue's critical case end to end: replay and dependency frames have no ``type``."""
    connector = e2e_harness()
    stix = indicator(40, markings=(GREEN,))
    connector.publish("create", stix)
    time.sleep(1.1)
    daemon = connector.start()
    documents = connector.wait_for_documents(
        lambda found: doc_id(stix) in found, what="the replayed indicator"
    )
    assert dig(documents[doc_id(stix)], "threat.indicator.marking.tlp") == "GREEN"
    assert daemon.metric("skips", code="undecodable") == 0
    assert daemon.terminate() == 0


def test_a_collection_that_drops_an_update_from_its_filters_deletes_the_document(
    e2e_harness: Harnesses,
) -> None:
    """A live stream's filters turn an update into ``event: delete`` when the object leaves
    them (``create`` when it enters them), the JSON ``type`` still saying ``update``."""
    connector = e2e_harness(env={"CONNECTOR_LIVE_STREAM_ID": "c2-only"})

    def labelled_c2(stix: Json) -> bool:
        labels = stix.get("labels")
        return isinstance(labels, list) and "c2" in labels

    connector.standin.add_stream_collection("c2-only", filters=labelled_c2)
    daemon = connector.start()
    stix = make_indicator("[ipv4-addr:value = '10.11.9.9']", labels=["c2"])
    patch: Json = {"patch": [], "reverse_patch": []}
    connector.publish("create", stix)
    connector.wait_for_documents(lambda found: doc_id(stix) in found, what="the indicator")

    connector.publish("update", {**stix, "labels": ["spam"]}, patch)  # leaves the filters
    connector.wait_for_documents(lambda found: doc_id(stix) not in found, what="its removal")
    back = connector.publish("update", {**stix, "labels": ["c2"], "confidence": 12}, patch)
    connector.wait_for_commit(back)
    document = connector.documents()[doc_id(stix)]
    assert dig(document, "opencti.indicator.confidence") == 12
    assert daemon.metric("events", event="delete") == 1
    assert daemon.metric("events", event="create") == 2
    assert daemon.terminate() == 0
