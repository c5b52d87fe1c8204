"""The stand-in's stream is as hard as the platform's (``demo/standin_stream.py``): frames
without ``type``, dependency groups sharing an event's id, clock heartbeat ids, recovery ids
from current update times, trimming, no ``retry:`` line, collection filters rewriting updates.
Each behaviour read raw off the wire, and where it is a switch, with the switch off too."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import urllib3

from elastic_connector.core.stream import StreamId, parse_stream_id
from elastic_connector.demo.opencti_data import identity_standard_id, internal_id, make_indicator
from elastic_connector.demo.opencti_standin import OpenCTIStandin, StreamSwitches

GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
AUTHOR = identity_standard_id("ACME CERT", "organization")
Frame = tuple[str | None, str, str]


def author() -> dict[str, object]:
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": AUTHOR,
        "name": "ACME CERT",
        "identity_class": "organization",
    }


@pytest.fixture
def standin(clean_opencti_env: None) -> Iterator[OpenCTIStandin]:
    with OpenCTIStandin(heartbeat_interval=0.1) as running:
        yield running


def read_frames(
    standin: OpenCTIStandin,
    path: str,
    until: int,
    *,
    start: str | None = "0-0",
    heartbeats: bool = True,
    timeout: float = 10.0,
    **headers: str,
) -> tuple[bytes, list[Frame]]:
    """The raw opening bytes and the first ``until`` frames ``(id, event, data)`` (the
    ``connected`` greeting included, heartbeats only with ``heartbeats``)."""
    http = urllib3.PoolManager()
    sent = {"authorization": f"Bearer {standin.token}"}
    if start is not None:
        sent["last-event-id"] = start
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    response = http.request(
        "GET", standin.url + path, headers=sent, preload_content=False, timeout=timeout
    )
    assert response.status == 200
    raw = b""
    frames: list[Frame] = []
    buffer = b""
    try:
        while len(frames) < until:
            chunk = response.read1(65536)
            assert chunk, "the stream ended early"
            raw += chunk
            buffer += chunk
            *complete, buffer = buffer.split(b"\n\n")
            for block in complete:
                fields = dict(
                    line.decode().split(": ", 1) for line in block.split(b"\n") if b": " in line
                )
                if fields.get("event") == "heartbeat" and not heartbeats:
                    continue
                frames.append((fields.get("id"), fields.get("event", ""), fields.get("data", "")))
    finally:
        response.close()
    return raw, frames[:until]


def data_frames(frames: list[Frame]) -> list[tuple[str | None, str, dict[str, object]]]:
    return [(i, e, json.loads(d)) for i, e, d in frames if e not in ("connected", "heartbeat")]


def stix_of(envelope: dict[str, object]) -> dict[str, object]:
    data = envelope["data"]
    assert isinstance(data, dict)
    return data


def labelled_c2(stix: dict[str, object]) -> bool:
    labels = stix.get("labels")
    return isinstance(labels, list) and "c2" in labels


# --- envelopes and dependency groups ------------------------------------------------------------


def test_an_event_comes_after_its_dependencies_under_its_own_id(standin: OpenCTIStandin) -> None:
    standin.store_only(author())
    first = make_indicator(
        "[ipv4-addr:value = '10.0.0.1']", markings=[GREEN], created_by_ref=AUTHOR
    )
    second = make_indicator(
        "[ipv4-addr:value = '10.0.0.2']", markings=[GREEN], created_by_ref=AUTHOR
    )
    ids = [standin.publish("create", first), standin.publish("create", second)]

    _, frames = read_frames(standin, "/stream/live", 5, heartbeats=False)

    sent = data_frames(frames)
    assert [(i, e, stix_of(d)["id"]) for i, e, d in sent] == [
        (ids[0], "create", GREEN),  # in the order the object names them
        (ids[0], "create", AUTHOR),
        (ids[0], "create", first["id"]),
        (ids[1], "create", second["id"]),  # this connection was sent them already
    ]
    dependency = sent[0][2]
    # sseMiddleware.js builds these itself: {data, message, origin, version}, no type/scope.
    assert sorted(dependency) == ["data", "message", "origin", "version"]
    assert dependency["origin"] == {"referer": "init-dependencies"}
    assert sent[2][2]["type"] == "create"  # the event itself comes from the platform's log


def test_a_heartbeat_can_fall_inside_a_group(clean_opencti_env: None) -> None:
    switches = StreamSwitches(heartbeat_in_groups=True)
    with OpenCTIStandin(heartbeat_interval=30, switches=switches) as standin:
        indicator = make_indicator("[ipv4-addr:value = '10.0.0.3']", markings=[GREEN])
        event_id = standin.publish("create", indicator)
        _, frames = read_frames(standin, "/stream/live", 4)
    assert [(i, e) for i, e, _ in frames] == [
        (None, "connected"),
        (event_id, "create"),
        (event_id, "heartbeat"),
        (event_id, "create"),
    ]


def test_the_kinder_switches_give_the_old_stream(clean_opencti_env: None) -> None:
    switches = StreamSwitches(platform_envelopes=False, dependencies=False)
    with OpenCTIStandin(heartbeat_interval=0.1, switches=switches) as standin:
        indicator = make_indicator("[ipv4-addr:value = '10.0.0.4']", markings=[GREEN])
        event_id = standin.publish("create", indicator, at_ms=5000)
        _, frames = read_frames(
            standin, "/stream/live?recover=1970-01-01T00:00:06Z", 2, heartbeats=False
        )
    ((frame_id, event, data),) = data_frames(frames)[:1]
    assert (frame_id, event) == (event_id, "create")
    assert (data["type"], data["scope"], data["origin"]) == (
        "create",
        "external",
        {"referer": "init-create"},
    )


def test_the_generic_stream_sends_no_dependencies(standin: OpenCTIStandin) -> None:
    indicator = make_indicator("[ipv4-addr:value = '10.0.0.5']", markings=[GREEN])
    event_id = standin.publish("create", indicator)
    _, frames = read_frames(standin, "/stream", 2, heartbeats=False)
    assert [(i, e) for i, e, _ in frames] == [(None, "connected"), (event_id, "create")]


def test_a_held_group_stops_the_connection_between_dependencies_and_event(
    standin: OpenCTIStandin,
) -> None:
    indicator = make_indicator("[ipv4-addr:value = '10.0.0.6']", markings=[GREEN])
    event_id = standin.publish("create", indicator)
    standin.hold_group(event_id)
    got: list[Frame] = []
    reader = threading.Thread(
        target=lambda: got.extend(read_frames(standin, "/stream/live", 3, heartbeats=False)[1])
    )
    reader.start()
    assert standin.wait_for_held(event_id)
    time.sleep(0.3)
    assert not got, "the event was sent while its group was held"
    standin.release_group(event_id)
    reader.join(10)
    dependency, event = (event_id, "create"), (event_id, "create")
    assert [(i, e) for i, e, _ in got] == [(None, "connected"), dependency, event]


# --- heartbeats ---------------------------------------------------------------------------------


def test_idle_heartbeats_carry_the_platform_clock(standin: OpenCTIStandin) -> None:
    event_id = standin.publish(
        "create", make_indicator("[ipv4-addr:value = '10.0.1.1']"), at_ms=1000
    )
    before = int(time.time() * 1000)
    _, frames = read_frames(standin, "/stream/live", 5)
    beats = [parse_stream_id(i or "") for i, e, _ in frames if e == "heartbeat"]
    assert frames[1][:2] == (event_id, "create")
    # First the position of the last read, then (the read came back empty) the clock.
    assert beats[0] == StreamId(1000, 0)
    assert all(beat is not None and beat.ms >= before and beat.seq == 0 for beat in beats[1:])


def test_the_kinder_switch_keeps_the_last_event_id(clean_opencti_env: None) -> None:
    switches = StreamSwitches(clock_heartbeats=False)
    with OpenCTIStandin(heartbeat_interval=0.1, switches=switches) as standin:
        event_id = standin.publish("create", make_indicator("[ipv4-addr:value = '10.0.1.2']"))
        _, frames = read_frames(standin, "/stream/live", 5)
    assert {i for i, e, _ in frames if e == "heartbeat"} == {event_id}


# --- recovery -----------------------------------------------------------------------------------


def test_recovery_ids_are_current_update_times_some_after_the_recovery_date(
    standin: OpenCTIStandin,
) -> None:
    early = make_indicator("[ipv4-addr:value = '10.0.2.1']")
    edited = make_indicator("[ipv4-addr:value = '10.0.2.2']")
    standin.publish("create", early, at_ms=1000)
    standin.publish("create", edited, at_ms=2000)
    standin.set_event_delay(0.3)  # a slow recovery: the platform re-reads each object as it goes
    frames: list[Frame] = []
    reader = threading.Thread(
        target=lambda: frames.extend(
            read_frames(standin, "/stream/live?recover=1970-01-01T00:00:03Z", 3, heartbeats=False)[
                1
            ]
        )
    )
    reader.start()
    time.sleep(0.15)  # the first object is sent; the second is not yet
    edit_id = standin.publish(
        "update", {**edited, "confidence": 10}, {"patch": [], "reverse_patch": []}
    )
    reader.join(10)
    sent = data_frames(frames)
    assert [(i, d["origin"]) for i, _, d in sent[:2]] == [
        ("1000-0", {"referer": "init-create"}),
        (str(StreamId(int(edit_id.split("-")[0]), 0)), {"referer": "init-create"}),
    ]
    assert stix_of(sent[1][2])["confidence"] == 10
    assert "type" not in sent[0][2]
    assert "scope" not in sent[0][2]


# --- trimming and the greeting ------------------------------------------------------------------


def test_a_trimmed_position_silently_starts_at_the_oldest_kept_event(
    clean_opencti_env: None,
) -> None:
    with OpenCTIStandin(heartbeat_interval=0.1, max_stream_length=3) as standin:
        ids = [
            standin.publish("create", make_indicator(f"[ipv4-addr:value = '10.0.3.{n}']"))
            for n in range(5)
        ]
        assert standin.event_ids == ids[2:]
        raw, frames = read_frames(standin, "/stream/live", 2, start=ids[0], heartbeats=False)
    greeting = json.loads(frames[0][2])
    assert (greeting["firstEventId"], greeting["lastEventId"]) == (ids[2], ids[4])
    assert greeting["streamSize"] == 3
    assert frames[1][:2] == (ids[2], "create")  # ids[1] is gone, without any error
    assert b"retry:" not in raw  # the platform never sends one


# --- collections --------------------------------------------------------------------------------


def test_a_collection_turns_updates_into_deletes_and_creates_as_its_filters_say(
    standin: OpenCTIStandin,
) -> None:
    standin.add_stream_collection(
        "c2-only",
        filters=labelled_c2,
    )
    shown = make_indicator("[ipv4-addr:value = '10.0.4.1']", labels=["c2"])
    hidden = make_indicator("[ipv4-addr:value = '10.0.4.2']", labels=["spam"])
    patch: dict[str, object] = {"patch": [], "reverse_patch": []}
    ids = [
        standin.publish("create", shown),
        standin.publish("create", hidden),
        standin.publish("update", {**shown, "labels": ["spam"]}, patch),  # leaves the filters
        standin.publish("update", {**hidden, "labels": ["c2"]}, patch),  # enters them
        standin.publish("update", {**hidden, "labels": ["c2"], "confidence": 1}, patch),
    ]
    _, frames = read_frames(standin, "/stream/c2-only", 5, heartbeats=False)
    sent = data_frames(frames)
    assert [(i, e, d["type"]) for i, e, d in sent] == [
        (ids[0], "create", "create"),
        (ids[2], "delete", "update"),  # key on the SSE event name
        (ids[3], "create", "update"),
        (ids[4], "update", "update"),
    ]
    assert internal_id(str(shown["id"]))  # the ids stay the platform's
