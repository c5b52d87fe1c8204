"""The shell's write path on its own: ``Pipeline`` (batching, the real planner, commits) with a
real ``BulkWriter``, fed a list of events — no stream reader, no pycti, no subprocess.

For properties over many generated histories, where starting a daemon per example would cost
seconds each.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final

from elasticsearch import Elasticsearch

from elastic_connector.core.events import PlannerState, PlanSettings
from elastic_connector.core.stream import StreamPosition
from elastic_connector.shell.bulk import BulkWriter
from elastic_connector.shell.connector_state import ConnectorState
from elastic_connector.shell.metrics import Metrics
from elastic_connector.shell.outputs import OutputWriter
from elastic_connector.shell.pipeline import Pipeline
from elastic_connector.shell.stream import StreamMessage
from tests.reliability.workload import Event, envelope

__all__ = ["NOW", "MemoryStore", "run_pipeline"]

NOW: Final = datetime(2025, 6, 1, tzinfo=UTC)


class MemoryStore:
    """pycti's state keeping, in memory (the pipeline saves positions through it)."""

    def __init__(self) -> None:
        self.state: dict[str, object] | None = None

    def get_state(self) -> dict[str, object] | None:
        return self.state

    def set_state(self, state: dict[str, object] | None) -> None:
        self.state = state

    def force_ping(self) -> None:
        return


def run_pipeline(
    events: Sequence[Event],
    client: Elasticsearch,
    settings: PlanSettings,
    batch: int,
    outputs: Callable[[BulkWriter, Metrics], OutputWriter] | None = None,
) -> tuple[Pipeline, Metrics, MemoryStore, list[str]]:
    """Write ``events`` (ids ``<n>-0``) in batches of ``batch``; returns once all are
    processed, with the pipeline, its metrics, the saved state and the event ids.
    ``outputs`` builds the lookup-row / dead-letter writer around the documents' writer."""
    inbox: queue.Queue[StreamMessage] = queue.Queue()
    ids = [f"{1_800_000_000_000 + n}-0" for n in range(len(events))]
    for event_id, event in zip(ids, events, strict=True):
        inbox.put(StreamMessage(event_id, event.kind, envelope(event)))
    stop = threading.Event()
    metrics = Metrics()
    store = MemoryStore()
    writer = BulkWriter(client, require_alias=False, max_actions=batch, stop=stop)
    pipeline = Pipeline(
        inbox=inbox,
        settings=settings,
        planner_state=PlannerState(),
        writer=writer,
        state=ConnectorState(store),
        metrics=metrics,
        position=lambda: StreamPosition(ids[-1], None),
        on_reset=lambda: StreamPosition("0-0", None),
        max_batch=batch,
        flush_interval=0.01,
        retry_delay=0.1,
        clock=lambda: NOW,
        stop=stop,
        start=StreamPosition("0-0", None),
        outputs=None if outputs is None else outputs(writer, metrics),
    )
    pipeline.start()
    pipeline.drain_and_stop(timeout=30)
    assert not pipeline.is_alive(), "the pipeline did not finish"
    return pipeline, metrics, store, ids
