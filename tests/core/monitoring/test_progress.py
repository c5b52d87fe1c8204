"""How far a sync has got (``core/monitoring/progress.py``): what the events came to, how much
of a replay or a catch-up is done, the ETA, and the lines that say so."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.actions import Action, Delete, Skip, Upsert
from elastic_connector.core.monitoring.progress import (
    CatchUp,
    Counts,
    Phase,
    ReplaySpan,
    Report,
    add_examples,
    catch_up_share,
    caught_up_line,
    count_actions,
    counts_text,
    eta_seconds,
    format_duration,
    is_behind,
    lag_seconds,
    progress_line,
    replay_done_line,
    replay_observe,
    replay_share,
    report_fields,
    since,
    stream_events_left,
)
from elastic_connector.core.stream import StreamId
from elastic_connector.core.stream.frames import ConnectedInfo

DELETE_CODES = ("deleted", "merged", "revoked", "expired", "tlp", "unknown_marking")
ids = st.text("abcdef0123456789", min_size=1, max_size=6)
actions = st.one_of(
    st.builds(lambda i: Upsert("ti", i, b"{}"), ids),
    st.builds(lambda i, c: Delete("ti", i, c, "why"), ids, st.sampled_from(DELETE_CODES)),
    st.builds(
        lambda e, o, c: Skip(e, o, c, "why"),
        ids,
        st.one_of(st.just(""), ids),
        st.sampled_from(("undecodable", "internal_error")),
    ),
)
batches = st.lists(st.tuples(st.lists(actions, max_size=8), st.integers(0, 5)), max_size=6)


def outcomes(counts: Counts) -> int:
    return counts.written + counts.deleted + counts.withheld_total + counts.skipped_total


def tally(batches_: list[tuple[list[Action], int]]) -> Counts:
    counts = Counts()
    for batch, other in batches_:
        counts = count_actions(counts, batch, events=len(batch) + other, other=other)
    return counts


# --- counts ----------------------------------------------------------------------------------


@given(batches)
def test_every_action_is_counted_once_under_one_outcome(
    batches_: list[tuple[list[Action], int]],
) -> None:
    counts = tally(batches_)
    every = [action for batch, _ in batches_ for action in batch]
    assert outcomes(counts) == len(every)
    assert counts.written == sum(isinstance(a, Upsert) for a in every)
    assert counts.events == outcomes(counts) + counts.other
    for code, number in counts.withheld.items():
        assert code not in ("deleted", "merged")
        assert number == sum(isinstance(a, Delete) and a.code == code for a in every)


@given(batches, batches)
def test_since_gives_back_what_was_counted_after(
    before: list[tuple[list[Action], int]], after: list[tuple[list[Action], int]]
) -> None:
    earlier = tally(before)
    later = earlier
    for batch, other in after:
        later = count_actions(later, batch, events=len(batch) + other, other=other)
    assert since(later, earlier) == tally(after)
    assert since(later, later) == Counts()


@given(st.lists(st.lists(actions, max_size=10), max_size=5), st.integers(1, 4))
def test_examples_are_the_first_few_ids_of_each_reason(
    runs: list[list[Action]], limit: int
) -> None:
    examples: dict[str, tuple[str, ...]] = {}
    for run in runs:
        examples = dict(add_examples(examples, run, limit))
    every = [action for run in runs for action in run]
    for code, named in examples.items():
        assert code not in ("deleted", "merged")
        assert 1 <= len(named) <= limit
        assert len(set(named)) == len(named)
        expected: list[str] = []
        for action in every:
            if isinstance(action, Delete) and action.code == code:
                example = action.id
            elif isinstance(action, Skip) and action.code == code:
                example = action.object_id or action.event_id
            else:
                continue
            if example not in expected:
                expected.append(example)
        assert list(named) == expected[:limit]


# --- the replay ------------------------------------------------------------------------------

UNTIL = 2_000_000


@given(st.lists(st.integers(0, UNTIL + 500_000), max_size=30))
def test_the_replay_share_never_goes_back_and_stays_between_0_and_1(frames: list[int]) -> None:
    span = ReplaySpan(UNTIL)
    last = 0.0
    for ms in frames:
        span = replay_observe(span, f"{ms}-0")
        share = replay_share(span)
        if share is None:
            continue
        assert 0.0 <= share <= 1.0
        assert share >= last - 1e-12
        last = share


@given(st.lists(st.integers(0, UNTIL), min_size=2, max_size=30, unique=True))
def test_a_replay_in_update_order_is_done_when_it_reaches_the_recovery_date(
    frames: list[int],
) -> None:
    span = ReplaySpan(max(frames))
    for ms in sorted(frames):
        span = replay_observe(span, f"{ms}-0")
    assert replay_share(span) == 1.0


def test_the_replay_share_is_a_share_of_the_update_time_span() -> None:
    span = ReplaySpan(1_000)
    for frame in ("200-0", "400-0", "600-0"):
        span = replay_observe(span, frame)
    assert replay_share(span) == 0.5  # 200 -> 600 of 200 -> 1000
    # An object edited while the replay runs carries a later time: it moves nothing.
    assert replay_share(replay_observe(span, "5000-0")) == 0.5
    assert replay_observe(span, "not an id") is span
    assert replay_share(ReplaySpan(None, 1, 2)) is None
    assert replay_share(ReplaySpan(1_000)) is None
    assert replay_share(ReplaySpan(1_000, 1_000, 1_000)) is None  # no span to measure


# --- the catch-up ------------------------------------------------------------------------------

stream_ids = st.builds(StreamId, st.integers(0, 10**6), st.integers(0, 3))


@given(stream_ids, stream_ids, stream_ids)
def test_the_catch_up_share_is_between_0_and_1_and_done_at_the_target(
    start: StreamId, target: StreamId, reached: StreamId
) -> None:
    share = catch_up_share(CatchUp(start, target, reached))
    if share is not None:
        assert 0.0 <= share <= 1.0
    if reached >= target:
        assert share == 1.0
    assert is_behind(reached, target) is (reached < target)
    assert is_behind(None, target)
    assert not is_behind(reached, None)


@given(stream_ids, stream_ids, st.integers(0, 10**6), st.lists(stream_ids, max_size=10))
def test_stream_events_left_shrink_as_the_position_moves_on(
    first: StreamId, last: StreamId, size: int, positions: list[StreamId]
) -> None:
    info = ConnectedInfo(str(first), str(last), size)
    lefts = [stream_events_left(info, reached) for reached in sorted(positions)]
    for left in lefts:
        assert left is not None
        assert 0 <= left <= size
    assert lefts == sorted(lefts, key=lambda n: -(n or 0))
    assert stream_events_left(info, last) == 0


def test_stream_events_left_are_estimated_from_the_stream_size() -> None:
    info = ConnectedInfo("1000-0", "2000-0", 500)
    assert stream_events_left(info, StreamId(1500, 0)) == 250
    assert stream_events_left(info, StreamId(10, 0)) == 500  # trimmed: everything kept is left
    assert stream_events_left(ConnectedInfo("1000-0", None, 500), StreamId(1500, 0)) is None
    assert stream_events_left(ConnectedInfo("1000-0", "2000-0", None), StreamId(1, 0)) is None


# --- time --------------------------------------------------------------------------------------


@given(st.floats(0.001, 1.0), st.floats(0.001, 1.0), st.floats(0.1, 10**6))
def test_the_eta_scales_the_time_taken_to_the_share_left(
    share: float, other: float, elapsed: float
) -> None:
    eta = eta_seconds(share, elapsed)
    assert eta is not None
    assert eta >= 0
    assert abs((elapsed + eta) * share - elapsed) <= 1e-6 * max(1.0, elapsed)
    more = eta_seconds(max(share, other), elapsed)
    assert more is not None
    assert more <= eta + 1e-9


def test_no_eta_without_a_share() -> None:
    assert eta_seconds(None, 10) is None
    assert eta_seconds(0.0, 10) is None
    assert eta_seconds(0.5, 0) is None
    assert eta_seconds(1.0, 10) == 0.0


def test_lag_is_the_age_of_the_last_event() -> None:
    assert lag_seconds("1000-0", 3500) == 2.5
    assert lag_seconds("5000-0", 3500) == 0.0  # clocks differ: never negative
    assert lag_seconds(None, 3500) is None
    assert lag_seconds("0-0", 3500) is None
    assert lag_seconds("nope", 3500) is None


def test_durations_read_like_a_clock() -> None:
    assert [format_duration(s) for s in (0, 42.4, 60, 790, 3600, 7500, 90_000)] == [
        "0s",
        "42s",
        "1m00s",
        "13m10s",
        "1h00m",
        "2h05m",
        "1d01h",
    ]


# --- the lines ----------------------------------------------------------------------------------

REPLAY_COUNTS = Counts(
    events=48_210,
    written=2_113,
    withheld={"expired": 41_002, "revoked": 3_100, "tlp": 1_798},
    other=197,
)


def test_a_replay_progress_line() -> None:
    report = Report(
        phase=Phase.REPLAY,
        counts=REPLAY_COUNTS,
        interval_events=16_050,
        interval_seconds=30,
        examples={"expired": ("5f3c", "9ab1"), "revoked": ("77aa",)},
        share=0.38,
        eta=790,
        replay=ReplaySpan(1_735_689_600_000, 1_600_000_000_000, 1_730_535_240_000),
    )
    assert progress_line(report) == (
        "replay: 48,210 events, 2,113 written, 0 deleted, 45,900 withheld [expired 41,002 e.g. "
        "5f3c, 9ab1; revoked 3,100 e.g. 77aa; tlp 1,798], 0 skipped, 197 other; 535.0 events/s "
        "over the last 30s; replayed objects updated up to 2024-11-02T08:14:00Z of "
        "2025-01-01T00:00:00Z, 38% done by update time, ETA 13m10s"
    )


def test_a_catch_up_and_a_live_progress_line() -> None:
    counts = Counts(events=12, written=10, skipped={"undecodable": 2})
    catch_up = Report(
        phase=Phase.CATCH_UP,
        counts=counts,
        interval_events=12,
        interval_seconds=30,
        share=0.005,
        eta=6000,
        position="1718000000000-0",
        target="1718003600000-0",
        events_left=9_000,
        lag=3600,
    )
    assert progress_line(catch_up).endswith(
        "at 1718000000000-0, catching up to 1718003600000-0, <1% done, about "
        "9,000 stream events left, lag 1h00m, ETA 1h40m"
    )
    assert "2 skipped [undecodable 2], 0 other" in progress_line(catch_up)
    live = Report(phase=Phase.LIVE, counts=counts, position="1718000000000-0", lag=1.2)
    assert progress_line(live).endswith("0.0 events/s over the last 0s; at 1718000000000-0, lag 1s")


def test_the_end_of_replay_line_has_the_totals_and_the_duration() -> None:
    assert replay_done_line(REPLAY_COUNTS, 252) == (
        "knowledge base replay done in 4m12s: 48,210 events, 2,113 written, 0 deleted, 45,900 "
        "withheld [expired 41,002; revoked 3,100; tlp 1,798], 0 skipped, 197 other "
        "(191.3 events/s); reading live events"
    )
    assert counts_text(Counts()) == (
        "0 events, 0 written, 0 deleted, 0 withheld, 0 skipped, 0 other"
    )


def test_the_report_as_data_has_the_same_figures() -> None:
    report = Report(
        phase=Phase.REPLAY,
        counts=REPLAY_COUNTS,
        interval_events=300,
        interval_seconds=30,
        examples={"expired": ("5f3c",)},
        share=0.38123,
        eta=790.4,
        replay=ReplaySpan(1_735_689_600_000, 1_600_000_000_000, 1_730_535_240_000),
    )
    assert report_fields(report) == {
        "phase": "replay",
        "events": 48_210,
        "written": 2_113,
        "deleted": 0,
        "withheld": {"expired": 41_002, "revoked": 3_100, "tlp": 1_798},
        "skipped": {},
        "other": 197,
        "rate_per_second": 10.0,
        "share_done": 0.3812,
        "eta_seconds": 790,
        "position": None,
        "lag_seconds": None,
        "examples": {"expired": ["5f3c"]},
        "replayed_up_to": "2024-11-02T08:14:00Z",
        "recovery_date": "2025-01-01T00:00:00Z",
    }


def test_lines_and_data_say_what_is_not_known_yet() -> None:
    started = Report(phase=Phase.REPLAY, counts=Counts(), replay=ReplaySpan(None))
    assert progress_line(started).endswith("; replay started, nothing replayed yet")
    reached = Report(phase=Phase.REPLAY, counts=Counts(), replay=ReplaySpan(None, 0, 1000))
    assert progress_line(reached).endswith("replayed objects updated up to 1970-01-01T00:00:01Z")
    assert report_fields(reached)["recovery_date"] is None
    catching_up = Report(phase=Phase.CATCH_UP, counts=Counts(), target="5-0", events_left=None)
    assert progress_line(catching_up).endswith("; at -, catching up to 5-0")
    assert report_fields(catching_up)["catching_up_to"] == "5-0"
    assert report_fields(catching_up)["stream_events_left"] is None
    assert caught_up_line(Counts(events=30, written=30), 15) == (
        "caught up with the stream in 15s: 30 events, 30 written, 0 deleted, 0 withheld, "
        "0 skipped, 0 other (2.0 events/s)"
    )
