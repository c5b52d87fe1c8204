"""The progress the daemon reports (``shell/progress.py``, ``shell/logs.py``'s ``RepeatLimit``):
a line every interval while there is work and none while idle, the end of the replay with its
totals, the catch-up towards the platform's newest event, the phase gauge, and warnings held to
a budget with a "(N more like this)" summary. Clocks and the reader's status are fakes."""

from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import msgspec
import pytest

from elastic_connector.core.actions import Action, Delete, Skip, Upsert
from elastic_connector.core.config import Mode
from elastic_connector.core.events import PlannerState, PlanSettings
from elastic_connector.core.monitoring.repeat_limit import RepeatLimits
from elastic_connector.core.stream import StreamPosition
from elastic_connector.core.stream.frames import ConnectedInfo
from elastic_connector.demo.opencti_data import Json, make_indicator
from elastic_connector.shell.connector_state import ConnectorState
from elastic_connector.shell.logs import RepeatLimit, TextFormatter
from elastic_connector.shell.metrics import Metrics
from elastic_connector.shell.pipeline import Pipeline
from elastic_connector.shell.progress import ProgressTracker
from elastic_connector.shell.stream import ReaderStatus, StreamMessage
from tests.e2e.harness import doc_id, parse_metrics
from tests.reliability.pipeline_run import MemoryStore
from tests.support.writers import InstantWriter

RECOVERY_DATE: Final = "2025-01-01T00:00:00+00:00"
UNTIL_MS: Final = 1_735_689_600_000
INTERVAL: Final = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Reader:
    """The stream reader's status, as the test sets it."""

    def __init__(self, **changes: object) -> None:
        self.status = ReaderStatus(
            connected=True,
            last_event_id="0-0",
            recover_until=None,
            resume_from="0-0",
            recovering=False,
            gaps=0,
            last_gap=None,
            connections=1,
            consecutive_failures=0,
            last_error=None,
        )
        self.set(**changes)

    def set(self, **changes: object) -> None:
        self.status = msgspec.structs.replace(self.status, **changes)

    def __call__(self) -> ReaderStatus:
        return self.status


class Rig:
    def __init__(self, start: str, reader: Reader, caplog: pytest.LogCaptureFixture) -> None:
        self.clock = Clock()
        self.wall = Clock()
        self.wall.now = UNTIL_MS / 1000 + 3600
        self.metrics = Metrics()
        self.reader = reader
        self.caplog = caplog
        self.tracker = ProgressTracker(
            interval=INTERVAL,
            metrics=self.metrics,
            start=StreamPosition(start, reader.status.recover_until),
            monotonic=self.clock,
            wall=self.wall,
        )
        self.tracker.watch(reader)

    def lines(self) -> list[str]:
        return [r.getMessage() for r in self.caplog.records if r.name.endswith(".progress")]

    def later(self, seconds: float) -> list[str]:
        """Let ``seconds`` pass, tick, and return the lines that tick logged."""
        before = len(self.lines())
        self.clock.now += seconds
        self.wall.now += seconds
        self.tracker.tick()
        return self.lines()[before:]

    def phase(self) -> str:
        samples = parse_metrics(self.metrics.exposition().decode())
        (current,) = [
            name
            for name, value in samples.items()
            if name.startswith("elastic_connector_phase") and value == 1
        ]
        return current.split('"')[1]


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="elastic_connector")


def frames(ids: Sequence[str], *, recovery: bool, event: str = "create") -> list[StreamMessage]:
    return [StreamMessage(frame_id, event, b"{}", recovery) for frame_id in ids]


def withheld(*ids: str, code: str = "expired") -> list[Action]:
    return [Delete("ti", object_id, code, "why") for object_id in ids]


def written(*ids: str) -> list[Action]:
    return [Upsert("ti", object_id, b"{}") for object_id in ids]


# --- the replay -------------------------------------------------------------------------------


def test_a_replay_reports_progress_then_its_end_with_the_totals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = Reader(recovering=True, recover_until=RECOVERY_DATE)
    rig = Rig("0-0", reader, caplog)
    assert rig.later(1) == []
    assert rig.phase() == "replay"

    first = UNTIL_MS - 100_000  # the oldest object's update time
    bad = f"{first + 10_000}-0"
    rig.tracker.batch_done(
        frames([f"{first}-0", f"{first + 25_000}-0", f"{first + 50_000}-0", bad], recovery=True),
        [*written("w1"), *withheld("x1", "x2"), Skip(bad, "", "undecodable", "bad")],
        other=0,
    )
    rig.tracker.batch_done(
        frames([f"{first + 50_000}-0"], recovery=True, event="heartbeat"), [], other=0
    )
    (line,) = rig.later(INTERVAL)
    assert line.startswith(
        "replay: 4 events, 1 written, 0 deleted, 2 withheld [expired 2 e.g. x1, x2], 1 skipped "
        f"[undecodable 1 e.g. {bad}], 0 other; 0.1 events/s over the last 31s; replayed objects "
        "updated up to 2024-12-31T23:59:10Z of 2025-01-01T00:00:00Z, 50% done by update time, "
        "ETA "
    )
    # Half the span in 30 s (since the first tick that saw the replay): about 30 s more.
    assert line.endswith("ETA 30s")
    figures = caplog.records[-1].json_fields["progress"]  # type: ignore[attr-defined]  # set by json_only
    assert figures["share_done"] == 0.5
    assert figures["withheld"] == {"expired": 2}
    samples = parse_metrics(rig.metrics.exposition().decode())
    assert samples["elastic_connector_progress_ratio"] == 0.5

    # The replay writes on: counted, examples only from the new interval.
    rig.tracker.batch_done(
        frames([f"{first + 75_000}-0", f"{first + 80_000}-0"], recovery=True),
        withheld("x3", code="revoked") + written("w2"),
        other=0,
    )
    (line,) = rig.later(INTERVAL)
    assert "3 withheld [expired 2; revoked 1 e.g. x3]" in line

    # The replay's last frames, then the first live one: every replayed frame is written.
    rig.tracker.batch_done(frames([f"{first + 90_000}-0"], recovery=True), [], other=1)
    before = len(rig.lines())
    reader.set(recovering=False)
    rig.tracker.batch_done(frames([f"{UNTIL_MS + 1}-0"], recovery=False, event="heartbeat"), [], 0)
    (done,) = rig.lines()[before:]
    assert done == (
        "knowledge base replay done in 1m00s: 7 events, 2 written, 0 deleted, 3 withheld "
        "[expired 2; revoked 1], 1 skipped [undecodable 1], 1 other (0.1 events/s); reading "
        "live events"
    )
    assert rig.later(1) == []  # the replay's last interval was said by its end
    assert rig.phase() == "live"
    assert rig.later(INTERVAL) == []


def test_a_replay_with_frames_above_the_recovery_date_is_not_done_early(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An object edited while the replay runs is sent with its new update time."""
    reader = Reader(recovering=True, recover_until=RECOVERY_DATE)
    rig = Rig("0-0", reader, caplog)
    start = UNTIL_MS - 1000
    rig.tracker.batch_done(
        frames([f"{start}-0", f"{UNTIL_MS + 60_000}-0"], recovery=True), written("a", "b"), 0
    )
    assert rig.tracker.health()["share_done"] == 0.0


# --- live and idle ----------------------------------------------------------------------------


def test_quiet_when_idle_one_line_per_interval_with_work(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig("1000-0", Reader(), caplog)
    assert rig.later(INTERVAL) == []  # nothing read: no line
    assert rig.phase() == "live"
    rig.tracker.batch_done(frames(["2000-0", "3000-0"], recovery=False), written("a", "b"), 0)
    assert rig.later(1) == []  # not due yet
    (line,) = rig.later(INTERVAL)
    assert line.startswith("live: 2 events, 2 written,")
    assert "at 3000-0, lag " in line
    heartbeats = frames(["4000-0"], recovery=False, event="heartbeat")
    rig.tracker.batch_done(heartbeats, [], 0)
    assert rig.later(INTERVAL) == []  # heartbeats only: idle
    assert rig.later(10 * INTERVAL) == []


def test_a_final_line_when_events_were_written_since_the_last_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig("1000-0", Reader(), caplog)
    rig.tracker.final()
    assert rig.lines() == []
    rig.tracker.batch_done(frames(["2000-0"], recovery=False), written("a"), 0)
    rig.tracker.final()
    assert rig.lines()[0].startswith("live: 1 events, 1 written")


# --- a catch-up -------------------------------------------------------------------------------


def test_a_catch_up_goes_towards_the_newest_event_at_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    info = ConnectedInfo(first_event_id="1000-0", last_event_id="5000-0", stream_size=400)
    rig = Rig("1000-0", Reader(stream_info=info), caplog)
    assert rig.later(1) == []
    assert rig.phase() == "catch_up"
    rig.tracker.batch_done(frames(["3000-0"], recovery=False), written("a"), 0)
    (line,) = rig.later(INTERVAL)
    assert "at 3000-0, catching up to 5000-0, 50% done, about 200 stream events left" in line
    assert line.endswith("ETA 30s")
    rig.tracker.batch_done(frames(["5000-0"], recovery=False), written("b"), 0)
    (done,) = rig.later(1)
    assert done.startswith("caught up with the stream in 31s: 2 events, 2 written")
    assert rig.phase() == "live"


def test_a_short_catch_up_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    info = ConnectedInfo(first_event_id="1000-0", last_event_id="5000-0", stream_size=400)
    rig = Rig("4000-0", Reader(stream_info=info), caplog)
    rig.later(1)
    rig.tracker.batch_done(frames(["5000-0"], recovery=False, event="heartbeat"), [], 0)
    assert rig.later(1) == []
    assert rig.phase() == "live"


def test_starting_until_the_stream_is_read(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig("0-0", Reader(connections=0, connected=False), caplog)
    rig.later(1)
    assert rig.phase() == "starting"
    assert rig.tracker.health()["phase"] == "starting"


# --- warnings held to a budget ----------------------------------------------------------------


def test_repeated_warnings_are_summed_up() -> None:
    clock = Clock()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    repeats = RepeatLimit(RepeatLimits(2, 60.0), clock)
    handler.addFilter(repeats)
    logger = logging.getLogger("elastic_connector.test_repeats")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        for number in range(5):
            logger.warning("rejected document %s", f"doc-{number}")
        logger.warning("another kind")
        logger.critical("never held back %d", 1)
        logger.critical("never held back %d", 2)
        logger.critical("never held back %d", 3)
        logger.info("info %d", 1)
        logger.info("info %d", 2)
        logger.info("info %d", 3)
        repeats.flush()
        clock.now += 61
        repeats.flush()
        repeats.flush()
    finally:
        logger.handlers[:] = []
    messages = [line.split(": ", 1)[1] for line in out.getvalue().splitlines()]
    assert messages == [
        "rejected document doc-0",
        "rejected document doc-1",
        "another kind",
        "never held back 1",
        "never held back 2",
        "never held back 3",
        "info 1",
        "info 2",
        "info 3",
        "(3 more like this in the last 61 s; the last: rejected document doc-4)",
    ]
    assert "WARNING" in out.getvalue().splitlines()[-1]


# --- through the pipeline ------------------------------------------------------------------------


def frame(frame_id: str, stix: Json, *, recovery: bool) -> StreamMessage:
    data = {"data": stix, "origin": {"referer": "init-create"}, "version": "4"}
    return StreamMessage(frame_id, "create", msgspec.json.encode(data), recovery)


def test_the_replay_totals_are_exactly_the_replays_in_one_batch_with_live_frames(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The pipeline writes the replay's frames and the live ones apart, and tells the tracker
    what each came to: the end-of-replay line counts the replay alone; a withheld indicator is
    a debug line, not an info one."""
    caplog.set_level(logging.DEBUG, logger="elastic_connector")
    base = UNTIL_MS - 10_000
    expired = make_indicator("[ipv4-addr:value = '10.0.0.1']", valid_until="2020-01-01T00:00:00Z")
    kept = make_indicator("[ipv4-addr:value = '10.0.0.2']")
    author: Json = {"type": "identity", "id": "identity--1", "name": "CERT", "spec_version": "2.1"}
    live = make_indicator("[ipv4-addr:value = '10.0.0.3']")
    inbox: queue.Queue[StreamMessage] = queue.Queue()
    for message in (
        frame(f"{base}-0", author, recovery=True),
        frame(f"{base + 1}-0", expired, recovery=True),
        frame(f"{base + 2}-0", kept, recovery=True),
        frame(f"{UNTIL_MS + 5}-0", live, recovery=False),
    ):
        inbox.put(message)
    stop = threading.Event()
    metrics = Metrics()
    start = StreamPosition("0-0", RECOVERY_DATE)
    reader = Reader(recovering=True, recover_until=RECOVERY_DATE)
    tracker = ProgressTracker(interval=INTERVAL, metrics=metrics, start=start)
    tracker.watch(reader)
    pipeline = Pipeline(
        inbox=inbox,
        settings=PlanSettings(mode=Mode.ECS_NO_SIGNALS, index="ti"),
        planner_state=PlannerState(),
        writer=InstantWriter(stop),
        state=ConnectorState(MemoryStore()),
        metrics=metrics,
        position=lambda: StreamPosition(f"{UNTIL_MS + 5}-0", RECOVERY_DATE),
        on_reset=lambda: start,
        max_batch=100,
        flush_interval=0.2,
        retry_delay=0.1,
        clock=lambda: datetime(2025, 1, 1, tzinfo=UTC),
        stop=stop,
        start=start,
        tracker=tracker,
    )
    pipeline.start()
    pipeline.drain_and_stop(timeout=10)

    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    (done,) = [m for m in messages if m.startswith("knowledge base replay done")]
    assert ": 3 events, 1 written, 0 deleted, 1 withheld [expired 1], 0 skipped, 1 other" in done
    assert tracker.health()["events"] == 4
    assert tracker.health()["written"] == 2
    assert not [m for m in messages if "not exported" in m]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert [m for m in debug if m.startswith("not exported:")] == [
        f"not exported: {doc_id(expired)} (valid_until 2020-01-01T00:00:00+00:00 has passed)"
    ]


def test_at_debug_the_lines_held_back_are_debug_lines() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    repeats = RepeatLimit(RepeatLimits(1, 60.0), Clock())
    repeats.keep_as_debug = True
    handler.addFilter(repeats)
    logger = logging.getLogger("elastic_connector.test_repeats_debug")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        logger.warning("refused %s", "a")
        logger.warning("refused %s", "b")
    finally:
        logger.handlers[:] = []
    lines = out.getvalue().splitlines()
    assert [line.split(" ", 2)[1:] for line in lines] == [
        ["WARNING", "elastic_connector.test_repeats_debug: refused a"],
        ["DEBUG", "elastic_connector.test_repeats_debug: refused b"],
    ]
