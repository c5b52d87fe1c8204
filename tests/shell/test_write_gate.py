"""The gate between the stream's writes and a reconciliation's (``shell/write_gate.py``), alone
and inside the real pipeline."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from elasticsearch import Elasticsearch

from elastic_connector.core.actions import Delete, Upsert
from elastic_connector.core.config import Mode
from elastic_connector.core.events import PlannerState, PlanSettings
from elastic_connector.core.stream import StreamPosition
from elastic_connector.shell.bulk import BulkResult, BulkWriter, WriteAction
from elastic_connector.shell.connector_state import ConnectorState
from elastic_connector.shell.metrics import Metrics
from elastic_connector.shell.pipeline import Pipeline
from elastic_connector.shell.stream import StreamMessage
from elastic_connector.shell.write_gate import WriteGate
from tests.reliability.pipeline_run import MemoryStore
from tests.reliability.workload import envelope, generate

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def upsert(doc_id: str) -> Upsert:
    return Upsert("ti", doc_id, b"{}")


def test_only_what_the_stream_wrote_while_open_is_dropped() -> None:
    gate = WriteGate()
    with gate.stream_write([upsert("before")]):
        pass
    gate.open()
    with gate.stream_write([upsert("a"), Delete("ti", "b", "deleted", "")]):
        pass
    with gate.reconcile_write([upsert("a"), upsert("b"), upsert("before"), upsert("c")]) as (
        kept,
        dropped,
    ):
        assert [action.id for action in kept] == ["before", "c"]
        assert dropped == 2
    gate.close()
    with gate.reconcile_write([upsert("a")]) as (kept, dropped):
        assert (len(kept), dropped) == (1, 0)


def test_a_second_reconciliation_keeps_the_notes_until_both_end() -> None:
    gate = WriteGate()
    gate.open()
    gate.open()
    with gate.stream_write([upsert("a")]):
        pass
    gate.close()
    with gate.reconcile_write([upsert("a")]) as (kept, _dropped):
        assert kept == []
    gate.close()
    with gate.reconcile_write([upsert("a")]) as (kept, _dropped):
        assert len(kept) == 1


def test_the_two_writers_never_write_at_the_same_time() -> None:
    gate = WriteGate()
    gate.open()
    inside = threading.Event()
    leave = threading.Event()
    order: list[str] = []

    def stream() -> None:
        with gate.stream_write([upsert("x")]):
            inside.set()
            leave.wait(5)
            order.append("stream done")

    thread = threading.Thread(target=stream)
    thread.start()
    assert inside.wait(5)

    def reconcile() -> None:
        with gate.reconcile_write([upsert("x")]) as (kept, _dropped):
            order.append(f"reconcile kept {len(kept)}")

    other = threading.Thread(target=reconcile)
    other.start()
    time.sleep(0.1)
    assert order == []  # waits for the stream's write in flight
    leave.set()
    thread.join(5)
    other.join(5)
    assert order == ["stream done", "reconcile kept 0"]


class RecordingWriter(BulkWriter):
    def __init__(self, gate: WriteGate) -> None:
        super().__init__(Elasticsearch("http://127.0.0.1:9"), require_alias=False)
        self.gate = gate
        self.written: list[str] = []

    def write(self, actions: Sequence[WriteAction]) -> BulkResult:
        # Inside the gate: a reconciliation cannot take it now.
        assert not self.gate._lock.acquire(blocking=False), "the pipeline wrote outside the gate"
        self.written.extend(action.id for action in actions)
        return BulkResult(written=len(actions))


def test_the_pipeline_writes_inside_the_gate_and_notes_what_it_wrote() -> None:
    gate = WriteGate()
    gate.open()
    stop = threading.Event()
    inbox: queue.Queue[StreamMessage] = queue.Queue()
    events = generate(3, 6, tag="gate", population=6)
    for number, event in enumerate(events):
        inbox.put(StreamMessage(f"{1_800_000_000_000 + number}-0", event.kind, envelope(event)))
    writer = RecordingWriter(gate)
    pipeline = Pipeline(
        inbox=inbox,
        settings=PlanSettings(mode=Mode.ECS_NO_SIGNALS, index="ti"),
        planner_state=PlannerState(),
        writer=writer,
        state=ConnectorState(MemoryStore()),
        metrics=Metrics(),
        position=lambda: StreamPosition("0-0", None),
        on_reset=lambda: StreamPosition("0-0", None),
        max_batch=100,
        flush_interval=0.01,
        retry_delay=0.1,
        clock=lambda: NOW,
        stop=stop,
        gate=gate,
    )
    pipeline.start()
    deadline = time.monotonic() + 10
    while not writer.written and time.monotonic() < deadline:
        time.sleep(0.01)
    pipeline.drain_and_stop(timeout=5)
    assert writer.written
    with gate.reconcile_write([upsert(doc_id) for doc_id in writer.written]) as (kept, dropped):
        assert kept == []
        assert dropped == len(writer.written)
