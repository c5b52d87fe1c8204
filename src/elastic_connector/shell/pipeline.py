"""Stream messages -> core planning -> bulk writes -> committed stream position.

One thread takes messages from the reader's bounded queue in batches (count or time), plans each
one with the pure core, writes the resulting actions with one ``BulkWriter.write`` call and, only
once Elasticsearch has acknowledged all of them, saves the stream position they allow. Until
then nothing is committed, so a crash, a kill or a lost connection replays the batch, and
replays are harmless because every document has a deterministic ``_id``.

The position saved is not simply the last id written (``core.stream.progress``): the platform
sends an event's dependencies under the event's own id, so an id is saved only once a frame
with a greater id was written (a batch cut, a shutdown or a reconnect inside such a group
resumes before it); a heartbeat's id is stepped back by ``heartbeat_margin``; the frames of the
first start's recovery replay save nothing, and no position up to the recovery date is saved
(the next start would replay again).

While Elasticsearch is down the writer keeps retrying the same batch; the queue fills up and the
reader stops reading, so the OpenCTI stream is back-pressured instead of buffered in memory.

With a planning process (``shell.planning``), a backlog is planned ahead: while batch N is
written, batches N+1 and N+2 are planned in the other process, each going on from the planner
state and the author names the one before it ended with. Writes and commits stay one at a time
and in order; two more batches are held meanwhile; batches read before a state reset are dropped
with their plans. A batch the process fails to plan, or planned from a state this process has
changed since (it planned a batch itself: markings or authors read from OpenCTI), is planned
here.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final, NamedTuple

from elastic_connector.core.actions import Action, Delete, Skip, Upsert
from elastic_connector.core.events import PlannerState, PlanSettings, plan_frame
from elastic_connector.core.monitoring.progress import REMOVED_CODES
from elastic_connector.core.policy.markings import MarkingLevel
from elastic_connector.core.stix import DATA_EVENTS
from elastic_connector.core.stream import StreamId, parse_stream_id
from elastic_connector.core.stream.position import StreamPosition, is_past_recovery, position_state
from elastic_connector.core.stream.progress import observe_all, resume_position, start_progress
from elastic_connector.shell.authors import AuthorNames
from elastic_connector.shell.bulk import BulkResult, BulkStopped, BulkWriter
from elastic_connector.shell.connector_state import ConnectorState
from elastic_connector.shell.elastic import PermanentElasticsearchError
from elastic_connector.shell.logs import fields
from elastic_connector.shell.metrics import Metrics
from elastic_connector.shell.outputs import OutputWriter
from elastic_connector.shell.planning import (
    PlannedBatch,
    PlanningProcess,
    PlanningProcessError,
    plan_batch,
)
from elastic_connector.shell.progress import ProgressTracker
from elastic_connector.shell.stream import StreamMessage
from elastic_connector.shell.write_gate import WriteGate

_log = logging.getLogger(__name__)

_IDLE_WAIT: Final = 0.5
OFFLOAD_AT: Final = 100
"""Batches of at least this many messages (or full ones, when batches are smaller) are planned
in the planning process: the stream is ahead of the writer (a replay, a catch-up)."""
PLANNING_RETRY_DELAY: Final = 60.0
"""After the planning process failed, batches are planned here for this long (seconds)."""
PLANNING_IDLE_CLOSE: Final = 60.0
"""The planning process is stopped once no batch was sent to it for this long (seconds)."""
MARKING_REFRESH_INTERVAL: Final = 60.0
"""Marking definitions are read again at most this often (seconds) when objects refer to
unknown ones; those objects are withheld meanwhile."""


class PipelineStatus:
    """What the health endpoint reports about the write side (updated by the pipeline thread)."""

    def __init__(self) -> None:
        self.last_ack_id: str | None = None
        """The id of the last message written (acknowledged by Elasticsearch)."""
        self.committed_position: str | None = None
        """The last position saved in the connector state."""
        self.last_ack_time: float | None = None
        self.last_error: str | None = None
        self.failing_since: float | None = None


class Pipeline:
    """The writer thread; see the module documentation."""

    def __init__(
        self,
        *,
        inbox: queue.Queue[StreamMessage],
        settings: PlanSettings,
        planner_state: PlannerState,
        writer: BulkWriter,
        state: ConnectorState,
        metrics: Metrics,
        position: Callable[[], StreamPosition],
        on_reset: Callable[[], StreamPosition],
        refresh_markings: Callable[[], Mapping[str, MarkingLevel] | None] | None = None,
        authors: AuthorNames | None = None,
        max_batch: int,
        flush_interval: float,
        retry_delay: float,
        clock: Callable[[], datetime],
        stop: threading.Event,
        start: StreamPosition | None = None,
        heartbeat_margin: float = 60.0,
        tracker: ProgressTracker | None = None,
        outputs: OutputWriter | None = None,
        gate: WriteGate | None = None,
        planning: PlanningProcess | None = None,
    ) -> None:
        """``start`` is where the stream is read from (by default the reader's position now);
        ``on_reset`` restarts the stream after a state reset and returns where from;
        ``tracker`` is told what each written batch came to; ``outputs`` writes instead of
        ``writer`` when lookup rows or dead letters are on; ``gate`` is shared with
        reconciliations (``shell.write_gate``); ``planning`` plans full batches (a backlog)
        while the one before is written (closed when the pipeline ends)."""
        self._inbox = inbox
        self._settings = settings
        self._planner_state = planner_state
        self._writer = writer
        self._state = state
        self._metrics = metrics
        self._position = position
        self._on_reset = on_reset
        self._refresh_markings = refresh_markings
        self._authors = authors if authors is not None else AuthorNames()
        self._unresolvable: dict[str, float] = {}
        self._max_batch = max_batch
        self._flush_interval = flush_interval
        self._retry_delay = retry_delay
        self._clock = clock
        self._stop = stop
        self._margin_ms = int(heartbeat_margin * 1000)
        self._tracker = tracker
        self._outputs = outputs
        self._origins: dict[tuple[str, str], str] = {}
        """(index, id) -> the event whose action it is, for dead letters (with ``outputs``)."""
        self._gate = gate
        self._planning = planning
        self._offload_at = min(max_batch, OFFLOAD_AT)
        self._planning_retry_at = 0.0
        self._last_offload: float | None = None
        self._resets = 0
        """State resets seen so far (a batch read before one is not written)."""
        self._epoch = 0
        """Batches planned here so far (each may change the planner state and the names)."""
        self._sent_epoch = -1
        """``_epoch`` when a batch was last sent to the planning process."""
        self._restart_progress(start or position())
        self._draining = threading.Event()
        self.status = PipelineStatus()
        self._thread = threading.Thread(target=self._run, name="es-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def drain_and_stop(self, timeout: float, grace: float = 1.0) -> None:
        """Write what is already queued (for at most ``timeout`` s), then stop; waits at most
        ``grace`` s more for a request in flight (which stopping cannot interrupt)."""
        self._draining.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            # Elasticsearch is not answering: give up on the batch in flight. Its position was
            # not committed, so it is read again at the next start.
            self._stop.set()
            self._thread.join(grace)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    # --- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        pending: deque[_Submitted] = deque()
        """Batches sent to the planning process, oldest first."""
        try:
            while not self._stop.is_set():
                batch = self._collect(wait=not pending)
                if not batch:
                    if pending:
                        # Nothing more has arrived: write what the planning process has.
                        if not self._write_next(pending):
                            return
                        continue
                    if self._draining.is_set():
                        return
                    self._close_planning_if_idle()
                    continue
                resets = self._resets
                # The replay's frames and live ones are written apart, so that the replay's
                # totals are exactly its own.
                for part in _replay_and_live(batch):
                    if self._resets != resets:
                        break  # read before a state reset: not written (the stream restarts)
                    if not self._take(part, pending):
                        return
                    if self._resets != resets:
                        self._abandon(pending)
                        break
        finally:
            if self._planning is not None:
                self._planning.close()

    def _take(self, part: list[StreamMessage], pending: deque[_Submitted]) -> bool:
        """Send ``part`` to the planning process, writing the oldest batch sent when enough
        are ahead; or plan and write it here, after what was sent before it. False when the
        pipeline must stop."""
        resets = self._resets
        planned = (
            self._resolve(pending.popleft()) if len(pending) >= PlanningProcess.AHEAD else None
        )
        # Sent before the write, so that the other process plans while this one waits for
        # Elasticsearch.
        submitted = self._submit(part, in_flight=len(pending))
        if planned is not None and not self._write_and_commit(planned):
            return False
        if submitted is not None:
            pending.append(submitted)
            return True
        while pending and self._resets == resets:
            if not self._write_next(pending):
                return False
        return self._resets != resets or self._process(part)

    def _write_next(self, pending: deque[_Submitted]) -> bool:
        return self._write_and_commit(self._resolve(pending.popleft()))

    def _collect(self, wait: bool = True) -> list[StreamMessage]:
        """Up to ``max_batch`` messages: wait for the first (unless ``wait`` is False), then take
        what arrives within the flush interval (immediately when draining)."""
        batch: list[StreamMessage] = []
        wait_for = 0.0 if self._draining.is_set() or not wait else _IDLE_WAIT
        try:
            batch.append(
                self._inbox.get(timeout=wait_for) if wait_for else self._inbox.get_nowait()
            )
        except queue.Empty:
            return batch
        deadline = time.monotonic() + (0.0 if self._draining.is_set() else self._flush_interval)
        while len(batch) < self._max_batch:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self._inbox.get(timeout=remaining)
                    if remaining > 0
                    else self._inbox.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def _process(self, batch: list[StreamMessage]) -> bool:
        """Plan, write and commit one batch here; False when the pipeline must stop."""
        return self._write_and_commit(self._complete(batch, self._clock(), None))

    # --- planning in the other process -----------------------------------------------------

    def _submit(self, batch: list[StreamMessage], in_flight: int) -> _Submitted | None:
        """Send ``batch`` to the planning process when it is part of a backlog (a full batch);
        None when it is to be planned here."""
        planning = self._planning
        if (
            planning is None
            or len(batch) < self._offload_at
            or time.monotonic() < self._planning_retry_at
        ):
            return None
        # The process goes on from the batch sent before unless this one planned something
        # itself since then; it is then sent this one's state, which is only whole once
        # nothing is in flight.
        go_on = self._epoch == self._sent_epoch
        if not go_on and in_flight:
            return None
        now = self._clock()
        try:
            planning.submit(
                _frames(batch),
                now,
                self._planner_state,
                self._authors,
                go_on=go_on,
            )
        except Exception as error:  # whatever fails there, the batch is planned here
            self._planning_failed(error)
            return None
        self._sent_epoch = self._epoch
        self._last_offload = time.monotonic()
        return _Submitted(batch, now, self._epoch)

    def _resolve(self, submitted: _Submitted) -> _Planned:
        """The plan of a submitted batch, applied; planned here if the other process failed,
        or planned from a state this one has changed since (it planned a batch itself)."""
        assert self._planning is not None  # only submitted when there is one
        first: tuple[PlannedBatch, PlannerState] | None = None
        try:
            answer = self._planning.result()
        except Exception as error:  # whatever fails there, the batch is planned here
            self._planning_failed(error)
        else:
            if submitted.epoch == self._epoch:
                self._take_in(answer[0])
                first = answer
        return self._complete(submitted.batch, submitted.now, first)

    def _abandon(self, pending: deque[_Submitted]) -> None:
        """Drop the batches sent (their messages were read before a state reset)."""
        if pending and self._planning is not None:
            self._planning.close()
        pending.clear()

    def _planning_failed(self, error: Exception) -> None:
        """Plan here for a while; ``error`` other than ``PlanningProcessError`` is a bug (the
        process is then stopped, since what it was sent is unknown)."""
        assert self._planning is not None  # only used when there is one
        if not isinstance(error, PlanningProcessError):
            _log.debug("the planning process's bug", exc_info=error)
            self._planning.close()
            error = PlanningProcessError(f"the planning process failed: {error!r} (a bug)")
        if time.monotonic() < self._planning_retry_at:
            return  # the batches that were in flight with the one that failed
        self._planning_retry_at = time.monotonic() + PLANNING_RETRY_DELAY
        _log.warning(
            "%s; planning here (the connector goes on, slower) and trying it again in %.0f s",
            error,
            PLANNING_RETRY_DELAY,
        )

    def _close_planning_if_idle(self) -> None:
        if (
            self._planning is not None
            and self._last_offload is not None
            and time.monotonic() - self._last_offload >= PLANNING_IDLE_CLOSE
        ):
            self._planning.close()
            self._last_offload = None

    # --- planning, writing, committing ------------------------------------------------------

    def _complete(
        self,
        batch: list[StreamMessage],
        now: datetime,
        first: tuple[PlannedBatch, PlannerState] | None,
    ) -> _Planned:
        """``batch`` planned (``first``: as the other process planned it, already taken in),
        and planned again with authors or markings read from OpenCTI when they were missing."""
        before = self._planner_state
        planned, after = first if first is not None else self._plan(batch, before, now)
        if self._authors.fetch_missing():
            # Indicators by authors read just now from OpenCTI: map them with the names.
            planned, after = self._plan(batch, before, now)
        if self._refresh_markings is not None and self._should_refresh_markings(planned.actions):
            # An object refers to a marking definition we have not seen (created after we
            # started, and not sent on the stream): read them again and plan the batch anew.
            refreshed = self._refresh_markings()
            if refreshed is not None:
                planned, after = self._plan(batch, before.with_markings(refreshed), now)
            self._note_unresolved(planned.actions)
        self._planner_state = after
        return _Planned(batch, planned)

    def _plan(
        self, batch: list[StreamMessage], state: PlannerState, now: datetime
    ) -> tuple[PlannedBatch, PlannerState]:
        """``batch`` planned here, from ``state``."""
        self._epoch += 1
        planned, after = plan_batch(
            _frames(batch),
            state,
            self._settings,
            now,
            self._authors.names,
            self._authors.learn,
            plan_frame,
        )
        self._report_failures(planned)
        return planned, after

    def _take_in(self, planned: PlannedBatch) -> None:
        """What the other process learnt while planning, taken in as if planned here."""
        for learned in planned.learned:
            self._authors.learn_parts(learned.authors, learned.missing)
        self._report_failures(planned)

    def _report_failures(self, planned: PlannedBatch) -> None:
        for failure in planned.failures:
            _log.error(
                "planning event %s raised (a bug), skipping it: %s",
                failure.event_id,
                failure.error,
                extra=fields(event_id=failure.event_id, code="internal_error"),
            )
            _log.debug("the planner bug's traceback:\n%s", failure.traceback)

    def _write_and_commit(self, planned: _Planned) -> bool:
        """Write one planned batch and commit it; False when the pipeline must stop."""
        batch, actions = planned.batch, planned.plan.actions
        # One increment per event name and batch: a labelled child lookup per message cost
        # more than a tenth of the time the core spends planning it.
        for event, count in Counter(message.event for message in batch).items():
            self._metrics.events.labels(event).inc(count)
        writes: list[Upsert | Delete] = []
        self._origins.clear()
        for action, origin in zip(actions, planned.plan.origins, strict=True):
            if isinstance(action, Skip):
                self._metrics.skips.labels(action.code).inc()
                _log.warning(
                    "skipped event %s: %s",
                    action.event_id,
                    action.reason,
                    extra=fields(
                        event_id=action.event_id, object_id=action.object_id, code=action.code
                    ),
                )
                continue
            writes.append(action)
            if self._outputs is not None:
                self._origins[(action.index, action.id)] = origin
        if writes and not self._write(writes):
            return False
        if self._tracker is not None:
            self._tracker.batch_done(batch, actions, planned.plan.other)
        return self._commit(batch)

    def _should_refresh_markings(self, actions: list[Action]) -> bool:
        """True when an action was withheld for a marking that no recent read failed to find."""
        now = time.monotonic()
        for action in actions:
            if not isinstance(action, Delete) or action.code != "unknown_marking":
                continue
            missing_since = self._unresolvable.get(action.subject)
            if missing_since is None or now - missing_since >= MARKING_REFRESH_INTERVAL:
                return True
        return False

    def _note_unresolved(self, actions: list[Action]) -> None:
        now = time.monotonic()
        for action in actions:
            if isinstance(action, Delete) and action.code == "unknown_marking":
                self._unresolvable[action.subject] = now
                _log.warning(
                    "withheld %s: %s (the connector's OpenCTI user may not be allowed to see "
                    "this marking)",
                    action.id,
                    action.reason,
                )

    def _send(self, writes: list[Upsert | Delete]) -> BulkResult:
        if self._outputs is not None:
            return self._outputs.write(writes, self._origins)
        return self._writer.write(writes)

    def _write(self, writes: list[Upsert | Delete]) -> bool:
        """Write until acknowledged; False only when stopping."""
        while not self._stop.is_set():
            try:
                if self._gate is None:
                    result = self._send(writes)
                else:
                    with self._gate.stream_write(writes):
                        result = self._send(writes)
            except BulkStopped:
                return False
            except PermanentElasticsearchError as error:
                # 401/403/missing index/TLS: an operator has to act. Keep the batch and retry
                # slowly, so fixing the role or the certificate resumes without a restart.
                self._metrics.write_errors.inc()
                now = time.time()
                if self.status.failing_since is None:
                    self.status.failing_since = now
                self.status.last_error = str(error)
                _log.error(
                    "Elasticsearch refused the batch (retrying in %.0f s): %s",
                    self._retry_delay,
                    error,
                )
                if self._stop.wait(self._retry_delay):
                    return False
                continue
            self.status.failing_since = None
            self.status.last_error = None
            self._metrics.bulk_requests.inc()
            self._metrics.documents_written.inc(result.written)
            self._metrics.bulk_retries.inc(result.retries)
            self._metrics.rejected.inc(len(result.rejected))
            deleted: Counter[str] = Counter()
            for action in writes:
                if isinstance(action, Delete):
                    deleted[action.code] += 1
                    if action.code == "unreadable_marking":
                        # An operator can act (the marking's definition): one warning each.
                        # Unknown markings were warned about after the refresh that failed
                        # to find them (_note_unresolved).
                        _log.warning(
                            "not exported: %s (%s)",
                            action.id,
                            action.reason,
                            extra=fields(object_id=action.id, code=action.code),
                        )
                    elif action.code not in REMOVED_CODES:
                        # Policy (revoked, expired, tlp...): counted, with a few example ids,
                        # in the progress lines.
                        _log.debug(
                            "not exported: %s (%s)",
                            action.id,
                            action.reason,
                            extra=fields(object_id=action.id, code=action.code),
                        )
            for code, count in deleted.items():
                self._metrics.documents_deleted.labels(code).inc(count)
            return True
        return False

    def _restart_progress(self, start: StreamPosition) -> None:
        self._progress = start_progress(start.start_from)
        self._committed: StreamId = self._progress.floor
        self._has_committed = False

    def _commit(self, batch: list[StreamMessage]) -> bool:
        """Save the position the written ``batch`` allows, if it moved forward."""
        position = self._position()
        last_id = batch[-1].id
        self._progress = observe_all(
            self._progress,
            ((m.id, m.event in DATA_EVENTS) for m in batch if not m.recovery),
            self._margin_ms,
        )
        target = resume_position(self._progress)
        forward = target > self._committed and is_past_recovery(str(target), position.recover_until)
        # Saving an unchanged position again is how a reset from the UI is noticed at once.
        if forward or self._has_committed:
            saved = target if forward else self._committed
            committed = StreamPosition(str(saved), position.recover_until)
            if not self._state.update(position_state(committed)):
                _log.warning(
                    "the connector state was reset from OpenCTI: restarting the stream from "
                    "the configured start"
                )
                self._resets += 1
                self._restart_progress(self._on_reset())
                return True
            self._committed = saved
            self._has_committed = True
            self.status.committed_position = committed.start_from
        now = time.time()
        self.status.last_ack_id = last_id
        self.status.last_ack_time = now
        self._metrics.last_ack.set(now)
        self._metrics.queue_depth.set(self._inbox.qsize())
        received = parse_stream_id(position.start_from)
        acked = parse_stream_id(last_id)
        if received is not None and acked is not None:
            self._metrics.stream_lag.set(max(0.0, (received.ms - acked.ms) / 1000))
        return True


class _Submitted(NamedTuple):
    """A batch sent to the planning process, the time it is planned for, and ``_epoch`` when
    it was sent."""

    batch: list[StreamMessage]
    now: datetime
    epoch: int


class _Planned(NamedTuple):
    batch: list[StreamMessage]
    plan: PlannedBatch


def _frames(batch: list[StreamMessage]) -> list[tuple[str, str, bytes]]:
    """``batch`` as ``plan_batch`` and the planning process take it: (id, event, data)."""
    return [(m.id, m.event, m.data) for m in batch]


def _replay_and_live(batch: list[StreamMessage]) -> list[list[StreamMessage]]:
    """``batch`` cut where its frames go from the replay to the live part, or back (a state
    reset starts a new replay)."""
    parts: list[list[StreamMessage]] = []
    start = 0
    for index in range(1, len(batch)):
        if batch[index].recovery != batch[index - 1].recovery:
            parts.append(batch[start:index])
            start = index
    parts.append(batch[start:])
    return parts
