"""The running connector: wiring, thread lifecycle, signals, health.

Threads: the stream reader (OpenCTI -> bounded queue), the pipeline (queue -> core -> bulk ->
commit), the reconciler (on a schedule, after a stream gap, as initial sync), in ``ecs`` mode the
alert poller (alerts -> sightings), in ecs modes the expiry sweep, the metrics/health server when
a port is configured, and pycti's own ping thread (which saves the connector state on the
platform every 40 s).

Shutdown (SIGTERM/SIGINT): stop reading, write what is already queued (a few seconds at most),
save the state with one last ping, exit 0. Any of our threads dying is a bug: it is logged, the
connector shuts down the same way and exits 1 so the orchestrator restarts it.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Final, Protocol

from elastic_transport import ApiError, TransportError
from elasticsearch import Elasticsearch

from elastic_connector.core.config.model import Config, InitialSync, Mode
from elastic_connector.core.events import PlannerState, PlanSettings
from elastic_connector.core.reconcile import PENDING_KEY, live_start_position, reconcile_pending
from elastic_connector.core.stream import StreamPosition, initial_position
from elastic_connector.core.stream.position import has_saved_position, position_state
from elastic_connector.shell import logs, opencti
from elastic_connector.shell.authors import AuthorNames
from elastic_connector.shell.bulk import BulkWriter
from elastic_connector.shell.connector_state import ConnectorState
from elastic_connector.shell.elastic import (
    ErrorClass,
    PermanentElasticsearchError,
    build_client,
    classify_error,
    describe_error,
)
from elastic_connector.shell.index_setup import (
    SetupError,
    TargetKind,
    ensure_setup,
    target_kind,
)
from elastic_connector.shell.metrics import Metrics, MetricsServer
from elastic_connector.shell.output_setup import build_output_writer, prepare_outputs
from elastic_connector.shell.pipeline import Pipeline
from elastic_connector.shell.planning import PlanningProcess
from elastic_connector.shell.progress import ProgressTracker
from elastic_connector.shell.reconcile import ReconcileSettings
from elastic_connector.shell.reconcile_worker import Reconciler
from elastic_connector.shell.stream import (
    StreamGap,
    StreamMessage,
    StreamReader,
    StreamReaderSettings,
)
from elastic_connector.shell.sweeper import Sweeper
from elastic_connector.shell.write_gate import WriteGate

if TYPE_CHECKING:
    from pycti import OpenCTIConnectorHelper

_log = logging.getLogger(__name__)

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
SHUTDOWN_SECONDS: Final = 9.0
"""The whole stop stays under the 10 s orchestrators grant after SIGTERM (then SIGKILL)."""
DRAIN_SECONDS: Final = 6.0
"""How long a shutdown may spend writing what was already read."""
_PING_RESERVE: Final = 1.5
"""Kept for the final ping, which saves the position: worth more than the last few writes."""
_WATCH_INTERVAL: Final = 1.0
UNHEALTHY_AFTER: Final = 300.0
"""Seconds of failing writes after which ``/healthz`` answers 503 (retries go on)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class Worker(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def is_alive(self) -> bool: ...


def index_mappings(mode: Mode) -> dict[str, object]:
    """The explicit mappings of the documents the core writes in ``mode``."""
    if mode is Mode.STIX:
        from elastic_connector.core.stix_mode import STIX_MAPPINGS

        return dict(STIX_MAPPINGS)
    from elastic_connector.core.indicators import INDICATOR_MAPPINGS

    return dict(INDICATOR_MAPPINGS)


def prepare_index(client: Elasticsearch, config: Config, stop: threading.Event) -> bool | None:
    """Set the index up (or, with ``reduced_privileges``, only look at it), waiting out an
    unreachable cluster. Returns whether writes must go through an alias; None when stopped.
    Raises ``PermanentElasticsearchError`` when a human has to act."""
    attempt = 0
    while not stop.is_set():
        try:
            if config.elasticsearch.reduced_privileges:
                kind = target_kind(client, config.index)
                if kind is TargetKind.DATA_STREAM:
                    raise SetupError(f"{config.index} is a data stream; indicators need an index")
                if kind is TargetKind.MISSING:
                    raise SetupError(
                        f"{config.index} does not exist and reduced_privileges is on: run "
                        "`elastic-connector setup` once with a user allowed to create it"
                    )
                return kind is TargetKind.ALIAS
            report = ensure_setup(
                client, index=config.index, mappings=index_mappings(config.connector.mode)
            )
            for problem in report.incompatible:
                _log.warning("index mapping: %s", problem)
            return report.require_alias
        except (ApiError, TransportError) as error:
            if classify_error(error) is ErrorClass.PERMANENT:
                raise PermanentElasticsearchError(
                    describe_error(error, config.elasticsearch.hosts)
                ) from error
            delay = min(config.elasticsearch.retry_max_backoff, 2.0 ** min(attempt, 6))
            attempt += 1
            _log.error(
                "Elasticsearch is not reachable (retrying in %.0f s): %s",
                delay,
                describe_error(error, config.elasticsearch.hosts),
            )
            stop.wait(delay)
    return None


class Daemon:
    """One run of the connector (see the module documentation)."""

    def __init__(self, config: Config, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.config = config
        self._clock = clock
        self.stop_requested = threading.Event()
        self._writer_stop = threading.Event()
        self.metrics = Metrics()
        self._workers: list[tuple[str, Worker]] = []
        self._reader: StreamReader | None = None
        self._pipeline: Pipeline | None = None
        self._writer: BulkWriter | None = None
        self._tracker: ProgressTracker | None = None
        self._repeats = logs.RepeatLimit()
        """Each kind of warning at most a few times a minute, then "(N more like this)"."""
        self._inbox: queue.Queue[StreamMessage] = queue.Queue(
            maxsize=max(100, 2 * config.elasticsearch.bulk_max_actions)
        )
        self._metrics_server: MetricsServer | None = None
        self._reconciler: Reconciler | None = None
        self._when_connected: queue.SimpleQueue[str] = queue.SimpleQueue()
        """Reconciliations to request once the stream is connected (start, state reset)."""
        self.gap_listeners: list[Callable[[StreamGap], None]] = []
        """Called (in the stream reader's thread) when the stream has lost events: a saved
        position older than the oldest event the platform still holds. What can repair the
        index (a full re-read of the knowledge base) registers here."""
        # Error texts quote what the servers said, which may name a secret (Elasticsearch
        # names the API key id in a 403): /healthz masks them as the logs do.
        self._mask = logs.SecretMask(logs.secret_values(config))

    # --- signals ---------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def request_stop(signum: int, _frame: FrameType | None) -> None:
            _log.info("received %s: shutting down", signal.Signals(signum).name)
            self.stop_requested.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

    # --- run -------------------------------------------------------------------------------

    def run(self) -> int:
        config = self.config
        logs.configure(config, repeats=self._repeats)
        _log.info(
            "starting elastic-connector: mode=%s index=%s opencti=%s",
            config.connector.mode.value,
            config.index,
            config.opencti.url,
        )
        self._start_metrics_server()
        client = build_client(config.elasticsearch, config.cloud)
        try:
            require_alias = prepare_index(client, config, self.stop_requested)
        except PermanentElasticsearchError as error:
            _log.error("cannot use the Elasticsearch index %s: %s", config.index, error)
            self._stop_metrics_server()
            return EXIT_FAILURE
        if require_alias is None:
            self._stop_metrics_server()
            return EXIT_OK
        try:
            targets = prepare_outputs(client, config, self.stop_requested)
        except PermanentElasticsearchError as error:
            _log.error("cannot use the lookup or dead-letter index: %s", error)
            self._stop_metrics_server()
            return EXIT_FAILURE
        if targets is None:
            self._stop_metrics_server()
            return EXIT_OK

        helper = opencti.connect(
            config, self.stop_requested, config.elasticsearch.retry_max_backoff
        )
        # pycti's logger has just replaced the root handlers: put ours back.
        logs.configure(config, repeats=self._repeats)
        if helper is None:
            self._stop_metrics_server()
            return EXIT_OK
        state = ConnectorState(helper)
        planner_state = PlannerState(opencti.load_marking_levels(helper.api) or {})

        saved = state.snapshot()
        sync_by_reconcile = config.connector.initial_sync is InitialSync.RECONCILE
        initial_reconcile = sync_by_reconcile and not has_saved_position(saved)
        position = initial_position(
            saved,
            start_timestamp=config.connector.live_stream_start_timestamp,
            recover_iso_date=config.connector.live_stream_recover_iso_date,
            now=self._clock(),
        )
        if initial_reconcile:
            # The live stream from now on, while a reconciliation fills the index.
            position = live_start_position(self._clock(), config.connector.stream_heartbeat_margin)
            state.update({**position_state(position), PENDING_KEY: True})
        _log.info(
            "reading the stream from %s (recover until %s)",
            position.start_from,
            position.recover_until or "-",
        )
        warn_without_deletions(config)
        reader = StreamReader(
            StreamReaderSettings.from_config(config),
            position,
            self._inbox,
            on_gap=self._gap_detected,
        )
        writer = BulkWriter.from_settings(
            client, config.elasticsearch, require_alias=require_alias, stop=self._writer_stop
        )
        tracker = ProgressTracker(
            interval=config.connector.progress_interval, metrics=self.metrics, start=position
        )
        tracker.watch(reader.status)
        outputs = build_output_writer(
            client,
            config,
            targets,
            writer,
            metrics=self.metrics,
            clock=self._clock,
            stop=self._writer_stop,
        )
        gate = WriteGate()
        reconciler = Reconciler(
            ReconcileSettings.from_config(config, recheck_creates=False),
            api=helper.api,
            client=client,
            elasticsearch=config.elasticsearch,
            require_alias=require_alias,
            gate=gate,
            metrics=self.metrics,
            state=state,
            clock=self._clock,
            interval=config.connector.reconcile_interval,
            outputs=outputs,
        )
        self._reconciler = reconciler
        sync_from = [position.start_from if initial_reconcile else None]

        def on_gap(gap: StreamGap) -> None:
            if gap.saved_position == sync_from[0] and not reconciler.finished("initial"):
                # The initial reconciliation starts once the stream is connected: it reads
                # OpenCTI after every event this gap lost.
                _log.info("the initial reconciliation covers the events of this gap")
                return
            reconciler.request("gap")

        self.gap_listeners.append(on_gap)

        def restart_from_scratch() -> StreamPosition:
            fresh = initial_position(
                None,
                start_timestamp=config.connector.live_stream_start_timestamp,
                recover_iso_date=config.connector.live_stream_recover_iso_date,
                now=self._clock(),
            )
            if sync_by_reconcile:
                fresh = live_start_position(self._clock(), config.connector.stream_heartbeat_margin)
                sync_from[0] = fresh.start_from
                reconciler.forget("initial")
            reader.restart_from(fresh)
            _drain(self._inbox)
            state.acknowledge_reset()
            tracker.restart(fresh)
            if sync_by_reconcile:
                self._when_connected.put("initial")
            return fresh

        plan_settings = PlanSettings.from_config(config)
        pipeline = Pipeline(
            inbox=self._inbox,
            settings=plan_settings,
            planner_state=planner_state,
            writer=writer,
            state=state,
            metrics=self.metrics,
            position=lambda: reader.position,
            on_reset=restart_from_scratch,
            refresh_markings=lambda: opencti.load_marking_levels(helper.api),
            authors=AuthorNames(lambda author: opencti.read_author_name(helper.api, author)),
            max_batch=config.elasticsearch.bulk_max_actions,
            flush_interval=config.elasticsearch.bulk_flush_interval,
            retry_delay=config.elasticsearch.retry_max_backoff,
            clock=self._clock,
            stop=self._writer_stop,
            start=position,
            heartbeat_margin=config.connector.stream_heartbeat_margin,
            tracker=tracker,
            outputs=outputs,
            gate=gate,
            planning=PlanningProcess(plan_settings) if _plan_apart(config) else None,
        )
        self._reader, self._pipeline, self._writer = reader, pipeline, writer
        self._tracker = tracker
        pipeline.start()
        reader.start()
        reconciler.start()
        self._workers.append(("reconciler", reconciler))
        # Reconciliations due at start run once the stream is connected: every event the
        # stream cannot deliver any more is then older than what they read.
        if initial_reconcile:
            self._when_connected.put("initial")
        elif reconcile_pending(saved):
            _log.info("a reconciliation did not finish before the last stop: running it again")
            self._when_connected.put("resume")
        if config.connector.mode is not Mode.STIX:
            ttl = config.connector.indicator_ttl
            sweeper = Sweeper(
                client,
                config.index,
                config.connector.expiry_sweep_interval,
                self.metrics,
                self._clock,
                ttl=None if ttl is None else timedelta(seconds=ttl),
                lookup_index=targets.lookup_index,
            )
            sweeper.start()
            self._workers.append(("expiry sweep", sweeper))
        if config.connector.mode is Mode.ECS:
            self._workers.append(("alert poller", self._start_alert_poller(client, helper, state)))

        exit_code = self._watch()
        self._shutdown(helper)
        return exit_code

    def _start_alert_poller(
        self, client: Elasticsearch, helper: OpenCTIConnectorHelper, state: ConnectorState
    ) -> Worker:
        from elastic_connector.shell.alerts import AlertPoller

        poller = AlertPoller(
            config=self.config,
            client=client,
            api=helper.api,
            state=state,
            metrics=self.metrics,
            clock=self._clock,
        )
        poller.start()
        return poller

    def _watch(self) -> int:
        """Wait for a stop request; a dead thread ends the run with a failure."""
        while not self.stop_requested.wait(_WATCH_INTERVAL):
            dead = [name for name, worker in self._all_workers() if not worker.is_alive()]
            if dead:
                _log.critical("internal thread(s) stopped unexpectedly: %s", ", ".join(dead))
                return EXIT_FAILURE
            self.metrics.queue_depth.set(self._inbox.qsize())
            if self._reader is not None:
                connected = self._reader.status().connected
                self.metrics.stream_connected.set(1 if connected else 0)
                while connected and self._reconciler is not None:
                    try:
                        self._reconciler.request(self._when_connected.get_nowait())
                    except queue.Empty:
                        break
            if self._tracker is not None:
                self._tracker.tick()
            self._repeats.flush()
        return EXIT_OK

    def _all_workers(self) -> list[tuple[str, Worker]]:
        workers: list[tuple[str, Worker]] = list(self._workers)
        if self._pipeline is not None:
            workers.append(("pipeline", _Alive(self._pipeline.is_alive)))
        if self._reader is not None:
            workers.append(("stream reader", _Alive(self._reader.is_alive)))
        return workers

    def _shutdown(self, helper: OpenCTIConnectorHelper) -> None:
        # Every step gets what is left of one budget: a stalled Elasticsearch or OpenCTI must
        # not push the stop past the orchestrator's SIGKILL. Threads still busy when their
        # share runs out are daemon threads and have committed nothing: at worst the next
        # start replays a little.
        started = time.monotonic()
        deadline = started + SHUTDOWN_SECONDS

        def left(reserve: float = 0.0) -> float:
            return max(0.0, deadline - reserve - time.monotonic())

        # The sweep and the alert poller stop in parallel with the drain (each may wait for a
        # request in flight); their positions are saved by the final ping if they finish.
        stoppers = [
            threading.Thread(target=worker.stop, name=f"stop {name}", daemon=True)
            for name, worker in self._workers
        ]
        for stopper in stoppers:
            stopper.start()
        if self._reader is not None:
            self._reader.stop(timeout=min(2.0, left(_PING_RESERVE)))
        if self._pipeline is not None:
            self._pipeline.drain_and_stop(
                min(DRAIN_SECONDS, left(_PING_RESERVE + 1.0)), grace=min(1.0, left(_PING_RESERVE))
            )
        for stopper in stoppers:
            stopper.join(left(_PING_RESERVE))
        opencti.shutdown(helper, timeout=max(0.5, left()))
        self._stop_metrics_server()
        if self._tracker is not None:
            self._tracker.final()
        self._repeats.flush(every=True)
        _log.info("stopped in %.1f s", time.monotonic() - started)

    # --- metrics and health ---------------------------------------------------------------

    def _start_metrics_server(self) -> None:
        port = self.config.connector.metrics_port
        if port is None:
            return
        self._metrics_server = MetricsServer(
            self.config.connector.metrics_host, port, self.metrics, self.health
        )
        self._metrics_server.start()
        _log.info("metrics and health on port %d (/metrics, /healthz)", self._metrics_server.port)

    def _stop_metrics_server(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.stop()
            self._metrics_server = None

    def health(self) -> tuple[bool, dict[str, object]]:
        """(healthy, details) for ``/healthz``."""
        details: dict[str, object] = {"queue_depth": self._inbox.qsize()}
        healthy = True
        if self._reader is None or self._pipeline is None or self._tracker is None:
            return False, {**details, "phase": "starting"}
        progress = self._tracker.health()
        details["phase"] = progress["phase"]
        details["progress"] = progress
        stream = self._reader.status()
        writer = self._pipeline.status
        gap = stream.last_gap
        details["stream"] = {
            "connected": stream.connected,
            "last_event_id": stream.last_event_id,
            "committed_position": writer.committed_position,
            "recovering": stream.recovering,
            "consecutive_failures": stream.consecutive_failures,
            "last_error": self._masked(stream.last_error),
            "gaps": stream.gaps,
            "platform": None
            if stream.stream_info is None
            else {
                "first_event_id": stream.stream_info.first_event_id,
                "last_event_id": stream.stream_info.last_event_id,
                "size": stream.stream_info.stream_size,
            },
            "last_gap": None
            if gap is None
            else {"saved_position": gap.saved_position, "first_event_id": gap.first_event_id},
        }
        now = time.time()
        # Refusals an operator must fix (401/403...) are the pipeline's; outages still being
        # retried (refused connections, 429, 5xx) are the bulk writer's.
        retrying = self._writer.health() if self._writer is not None else None
        failing: list[float] = []
        if writer.failing_since is not None:
            failing.append(now - writer.failing_since)
        if retrying is not None and retrying.failing_for is not None:
            failing.append(retrying.failing_for)
        last_error = writer.last_error or (retrying.last_error if retrying else None)
        details["elasticsearch"] = {
            "last_ack_id": writer.last_ack_id,
            "last_ack_age_seconds": None
            if writer.last_ack_time is None
            else round(now - writer.last_ack_time, 1),
            "failing_for_seconds": round(max(failing), 1) if failing else None,
            "last_error": self._masked(last_error),
        }
        if self._reconciler is not None:
            reconcile = self._reconciler.status()
            last = reconcile.get("last")
            if isinstance(last, dict) and isinstance(last.get("error"), str):
                last["error"] = self._masked(last["error"])
            details["reconcile"] = reconcile
        if failing and max(failing) > UNHEALTHY_AFTER:
            healthy = False
        if stream.consecutive_failures >= 5:
            healthy = False
        dead = [name for name, worker in self._all_workers() if not worker.is_alive()]
        if dead:
            healthy = False
            details["dead_threads"] = dead
        return healthy, details

    def _masked(self, text: str | None) -> str | None:
        return None if text is None else self._mask.mask(text)

    def _gap_detected(self, gap: StreamGap) -> None:
        self.metrics.stream_gaps.inc()
        for listener in list(self.gap_listeners):
            try:
                listener(gap)
            except Exception:  # a listener's bug must not stop the stream
                _log.exception("a stream gap listener failed")


class _Alive:
    """Adapts an ``is_alive`` callable to the ``Worker`` protocol for the watchdog."""

    def __init__(self, alive: Callable[[], bool]) -> None:
        self._alive = alive

    def start(self) -> None:
        return

    def stop(self) -> None:
        return

    def is_alive(self) -> bool:
        return self._alive()


def warn_without_deletions(config: Config) -> None:
    """``live_stream_listen_delete: false``: the platform then sends no deletions, and
    indicators deleted in OpenCTI stay exported (and matched) until they expire."""
    if not config.connector.live_stream_listen_delete:
        _log.warning(
            "connector.live_stream_listen_delete is false: indicators deleted in OpenCTI are "
            "never removed from %s (they keep matching until they expire)",
            config.index,
        )


def _plan_apart(config: Config) -> bool:
    """Whether a backlog is planned in a second process: allowed, and a second CPU to run it."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux: the CPUs this process may use
    cpus = len(affinity(0)) if affinity is not None else os.cpu_count() or 1
    return config.connector.planning_process and cpus > 1


def _drain(inbox: queue.Queue[StreamMessage]) -> None:
    while True:
        try:
            inbox.get_nowait()
        except queue.Empty:
            return


def run(config: Config) -> int:
    """Run the connector until SIGTERM/SIGINT; returns the process exit code."""
    daemon = Daemon(config)
    daemon.install_signal_handlers()
    return daemon.run()
