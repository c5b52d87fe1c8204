"""Which stream position is safe to save: groups of frames sharing one id, heartbeat ids from
the platform's clock, the recovery replay, trimmed streams (``core/stream/progress.py``,
``core/stream/frames.py``)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.stream import StreamId, StreamPosition, parse_stream_id
from elastic_connector.core.stream.frames import (
    Recovery,
    frame_referer,
    next_recovery,
    read_connected,
    recovery_of,
    trimmed_gap,
)
from elastic_connector.core.stream.progress import (
    just_before,
    observe,
    observe_all,
    resume_position,
    skip_past,
    start_progress,
    step_back,
)

MARGIN = 60_000


def position(frames: list[tuple[str, bool]], start: str = "0-0", margin: int = MARGIN) -> str:
    return str(resume_position(observe_all(start_progress(start), frames, margin)))


# --- examples -----------------------------------------------------------------------------------


def test_a_group_is_complete_only_once_a_greater_id_arrives() -> None:
    group = [("100-0", True), ("100-0", True)]  # a marking, then the indicator, same id
    assert position(group) == "0-0"
    assert position([*group, ("100-0", False)]) == "0-0"  # a heartbeat inside the group
    assert position([*group, ("101-0", True)]) == "100-0"


def test_a_heartbeat_position_is_stepped_back_by_the_margin() -> None:
    frames = [("100000-0", True), ("500000-0", False)]
    assert position(frames) == "439999-0"
    # Never below a complete data position, never at the heartbeat's own id.
    assert position([("100000-0", True), ("120000-0", False)]) == "100000-0"
    assert position([("5-0", False)], margin=0) == "4-0"


def test_a_data_frame_with_a_heartbeats_id_makes_that_id_a_group_again() -> None:
    # An event appended in the very millisecond of an idle read gets the heartbeat's id.
    frames = [("100000-0", False), ("100000-0", True)]
    assert position(frames, margin=10) == "99989-0"
    assert position([*frames, ("100001-0", False)], margin=10) == "100000-0"


def test_replayed_frames_below_the_last_id_change_nothing() -> None:
    progress = observe_all(start_progress("0-0"), [("5-0", True), ("9-0", True)], MARGIN)
    again = observe(progress, "5-0", is_data=True, margin_ms=MARGIN)
    assert again == progress
    assert str(resume_position(again)) == "5-0"


def test_the_position_never_goes_below_the_start() -> None:
    # The platform's first heartbeat carries the requested start itself.
    assert position([("900000-0", False), ("900001-0", True)], start="900000-0") == "900000-0"
    assert position([("1-0", True), ("2-0", True)], start="50-0") == "50-0"


def test_skip_past_counts_a_frame_complete() -> None:
    progress = observe_all(start_progress("0-0"), [("7-0", True)], MARGIN)
    assert str(resume_position(skip_past(progress, "7-0"))) == "7-0"


def test_step_back_and_just_before() -> None:
    assert step_back(StreamId(100_000, 3), 60_000) == StreamId(39_999, 0)
    assert step_back(StreamId(10, 0), 60_000) == StreamId(0, 0)
    assert just_before(StreamId(10, 0)) == StreamId(9, 2**64 - 1)
    assert just_before(StreamId(0, 0)) == StreamId(0, 0)


# --- the safety property --------------------------------------------------------------------


@st.composite
def platform_streams(draw: st.DrawFn) -> tuple[list[tuple[str, bool]], list[tuple[int, str]], int]:
    """One connection as a live stream serves it: groups of data frames sharing one id (ids
    grow), heartbeats inside groups carrying the last id sent, and idle reads whose clock id
    goes on as the read position (``redis-stream.ts``).

    Events appended right after an idle read with an id up to the margin below it (clock
    skew) are never sent on this connection; they are returned apart, with the index of the
    heartbeat after which they were appended: a reconnect from a heartbeat-derived position
    must still deliver them (once a later heartbeat is past the margin, or an event with a
    greater id is saved, no position can: the platform itself read past them)."""
    margin = draw(st.sampled_from([0, 5, 1_000]))
    frames: list[tuple[StreamId, bool]] = []
    skipped: list[tuple[int, str]] = []
    last = StreamId(0, 0)
    for _ in range(draw(st.integers(1, 25))):
        if draw(st.booleans()):
            group = StreamId(last.ms + draw(st.integers(0, 50)), draw(st.integers(0, 2)))
            if group <= last:
                group = StreamId(last.ms, last.seq + 1)
            size = draw(st.integers(1, 3))
            beat_at = draw(st.integers(0, size))  # a heartbeat inside the group, or none
            for index in range(size):
                if index == beat_at and index:
                    frames.append((group, False))
                frames.append((group, True))
            last = group
        else:
            beat = max(StreamId(last.ms + draw(st.integers(0, 200)), 0), last)
            frames.append((beat, False))
            if draw(st.booleans()):
                ms = draw(st.integers(max(last.ms, beat.ms - margin), beat.ms))
                late = StreamId(ms, draw(st.integers(0, 3)))
                if last < late <= beat:
                    skipped.append((len(frames) - 1, str(late)))
            last = beat
    return [(str(i), data) for i, data in frames], skipped, margin


@given(platform_streams())
def test_resuming_after_the_position_never_skips_an_event_still_to_come(
    stream: tuple[list[tuple[str, bool]], list[tuple[int, str]], int],
) -> None:
    frames, skipped, margin = stream
    progress = start_progress("0-0")
    previous = StreamId(0, 0)
    latest_beat = -1
    greatest_data = StreamId(0, 0)
    for index, (frame_id, is_data) in enumerate(frames):
        progress = observe(progress, frame_id, is_data=is_data, margin_ms=margin)
        parsed = parse_stream_id(frame_id)
        assert parsed is not None
        if is_data:
            greatest_data = max(greatest_data, parsed)
        else:
            latest_beat = index
        resume = resume_position(progress)
        to_come = [parse_stream_id(f) for f, data in frames[index + 1 :] if data]
        to_come += [
            late
            for beat, f in skipped
            if beat >= latest_beat and (late := parse_stream_id(f)) and late > greatest_data
        ]
        assert all(later is not None and later > resume for later in to_come), (index, resume)
        assert resume >= previous, "the position moved backwards"
        previous = resume


@given(platform_streams())
def test_a_group_followed_by_a_greater_id_is_saved(
    stream: tuple[list[tuple[str, bool]], list[tuple[int, str]], int],
) -> None:
    frames, _, margin = stream
    progress = observe_all(start_progress("0-0"), frames, margin)
    ids = [i for i in (parse_stream_id(f) for f, _ in frames) if i is not None]
    settled = [i for i in (parse_stream_id(f) for f, d in frames if d) if i and i < max(ids)]
    if settled:
        assert resume_position(progress) >= max(settled)


# --- recovery -----------------------------------------------------------------------------------


def _frame(referer: str | None, kind: str | None = None) -> bytes:
    body: dict[str, object] = {"data": {"type": "indicator", "id": "indicator--1"}, "version": "4"}
    if referer is not None:
        body["origin"] = {"referer": referer}
    if kind is not None:
        body["type"] = kind
    return json.dumps(body).encode()


def test_recovery_is_asked_only_on_a_live_stream_with_a_later_date() -> None:
    recovering = StreamPosition("0-0", "2024-01-01T00:00:00Z")
    assert recovery_of("live", recovering) == Recovery(StreamId(1704067200000, 0), StreamId(0, 0))
    assert recovery_of(None, recovering) is None
    assert recovery_of("live", StreamPosition("1704067200000-5", "2024-01-01T00:00:00Z")) is None
    assert recovery_of("live", StreamPosition("0-0", None)) is None


def test_recovery_lasts_until_a_live_event_or_a_heartbeat_above_everything_seen() -> None:
    recovery = Recovery(StreamId(1000, 0), StreamId(0, 0))
    # Replayed objects, some edited after the recovery date, and their dependencies.
    for frame_id, referer in [("500-0", "init-create"), ("2000-0", "init-dependencies")]:
        step = next_recovery(recovery, frame_id, "create", _frame(referer))
        assert step is not None
        recovery = step
    recovery_after_late_edit = next_recovery(recovery, "2000-0", "create", _frame("init-create"))
    assert recovery_after_late_edit == Recovery(StreamId(1000, 0), StreamId(2000, 0))
    # Heartbeats carry the last id sent: still the replay.
    assert next_recovery(recovery, "2000-0", "heartbeat", b'"x"') is not None
    assert next_recovery(recovery, "1500-0", "heartbeat", b'"x"') is not None
    # The live part: an idle read's clock id, or an event of the platform's log.
    assert next_recovery(recovery, "2001-0", "heartbeat", b'"x"') is None
    live = _frame("https://opencti.example/dashboard", "update")
    assert next_recovery(recovery, "1001-0", "update", live) is None
    assert next_recovery(recovery, "1000-0", "create", live) is not None  # not after the date


def test_frame_referer_and_connected_never_raise() -> None:
    assert frame_referer(_frame("init-create")) == "init-create"
    assert frame_referer(b"not json") is None
    assert frame_referer(b'{"origin": 5}') is None
    info = read_connected(b'{"lastEventId":"9-0","firstEventId":"3-0","streamSize":7}')
    assert info is not None
    assert (info.first_event_id, info.last_event_id, info.stream_size) == ("3-0", "9-0", 7)
    assert read_connected(b"[") is None


# --- trimmed streams ----------------------------------------------------------------------------


def test_a_start_older_than_the_oldest_kept_event_is_a_gap() -> None:
    assert trimmed_gap("100-0", "200-0")
    assert not trimmed_gap("200-0", "200-0")
    assert not trimmed_gap("199-18446744073709551615", "200-0")  # right before: nothing lost
    assert not trimmed_gap("0-0", "200-0")  # "from whatever is there"
    assert not trimmed_gap("100-0", None)
    assert not trimmed_gap("garbage", "200-0")


@given(st.integers(0, 10**6), st.integers(0, 3), st.integers(1, 10**6), st.integers(0, 3))
def test_a_gap_exactly_when_ids_between_start_and_first_may_be_lost(
    start_ms: int, start_seq: int, first_ms: int, first_seq: int
) -> None:
    start, first = StreamId(start_ms, start_seq), StreamId(first_ms, first_seq)
    gap = trimmed_gap(str(start), str(first))
    assert gap == (start != StreamId(0, 0) and start < just_before(first))
