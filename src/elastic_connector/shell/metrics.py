"""Prometheus metrics and the ``/healthz`` endpoint of the daemon.

Counters are labelled only with fixed, low-cardinality codes (``skip`` and ``delete`` codes from
the core), never with ids or free text. The HTTP server is the standard library's, on the
configured host and port; ``/metrics`` is the Prometheus text format, ``/healthz`` a JSON
snapshot that answers 200 while the connector is healthy and 503 otherwise.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

import msgspec
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from elastic_connector.core.monitoring.progress import Phase

_encoder: Final = msgspec.json.Encoder()
PHASES: Final = tuple(phase.value for phase in Phase)
"""The values of the ``phase`` gauge's label."""


class Metrics:
    """The connector's counters and gauges, in a registry of their own."""

    def __init__(self) -> None:
        # The `_created` series double the output and no dashboard uses them.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated in prometheus_client
        self.registry = CollectorRegistry()
        ns = "elastic_connector"
        r = self.registry
        self.events = Counter(
            "events", "Stream messages consumed, by event name", ["event"], namespace=ns, registry=r
        )
        self.documents_written = Counter(
            "documents_written", "Documents indexed in Elasticsearch", namespace=ns, registry=r
        )
        self.documents_deleted = Counter(
            "documents_deleted",
            "Documents deleted (or made sure absent), by reason code",
            ["code"],
            namespace=ns,
            registry=r,
        )
        self.skips = Counter(
            "skips",
            "Events that could not be used, by reason code",
            ["code"],
            namespace=ns,
            registry=r,
        )
        self.rejected = Counter(
            "documents_rejected",
            "Documents Elasticsearch refused (mapping/parsing errors)",
            namespace=ns,
            registry=r,
        )
        self.bulk_requests = Counter(
            "bulk_requests", "Bulk calls that completed", namespace=ns, registry=r
        )
        self.bulk_retries = Counter(
            "bulk_retries", "Bulk requests or items sent again", namespace=ns, registry=r
        )
        self.write_errors = Counter(
            "write_errors",
            "Write attempts that failed permanently and were retried later",
            namespace=ns,
            registry=r,
        )
        self.stream_lag = Gauge(
            "stream_lag_seconds",
            "Age of the newest received stream event minus that of the last acknowledged one",
            namespace=ns,
            registry=r,
        )
        self.queue_depth = Gauge(
            "queue_depth", "Stream messages received and not yet written", namespace=ns, registry=r
        )
        self.last_ack = Gauge(
            "last_ack_timestamp_seconds",
            "When Elasticsearch last acknowledged a batch (Unix time)",
            namespace=ns,
            registry=r,
        )
        self.stream_gaps = Counter(
            "stream_gaps",
            "Times the saved stream position was older than the oldest event OpenCTI still "
            "holds (events lost to trimming)",
            namespace=ns,
            registry=r,
        )
        self.stream_connected = Gauge(
            "stream_connected", "1 while the OpenCTI stream is connected", namespace=ns, registry=r
        )
        self.alerts = Counter(
            "alerts_processed", "Alerts read from Elasticsearch", namespace=ns, registry=r
        )
        self.sightings = Counter(
            "sightings_written", "Sightings created or updated in OpenCTI", namespace=ns, registry=r
        )
        self.sighting_errors = Counter(
            "sighting_errors",
            "Sightings OpenCTI refused permanently (skipped), by reason code",
            ["code"],
            namespace=ns,
            registry=r,
        )
        self.sighting_count_mismatches = Counter(
            "sighting_count_mismatches",
            "Sighting writes whose count OpenCTI did not apply as its upsert rules say "
            "(e.g. a sighting whose confidence an analyst raised)",
            namespace=ns,
            registry=r,
        )
        self.expired_deleted = Counter(
            "expired_deleted", "Indicators removed by the expiry sweep", namespace=ns, registry=r
        )
        self.phase = Gauge(
            "phase",
            "1 for the phase the connector is in (starting, replay, catch_up, live), 0 for the "
            "others",
            ["phase"],
            namespace=ns,
            registry=r,
        )
        self.set_phase(PHASES[0])
        self.progress_ratio = Gauge(
            "progress_ratio",
            "Share of the replay (by update time) or of the catch-up (by stream id) done, 0 to "
            "1; NaN when unknown or live",
            namespace=ns,
            registry=r,
        )
        self.progress_eta = Gauge(
            "progress_eta_seconds",
            "Estimated seconds until the replay or the catch-up is done; NaN when unknown",
            namespace=ns,
            registry=r,
        )
        self.progress_ratio.set(math.nan)
        self.progress_eta.set(math.nan)
        self.reconcile_runs = Counter(
            "reconcile_runs",
            "Reconciliations run, by what started them and how they ended",
            ["trigger", "outcome"],
            namespace=ns,
            registry=r,
        )
        self.reconcile_running = Gauge(
            "reconcile_running", "1 while a reconciliation runs", namespace=ns, registry=r
        )
        self.reconcile_last_success = Gauge(
            "reconcile_last_success_timestamp_seconds",
            "When the last reconciliation that finished ended (Unix time)",
            namespace=ns,
            registry=r,
        )
        self.reconcile_last_duration = Gauge(
            "reconcile_last_duration_seconds",
            "How long the last reconciliation took, finished or not",
            namespace=ns,
            registry=r,
        )
        self.reconcile_last_count = Gauge(
            "reconcile_last_count",
            "What the last reconciliation counted (indicators, documents, missing, stale, "
            "orphaned, written, deleted, skipped, superseded)",
            ["count"],
            namespace=ns,
            registry=r,
        )

    def set_phase(self, phase: str) -> None:
        """The ``phase`` gauge: 1 for ``phase``, 0 for every other one."""
        for name in PHASES:
            self.phase.labels(name).set(1 if name == phase else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


HealthProbe = Callable[[], tuple[bool, dict[str, object]]]
"""Returns (healthy, details) for ``/healthz``."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._answer(200, CONTENT_TYPE_LATEST, self.server.metrics.exposition())
        elif path in ("/healthz", "/health"):
            healthy, details = self.server.probe()
            body = _encoder.encode({"status": "ok" if healthy else "unhealthy", **details})
            self._answer(200 if healthy else 503, "application/json", body)
        else:
            self._answer(404, "text/plain", b"not found\n")

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Scrapes every few seconds are not worth a log line each.
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], metrics: Metrics, probe: HealthProbe) -> None:
        super().__init__(address, _Handler)
        self.metrics = metrics
        self.probe = probe


class MetricsServer:
    """Serves ``/metrics`` and ``/healthz`` in a background thread."""

    def __init__(self, host: str, port: int, metrics: Metrics, probe: HealthProbe) -> None:
        self._server = _Server((host, port), metrics, probe)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def unix_now() -> float:
    return time.time()
