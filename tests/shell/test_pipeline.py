"""The write path's promises, one at a time: a position is committed only after its batch was
acknowledged, and in stream order; never the id of a group of frames that may still be arriving
(the platform sends an event's dependencies under its id), nor a heartbeat's id without the
safety margin, nor anything during the recovery replay; one write at a time; while a write
waits, nothing more is taken from the reader's queue (so the stream is back-pressured, not
buffered); a stop waits for the write in flight, then writes and commits what is queued; after
a state reset nothing read before it is written or committed; a bug in the write ends the
pipeline without a commit.

The writer here is a ``BulkWriter`` whose ``write`` blocks until the test lets it finish, so
each test can look at the pipeline while a write is in flight. Each test that uses the ``rig``
runs twice: planning in the writer, and with the planning process (which may hold the batches
it plans ahead, and no more, while a write waits). No server is involved (the
end-to-end and reliability suites check the same promises through the real daemon).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import pytest
from elasticsearch import Elasticsearch

from elastic_connector.core.actions import Upsert
from elastic_connector.core.config import Mode
from elastic_connector.core.events import Plan, PlannerState, PlanSettings, plan_frame
from elastic_connector.core.stream import StreamPosition
from elastic_connector.shell.authors import AuthorNames
from elastic_connector.shell.bulk import BulkResult, BulkStopped, BulkWriter, WriteAction
from elastic_connector.shell.connector_state import ConnectorState
from elastic_connector.shell.metrics import Metrics
from elastic_connector.shell.pipeline import Pipeline
from elastic_connector.shell.planning import PlanningProcess
from elastic_connector.shell.stream import StreamMessage
from tests.reliability.pipeline_run import MemoryStore
from tests.reliability.workload import envelope, generate
from tests.support.writers import InstantWriter

NOW: Final = datetime(2025, 6, 1, tzinfo=UTC)
FROM_START: Final = StreamPosition("0-0", None)
BATCH: Final = 3
WAIT: Final = 10.0


class GatedWriter(BulkWriter):
    """Records each write and holds it until ``release`` (or the stop event)."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__(Elasticsearch("http://127.0.0.1:9"), require_alias=False, stop=stop)
        self.calls: list[list[str]] = []
        self.started = threading.Semaphore(0)
        self._gates: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._halt = stop
        self.fail_with: Exception | None = None

    def release(self) -> None:
        self._gates.put(True)

    def write(self, actions: Sequence[WriteAction]) -> BulkResult:
        self.calls.append([action.id for action in actions])
        self.started.release()
        while True:
            try:
                self._gates.get(timeout=0.02)
                break
            except queue.Empty:
                if self._halt.is_set():
                    raise BulkStopped(BulkResult(), len(actions)) from None
        if self.fail_with is not None:
            raise self.fail_with
        return BulkResult(written=sum(isinstance(a, Upsert) for a in actions))


@dataclass
class Rig:
    pipeline: Pipeline
    writer: GatedWriter
    store: MemoryStore
    state: ConnectorState
    inbox: queue.Queue[StreamMessage]
    ids: list[str]
    planned: list[str]
    """Message ids in the order the pipeline planned them."""
    resets: list[int] = field(default_factory=list)
    ahead: int = 0
    """Batches planned ahead of the write (with a planning process)."""

    def wait_for_write(self, count: int) -> None:
        """Until ``count`` writes have started."""
        for _ in range(count):
            assert self.writer.started.acquire(timeout=WAIT), "the write did not start"

    def wait_until(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.01)

    def position(self) -> object:
        return None if self.store.state is None else self.store.state.get("start_from")


def _messages(count: int, first: int = 0) -> list[StreamMessage]:
    events = generate(7, count, tag=f"p{first}", population=count)
    return [
        StreamMessage(f"{1_800_000_000_000 + first + n}-0", event.kind, envelope(event))
        for n, event in enumerate(events)
    ]


def _heartbeat(after: str, ms: int = 1) -> StreamMessage:
    """An idle heartbeat ``ms`` after ``after`` (its id comes from the platform's clock)."""
    at = int(after.split("-", maxsplit=1)[0]) + ms
    return StreamMessage(f"{at}-0", "heartbeat", b'"2027-01-15T08:00:00.000Z"')


class RecordingPlanning(PlanningProcess):
    """The planning process, recording the data messages it is sent, in order."""

    def __init__(self, settings: PlanSettings, planned: list[str]) -> None:
        super().__init__(settings)
        self._planned = planned

    def submit(
        self,
        messages: Sequence[tuple[str, str, bytes]],
        now: datetime,
        state: PlannerState,
        authors: AuthorNames,
        *,
        go_on: bool,
    ) -> None:
        self._planned.extend(event_id for event_id, event, _ in messages if event != "heartbeat")
        super().submit(messages, now, state, authors, go_on=go_on)


@pytest.fixture(params=["here", "apart"])
def rig(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Rig]:
    """The pipeline over three full batches and a heartbeat; ``apart``: with a planning
    process (which plans every full batch)."""
    stop = threading.Event()
    inbox: queue.Queue[StreamMessage] = queue.Queue()
    messages = _messages(3 * BATCH)
    for message in [*messages, _heartbeat(messages[-1].id)]:
        inbox.put(message)
    ids = [message.id for message in messages]
    planned: list[str] = []

    def recording(
        event_id: str,
        event: str,
        data: bytes | str,
        state: PlannerState,
        settings: PlanSettings,
        now: datetime,
        authors: Mapping[str, str],
    ) -> Plan:
        planned.append(event_id)
        return plan_frame(event_id, event, data, state, settings, now, authors)

    monkeypatch.setattr("elastic_connector.shell.pipeline.plan_frame", recording)
    store = MemoryStore()
    state = ConnectorState(store)
    writer = GatedWriter(stop)
    resets: list[int] = []

    def on_reset() -> StreamPosition:
        resets.append(1)
        while not inbox.empty():
            inbox.get_nowait()
        state.acknowledge_reset()
        return StreamPosition("0-0", None)

    settings = PlanSettings(mode=Mode.ECS_NO_SIGNALS, index="ti")
    apart = request.param == "apart"
    pipeline = Pipeline(
        inbox=inbox,
        settings=settings,
        planner_state=PlannerState(),
        writer=writer,
        state=state,
        metrics=Metrics(),
        position=lambda: StreamPosition(ids[-1], None),
        on_reset=on_reset,
        max_batch=BATCH,
        flush_interval=0.01,
        retry_delay=0.1,
        clock=lambda: NOW,
        stop=stop,
        start=StreamPosition("0-0", None),
        planning=RecordingPlanning(settings, planned) if apart else None,
    )
    rig = Rig(
        pipeline,
        writer,
        store,
        state,
        inbox,
        ids,
        planned,
        resets,
        ahead=PlanningProcess.AHEAD if apart else 0,
    )
    pipeline.start()
    yield rig
    stop.set()
    for _ in range(len(writer.calls) + 1):
        writer.release()
    pipeline.drain_and_stop(timeout=WAIT)
    assert not pipeline.is_alive()


def _batch_ids(rig: Rig, number: int) -> list[str]:
    return rig.ids[number * BATCH : (number + 1) * BATCH]


def test_while_a_write_waits_nothing_more_is_taken_from_the_queue(rig: Rig) -> None:
    # With a planning process, the next batches are taken and planned meanwhile: no more.
    rig.wait_for_write(1)
    time.sleep(0.2)  # time enough to run ahead, if it would
    assert rig.planned == rig.ids[: (1 + rig.ahead) * BATCH]
    assert rig.inbox.qsize() == (2 - rig.ahead) * BATCH + 1
    assert len(rig.writer.calls) == 1
    assert rig.position() is None
    assert rig.pipeline.status.last_ack_id is None


def test_positions_are_committed_in_order_and_only_after_the_acknowledgement(rig: Rig) -> None:
    for number in range(3):
        rig.wait_for_write(1)
        # The write of batch N starts only once batch N-1 was committed: up to its last id
        # but one, since the next frame may still carry the last one (a dependency group).
        assert rig.position() == (_batch_ids(rig, number - 1)[-2] if number else None)
        assert len(rig.writer.calls) == number + 1
        rig.writer.release()
    # The idle heartbeat after the last event completes its group.
    rig.wait_until(lambda: rig.position() == rig.ids[-1])
    assert rig.pipeline.status.last_ack_id == _heartbeat(rig.ids[-1]).id
    assert rig.planned == rig.ids


def test_a_stop_waits_for_the_write_in_flight_then_writes_what_is_queued(rig: Rig) -> None:
    rig.wait_for_write(1)
    stopping = threading.Thread(target=rig.pipeline.drain_and_stop, args=(WAIT,))
    stopping.start()
    time.sleep(0.2)
    assert rig.pipeline.is_alive(), "the stop did not wait for the write in flight"
    assert rig.position() is None
    for _ in range(3):
        rig.writer.release()
    stopping.join(WAIT)
    assert not rig.pipeline.is_alive()
    assert len(rig.writer.calls) == 3
    assert rig.position() == rig.ids[-1]


def test_nothing_read_before_a_state_reset_is_written_after_it(rig: Rig) -> None:
    rig.wait_for_write(1)
    rig.writer.release()
    rig.wait_for_write(1)  # batch 2 in flight, batch 3 queued
    rig.store.state = None  # the OpenCTI UI resets the state
    rig.writer.release()
    rig.wait_until(lambda: rig.resets == [1])
    time.sleep(0.2)
    assert len(rig.writer.calls) == 2, "a batch read before the reset was written"
    assert rig.position() is None, "a position read before the reset was committed"
    assert rig.pipeline.status.last_ack_id == _batch_ids(rig, 0)[-1]

    # The restarted stream is written and committed as usual.
    fresh = _messages(2, first=100)
    for message in [*fresh, _heartbeat(fresh[-1].id)]:
        rig.inbox.put(message)
    rig.wait_for_write(1)
    rig.writer.release()
    rig.wait_until(lambda: rig.position() == fresh[-1].id)
    assert len(rig.writer.calls) == 3


def test_a_bug_in_the_write_ends_the_pipeline_without_a_commit(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pipeline thread dies with the writer's exception, as it did when it wrote itself:
    # the daemon's watchdog then stops the process rather than run without a writer.
    raised: list[tuple[str | None, BaseException | None]] = []
    monkeypatch.setattr(
        threading,
        "excepthook",
        lambda args: raised.append(
            (None if args.thread is None else args.thread.name, args.exc_value)
        ),
    )
    bug = RuntimeError("a writer bug")
    rig.writer.fail_with = bug
    rig.wait_for_write(1)
    rig.writer.release()
    rig.wait_until(lambda: not rig.pipeline.is_alive())
    assert raised == [("es-writer", bug)]
    assert rig.position() is None
    assert len(rig.writer.calls) == 1


# --- positions under the platform's rules (shared/reference/opencti.md) -------------------------


def _saved_after(
    messages: Sequence[StreamMessage],
    *,
    batch: int,
    start: StreamPosition = FROM_START,
    reader_at: StreamPosition | None = None,
) -> list[object]:
    """Every position the pipeline saves while writing ``messages`` (then stopping), each
    once (an unchanged position is saved again after each batch)."""
    stop = threading.Event()
    inbox: queue.Queue[StreamMessage] = queue.Queue()
    for message in messages:
        inbox.put(message)
    saved: list[object] = []

    class Recording(MemoryStore):
        def set_state(self, state: dict[str, object] | None) -> None:
            super().set_state(state)
            position = None if state is None else state.get("start_from")
            if not saved or saved[-1] != position:
                saved.append(position)

    pipeline = Pipeline(
        inbox=inbox,
        settings=PlanSettings(mode=Mode.ECS_NO_SIGNALS, index="ti"),
        planner_state=PlannerState(),
        writer=InstantWriter(stop),
        state=ConnectorState(Recording()),
        metrics=Metrics(),
        position=lambda: reader_at or StreamPosition(messages[-1].id, None),
        on_reset=lambda: start,
        max_batch=batch,
        flush_interval=0.01,
        retry_delay=0.1,
        clock=lambda: NOW,
        stop=stop,
        start=start,
    )
    pipeline.start()
    pipeline.drain_and_stop(timeout=WAIT)
    assert not pipeline.is_alive()
    return saved


def _group(event_id: str, events: Sequence[StreamMessage]) -> list[StreamMessage]:
    """``events`` re-sent under one id, as the platform sends dependencies before an event."""
    return [StreamMessage(event_id, m.event, m.data) for m in events]


def test_a_batch_cut_inside_a_group_saves_the_position_before_the_group() -> None:
    events = _messages(5)
    before, group_id = events[0].id, events[1].id
    messages = [events[0], *_group(group_id, events[1:4])]  # the marking, the author, the event
    # Batches of 2: [before, dependency], [dependency, event]. The stream stops there.
    assert _saved_after(messages, batch=2) == [before]
    # Once a later frame arrives the group is known complete.
    later = [*messages, events[4]]
    assert _saved_after(later, batch=2) == [before, group_id]


def test_a_heartbeat_inside_a_group_does_not_complete_it() -> None:
    events = _messages(3)
    group_id = events[1].id
    beat = StreamMessage(group_id, "heartbeat", b'"x"')  # it carries the group's id
    messages = [events[0], events[1], beat, *_group(group_id, events[2:])]
    assert _saved_after(messages, batch=10) == [events[0].id]


def test_a_heartbeat_position_is_stepped_back_by_the_margin() -> None:
    events = _messages(1)
    much_later = _heartbeat(events[0].id, ms=600_000)
    saved = _saved_after([*events, much_later], batch=10)
    # Resuming after the heartbeat's own id could skip events the platform appends with
    # smaller ids (its idle ids come from its clock): 60 s before it is saved instead.
    assert saved == [f"{int(much_later.id.split('-', maxsplit=1)[0]) - 60_001}-0"]


def test_the_recovery_replay_saves_nothing() -> None:
    replayed = [StreamMessage(m.id, m.event, m.data, recovery=True) for m in _messages(4, first=10)]
    beat = StreamMessage(replayed[-1].id, "heartbeat", b'"x"', recovery=True)
    recovering = StreamPosition("0-0", "2027-01-15T08:00:00Z")
    assert _saved_after([*replayed, beat], batch=2, start=recovering, reader_at=recovering) == []
