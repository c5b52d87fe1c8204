"""How far the sync has got, as the daemon reports it (the figures and their rules are
``core.monitoring.progress``'s).

The pipeline reports every batch it wrote (``batch_done``, in its thread): the events, what
they came to, and whether they belong to the recovery replay. The daemon's watch loop calls
``tick`` about every second: it sets the ``phase`` and progress gauges and, every
``interval`` seconds while there is work (a replay or a catch-up under way, or events written
since the last line), logs one progress line; it is quiet when idle. The end of the replay is
logged at once by ``batch_done``, when the first live frame follows the replay's last one, with
the replay's totals and duration; a catch-up that lasted longer than one interval gets such a
line too. ``health`` gives the same figures for ``/healthz``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence

import msgspec

from elastic_connector.core.actions import Action
from elastic_connector.core.monitoring.progress import (
    CatchUp,
    Counts,
    Examples,
    Phase,
    ReplaySpan,
    Report,
    add_examples,
    catch_up_share,
    caught_up_line,
    count_actions,
    counts_fields,
    eta_seconds,
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
from elastic_connector.core.stix import DATA_EVENTS
from elastic_connector.core.stream import STREAM_START, StreamId, parse_stream_id
from elastic_connector.core.stream.position import StreamPosition, recovery_ms
from elastic_connector.shell.logs import json_only
from elastic_connector.shell.metrics import Metrics
from elastic_connector.shell.stream import ReaderStatus, StreamMessage

_log = logging.getLogger(__name__)


class _CatchUpState(msgspec.Struct, frozen=True):
    target: StreamId
    start: StreamId
    since: float
    base: Counts


class ProgressTracker:
    """See the module documentation. ``start`` is where the stream is read from."""

    def __init__(
        self,
        *,
        interval: float,
        metrics: Metrics,
        start: StreamPosition,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._interval = interval
        self._metrics = metrics
        self._monotonic = monotonic
        self._wall = wall
        self._lock = threading.Lock()
        self._reader: Callable[[], ReaderStatus] | None = None
        now = monotonic()
        self._counts = Counts()
        self._examples: Examples = {}
        self._line_at = now
        self._line_counts = Counts()
        self._phase = Phase.STARTING
        self._phase_since = now
        # The replay: whether the last frame written belonged to it, since when it runs (the
        # first tick that saw the reader in it, else its first frame), how far it got.
        self._replaying = False
        self._replay_noticed: float | None = None
        self._replay_since = now
        self._replay_base = Counts()
        self._replay: ReplaySpan | None = None
        # The live part: the greatest position written (the start until then).
        self._reached: StreamId | None = parse_stream_id(start.start_from)
        self._last_live_id: str | None = None
        self._catch_up: _CatchUpState | None = None

    def watch(self, reader: Callable[[], ReaderStatus]) -> None:
        """Where the stream reader's status comes from (connection, replay, ``connected``)."""
        self._reader = reader

    def restart(self, start: StreamPosition) -> None:
        """The stream is read again from ``start`` (a state reset from OpenCTI)."""
        with self._lock:
            self._reached = parse_stream_id(start.start_from)
            self._last_live_id = None
            self._catch_up = None

    # --- from the pipeline -----------------------------------------------------------------

    def batch_done(
        self, batch: Sequence[StreamMessage], actions: Sequence[Action], other: int
    ) -> None:
        """``batch`` was written: its data events came to ``actions``, and ``other`` of them
        called for nothing."""
        status = self._status()
        events = sum(1 for message in batch if message.event in DATA_EVENTS)
        now = self._monotonic()
        ended: tuple[str, dict[str, object]] | None = None
        with self._lock:
            for message in batch:
                if message.recovery:
                    if not self._replaying:
                        self._begin_replay(status, now)
                    if message.event in DATA_EVENTS and self._replay is not None:
                        self._replay = replay_observe(self._replay, message.id)
                    continue
                if self._replaying:
                    # The first live frame: every frame of the replay is written.
                    ended = self._end_replay(now)
                parsed = parse_stream_id(message.id)
                if parsed is not None and (self._reached is None or parsed >= self._reached):
                    self._reached = parsed
                    self._last_live_id = message.id
            self._counts = count_actions(self._counts, actions, events=events, other=other)
            self._examples = add_examples(self._examples, actions)
        if ended is not None:
            _log.info(ended[0], extra=json_only(replay_done=ended[1]))

    def _begin_replay(self, status: ReaderStatus | None, now: float) -> None:
        self._replaying = True
        self._replay_since = self._replay_noticed if self._replay_noticed is not None else now
        self._replay_noticed = None
        self._replay_base = self._counts
        until = recovery_ms(status.recover_until) if status is not None else None
        self._replay = ReplaySpan(until)

    def _end_replay(self, now: float) -> tuple[str, dict[str, object]]:
        """The end-of-replay line, and its figures."""
        self._replaying = False
        counts, seconds = since(self._counts, self._replay_base), now - self._replay_since
        # This line says all about the replay's last interval: the next one starts now.
        self._line_at, self._line_counts, self._examples = now, self._counts, {}
        figures = {**counts_fields(counts), "seconds": round(seconds, 1)}
        return replay_done_line(counts, seconds), figures

    # --- from the daemon -------------------------------------------------------------------

    def tick(self) -> None:
        """Update the gauges; log a progress line when one is due (see the module docs)."""
        status = self._status()
        now = self._monotonic()
        lines: list[tuple[str, dict[str, object]]] = []
        with self._lock:
            phase = self._phase_of(status)
            if phase is Phase.REPLAY and not self._replaying and self._replay_noticed is None:
                self._replay_noticed = now
            finished = self._follow_catch_up(phase, status, now)
            if finished is not None:
                lines.append((finished, {}))
            if phase is not self._phase:
                self._phase, self._phase_since = phase, now
            report = self._report(phase, status, now)
            if now - self._line_at >= self._interval:
                work = phase in (Phase.REPLAY, Phase.CATCH_UP) or (
                    self._counts.events != self._line_counts.events
                )
                if work:
                    lines.append((progress_line(report), report_fields(report)))
                self._line_at, self._line_counts, self._examples = now, self._counts, {}
        self._metrics.set_phase(report.phase.value)
        self._metrics.progress_ratio.set(math.nan if report.share is None else report.share)
        self._metrics.progress_eta.set(math.nan if report.eta is None else report.eta)
        for line, figures in lines:
            _log.info(line, extra=json_only(progress=figures) if figures else None)

    def final(self) -> None:
        """At shutdown: a last line with the totals when events were written since the last
        one."""
        status = self._status()
        now = self._monotonic()
        with self._lock:
            if self._counts.events == self._line_counts.events:
                return
            report = self._report(self._phase_of(status), status, now)
            self._line_at, self._line_counts, self._examples = now, self._counts, {}
        _log.info(progress_line(report), extra=json_only(progress=report_fields(report)))

    def health(self) -> dict[str, object]:
        """The figures of a progress line as of now, for ``/healthz``."""
        status = self._status()
        now = self._monotonic()
        with self._lock:
            phase = self._phase_of(status)
            report = self._report(phase, status, now)
            in_phase = now - self._phase_since if phase is self._phase else 0.0
        return {**report_fields(report), "phase_seconds": round(in_phase, 1)}

    # --- the rules, applied (called with the lock held) -----------------------------------

    def _status(self) -> ReaderStatus | None:
        return self._reader() if self._reader is not None else None

    def _phase_of(self, status: ReaderStatus | None) -> Phase:
        if self._replaying or (status is not None and status.recovering):
            return Phase.REPLAY
        if status is None or (status.connections == 0 and self._counts.events == 0):
            return Phase.STARTING
        return Phase.CATCH_UP if is_behind(self._reached, _target(status)) else Phase.LIVE

    def _follow_catch_up(self, phase: Phase, status: ReaderStatus | None, now: float) -> str | None:
        """Start, retarget or end the catch-up record; the line that ends a long one."""
        current = self._catch_up
        if phase is Phase.CATCH_UP and status is not None:
            target = _target(status)
            if target is not None and (current is None or current.target != target):
                if current is None:
                    # A read from a trimmed position starts at the oldest event kept.
                    start = max(self._reached or STREAM_START, _first(status) or STREAM_START)
                    self._catch_up = _CatchUpState(target, start, now, self._counts)
                else:  # a reconnect: the platform's newest event moved on
                    self._catch_up = _CatchUpState(
                        target, current.start, current.since, current.base
                    )
            return None
        self._catch_up = None
        if current is not None and now - current.since >= self._interval:
            return caught_up_line(since(self._counts, current.base), now - current.since)
        return None

    def _report(self, phase: Phase, status: ReaderStatus | None, now: float) -> Report:
        share: float | None = None
        eta: float | None = None
        target: str | None = None
        left: int | None = None
        replay: ReplaySpan | None = None
        if phase is Phase.REPLAY:
            until = recovery_ms(status.recover_until) if status is not None else None
            replay = self._replay if self._replaying and self._replay else ReplaySpan(until)
            share = replay_share(replay)
            began = self._replay_since if self._replaying else self._replay_noticed
            eta = eta_seconds(share, now - began) if began is not None else None
        elif phase is Phase.CATCH_UP and self._catch_up is not None:
            catch_up = self._catch_up
            reached = max(self._reached or STREAM_START, catch_up.start)
            share = catch_up_share(CatchUp(catch_up.start, catch_up.target, reached))
            eta = eta_seconds(share, now - catch_up.since)
            target = str(catch_up.target)
            info = status.stream_info if status is not None else None
            left = stream_events_left(info, reached) if info is not None else None
        lag = None
        if phase in (Phase.CATCH_UP, Phase.LIVE):
            lag = lag_seconds(self._last_live_id, int(self._wall() * 1000))
        return Report(
            phase=phase,
            counts=self._counts,
            interval_events=self._counts.events - self._line_counts.events,
            interval_seconds=now - self._line_at,
            examples=self._examples,
            share=share,
            eta=eta,
            replay=replay,
            position=self._last_live_id,
            target=target,
            events_left=left,
            lag=lag,
        )


def _target(status: ReaderStatus) -> StreamId | None:
    info = status.stream_info
    if info is None or not info.last_event_id:
        return None
    target = parse_stream_id(info.last_event_id)
    return None if target is None or target == STREAM_START else target


def _first(status: ReaderStatus) -> StreamId | None:
    info = status.stream_info
    return parse_stream_id(info.first_event_id) if info and info.first_event_id else None
