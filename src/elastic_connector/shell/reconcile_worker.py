"""Reconciliations inside the daemon: on a schedule, after a stream gap, and as initial sync.

One thread runs them one at a time. What starts one (its *trigger*):

* ``interval``: every ``connector.reconcile_interval`` seconds (unset: never);
* ``gap``: the stream reader found the saved position older than the oldest event the
  platform still holds (deletions lost to trimming);
* ``initial``: a first start with ``connector.initial_sync: reconcile``;
* ``resume``: the saved state says a gap or initial reconciliation did not finish (the
  connector stopped or crashed meanwhile): it runs again at start.

``gap`` and ``initial`` are written into the connector state (``reconcile_pending``) before
they run and cleared once one finishes, so a crash never loses them; a failed one is tried
again after ``RETRY_AFTER`` seconds. The runs share a ``WriteGate`` with the pipeline: their
repairs never overwrite what the stream wrote meanwhile (``shell.reconcile``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import msgspec

from elastic_connector.core.config import ElasticsearchSettings
from elastic_connector.core.reconcile import PENDING_KEY, Counts, reconcile_pending
from elastic_connector.shell.connector_state import ConnectorState
from elastic_connector.shell.metrics import Metrics
from elastic_connector.shell.outputs import OutputWriter
from elastic_connector.shell.reconcile import (
    BoundedWriter,
    Progress,
    ProgressLines,
    ReconcileFailed,
    ReconcileSettings,
    Reconciliation,
)
from elastic_connector.shell.write_gate import WriteGate

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch
    from pycti import OpenCTIApiClient

_log = logging.getLogger(__name__)

RETRY_AFTER: Final = 300.0
"""Seconds before a failed gap or initial reconciliation is tried again."""
PROGRESS_EVERY: Final = 60.0
PERSISTENT: Final = frozenset({"gap", "initial", "resume"})
"""Triggers that must not be lost: kept in the connector state until a run finishes."""


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Reconciler:
    """The daemon's reconciliation thread; see the module documentation."""

    def __init__(
        self,
        settings: ReconcileSettings,
        *,
        api: OpenCTIApiClient,
        client: Elasticsearch,
        elasticsearch: ElasticsearchSettings,
        require_alias: bool,
        gate: WriteGate,
        metrics: Metrics,
        state: ConnectorState,
        clock: Callable[[], datetime],
        interval: float | None,
        retry_after: float = RETRY_AFTER,
        outputs: OutputWriter | None = None,
    ) -> None:
        """``outputs``: the pipeline's, when the lookup index or dead letters are on (the write
        gate keeps the two from writing at once)."""
        self._outputs = outputs
        self._settings = settings
        self._api = api
        self._client = client
        self._elasticsearch = elasticsearch
        self._require_alias = require_alias
        self._gate = gate
        self._metrics = metrics
        self._state = state
        self._clock = clock
        self._interval = interval
        self._retry_after = retry_after
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._requested: dict[str, None] = {}
        self._finished: set[str] = set()
        self._running: str | None = None
        self._progress: Progress | None = None
        self._last: dict[str, object] | None = None
        self._next_due: float | None = None
        """When the schedule runs the next one (None: no schedule)."""
        self._retry_due: float | None = None
        self._retrying: list[str] = []
        """Gap or initial triggers of a failed run, requested again at ``_retry_due``."""
        self._thread = threading.Thread(target=self._loop, name="reconciler", daemon=True)

    # --- control ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5.0)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def finished(self, trigger: str) -> bool:
        """Whether a run including ``trigger`` has finished (since ``forget``)."""
        with self._lock:
            return trigger in self._finished

    def forget(self, trigger: str) -> None:
        with self._lock:
            self._finished.discard(trigger)

    def request(self, trigger: str) -> None:
        """Run a reconciliation as soon as possible (thread-safe; once for many requests).
        A ``gap`` or ``initial`` request is saved in the connector state first."""
        if trigger in PERSISTENT and trigger != "resume":
            self._state.update({PENDING_KEY: True})
        with self._lock:
            self._requested[trigger] = None
        self._wake.set()

    # --- /healthz -----------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        with self._lock:
            step = self._progress if self._running is not None else None
            return {
                "running": self._running is not None,
                "trigger": self._running,
                "progress": None
                if step is None
                else {
                    "phase": step.phase,
                    "done": step.done,
                    "total": step.total,
                    "counts": msgspec.structs.asdict(step.counts),
                },
                "requested": list(self._requested),
                "interval_seconds": self._interval,
                "next_run_at": _iso(self._next_due_wall()),
                "last": dict(self._last) if self._last is not None else None,
            }

    def _next_due_wall(self) -> float | None:
        if self._next_due is None:
            return None
        return time.time() + max(0.0, self._next_due - time.monotonic())

    # --- the thread ---------------------------------------------------------------------------

    def _loop(self) -> None:
        if self._interval is not None:
            self._next_due = time.monotonic() + self._interval
        while not self._stop.is_set():
            dues = [due for due in (self._next_due, self._retry_due) if due is not None]
            self._wake.wait(max(0.0, min(dues) - time.monotonic()) if dues else None)
            self._wake.clear()
            if self._stop.is_set():
                return
            now = time.monotonic()
            with self._lock:
                if self._retry_due is not None and now >= self._retry_due:
                    self._requested.update(dict.fromkeys(self._retrying))
                    self._retry_due, self._retrying = None, []
                triggers = list(self._requested)
                self._requested.clear()
            if not triggers and self._next_due is not None and now >= self._next_due:
                triggers = ["interval"]
            if not triggers:
                continue
            ok = self._run(triggers[0] if len(triggers) == 1 else "+".join(triggers))
            if self._interval is not None:
                self._next_due = time.monotonic() + self._interval
            persistent = [t for t in triggers if t in PERSISTENT]
            if not ok and persistent and not self._stop.is_set():
                # Still pending in the state: tried again later, sooner than the schedule.
                with self._lock:
                    self._retrying = persistent
                    self._retry_due = time.monotonic() + self._retry_after

    def _run(self, trigger: str) -> bool:
        started, wall_started = time.monotonic(), time.time()
        with self._lock:
            self._running = trigger
        self._metrics.reconcile_running.set(1)
        _log.info("reconcile (%s): started", trigger)
        run = Reconciliation(
            self._settings,
            api=self._api,
            client=self._client,
            write=BoundedWriter(
                self._client,
                self._elasticsearch,
                require_alias=self._require_alias,
                stop=self._stop,
                outputs=None if self._outputs is None else self._outputs.with_documents,
            ),
            gate=self._gate,
            clock=self._clock,
            stop=self._stop,
            progress=self._progress_to(
                ProgressLines(
                    lambda text: _log.info("reconcile (%s): %s", trigger, text),
                    interval=PROGRESS_EVERY,
                )
            ),
        )
        error: str | None = None
        try:
            report = run.run()
            counts = report.counts
            if report.orphans_withheld:
                _log.warning("reconcile (%s): %s", trigger, report.orphans_withheld)
        except ReconcileFailed as failure:
            counts, error = failure.counts, failure.message
        except Exception:  # a bug must not kill the thread, nor the daemon with it
            _log.exception("reconcile (%s) raised (a bug)", trigger)
            counts, error = Counts(), "internal error (see the traceback in the log)"
        seconds = time.monotonic() - started
        outcome = "ok" if error is None else ("stopped" if self._stop.is_set() else "failed")
        self._record(trigger, outcome, counts, seconds, wall_started, error)
        if error is None:
            with self._lock:
                self._finished.update(trigger.split("+"))
                queued = PERSISTENT.intersection(self._requested)
            if not queued and reconcile_pending(self._state.snapshot()):
                self._state.update({PENDING_KEY: False})
            _log.info(
                "reconcile (%s): done in %.1f s: %d indicators, %d documents; %d missing, "
                "%d stale, %d orphaned; %d written, %d deleted, %d skipped, %d superseded",
                trigger,
                seconds,
                counts.opencti_indicators,
                counts.index_documents,
                counts.missing,
                counts.stale,
                counts.orphaned,
                counts.written,
                counts.deleted,
                counts.skipped,
                counts.superseded,
            )
        elif outcome == "failed":
            _log.error("reconcile (%s) failed after %.1f s: %s", trigger, seconds, error)
        return error is None

    def _progress_to(self, lines: ProgressLines) -> Callable[[Progress], None]:
        def progress(step: Progress) -> None:
            with self._lock:
                self._progress = step
            lines(step)

        return progress

    def _record(
        self,
        trigger: str,
        outcome: str,
        counts: Counts,
        seconds: float,
        wall_started: float,
        error: str | None,
    ) -> None:
        metrics = self._metrics
        metrics.reconcile_running.set(0)
        for part in trigger.split("+"):
            metrics.reconcile_runs.labels(part, outcome).inc()
        metrics.reconcile_last_duration.set(seconds)
        values = {
            "opencti_indicators": counts.opencti_indicators,
            "index_documents": counts.index_documents,
            "missing": counts.missing,
            "stale": counts.stale,
            "orphaned": counts.orphaned,
            "written": counts.written,
            "deleted": counts.deleted,
            "skipped": counts.skipped,
            "superseded": counts.superseded,
        }
        for name, value in values.items():
            metrics.reconcile_last_count.labels(name).set(value)
        if outcome == "ok":
            metrics.reconcile_last_success.set(time.time())
        with self._lock:
            self._running = None
            self._progress = None
            self._last = {
                "trigger": trigger,
                "outcome": outcome,
                "started_at": _iso(wall_started),
                "finished_at": _iso(time.time()),
                "duration_seconds": round(seconds, 1),
                "error": error,
                "counts": values,
            }
