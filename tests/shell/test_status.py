"""`elastic-connector status`: reads /healthz of the connector this configuration runs and says
plainly what it found (healthy, unhealthy with the details, nothing answering)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from elastic_connector.core.config import Config, ConnectorSettings, OpenCTISettings, Secret
from elastic_connector.demo.noida import free_port
from elastic_connector.shell.metrics import Metrics, MetricsServer
from elastic_connector.shell.status import (
    HealthAnswer,
    health_url,
    run_status,
    status_lines,
    summary_lines,
)


def config(port: int | None, host: str = "0.0.0.0") -> Config:
    return Config(
        opencti=OpenCTISettings(url="http://opencti.invalid", token=Secret("")),
        connector=ConnectorSettings(
            id="00000000-0000-0000-0000-000000000000", metrics_port=port, metrics_host=host
        ),
    )


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:9095/healthz"),
        ("::", "http://[::1]:9095/healthz"),
        ("127.0.0.1", "http://127.0.0.1:9095/healthz"),
        ("fd00::5", "http://[fd00::5]:9095/healthz"),
        ("metrics.local", "http://metrics.local:9095/healthz"),
    ],
)
def test_the_health_url_follows_the_metrics_settings(host: str, url: str) -> None:
    assert health_url(config(9095, host)) == url
    assert health_url(config(None)) is None


@pytest.fixture
def unhealthy_connector() -> Iterator[int]:
    details: dict[str, object] = {
        "queue_depth": 3,
        "stream": {"connected": False, "last_error": "HTTP 401", "last_event_id": None},
        "dead_threads": ["alert poller"],
    }
    server = MetricsServer("127.0.0.1", 0, Metrics(), lambda: (False, details))
    server.start()
    yield server.port
    server.stop()


def test_an_unhealthy_connector_is_exit_1_with_its_details(unhealthy_connector: int) -> None:
    out = io.StringIO()
    assert run_status(config(unhealthy_connector), out, healthcheck=False) == 1
    url = f"http://127.0.0.1:{unhealthy_connector}/healthz"
    assert out.getvalue().splitlines() == [
        f"FAIL unhealthy ({url} answered 503)",
        "     phase:      -",
        "     position:   at -; saved position - (none yet)",
        "     lag:        -",
        "     last write: - (nothing written yet)",
        "     last error: OpenCTI stream: HTTP 401",
        "     details:",
        "       queue_depth: 3",
        "       stream.connected: false",
        "       stream.last_error: HTTP 401",
        "       stream.last_event_id: -",
        '       dead_threads: ["alert poller"]',
    ]


def test_nothing_answering_is_said_plainly() -> None:
    out = io.StringIO()
    port = free_port()
    assert run_status(config(port), out, healthcheck=True) == 1
    assert out.getvalue() == (
        f"FAIL no connector answers on http://127.0.0.1:{port}/healthz: connection refused (is "
        "it running, with this connector.metrics_port?)\n"
    )


def test_without_a_metrics_port_there_is_nothing_to_ask() -> None:
    out = io.StringIO()
    assert run_status(config(None), out, healthcheck=False) == 1
    assert run_status(config(None), out, healthcheck=True) == 0
    assert out.getvalue().count("connector.metrics_port (CONNECTOR_METRICS_PORT) is not set") == 2


def test_something_else_on_the_port_is_not_taken_for_the_connector() -> None:
    class NotUs(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotUs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = io.StringIO()
        assert run_status(config(server.server_address[1]), out, healthcheck=True) == 1
        assert "answered HTTP 404: not the connector's health endpoint" in out.getvalue()
    finally:
        server.shutdown()
        server.server_close()


def test_status_lines_of_a_healthy_answer() -> None:
    answer = HealthAnswer(url="http://x/healthz", status=200, details={"status": "ok", "a": 1})
    lines = status_lines(answer)
    assert lines[0] == "OK   healthy (http://x/healthz)"
    assert lines[-2:] == ["     details:", "       a: 1"]


def test_the_summary_of_a_replay() -> None:
    details: dict[str, object] = {
        "phase": "replay",
        "progress": {
            "phase": "replay",
            "phase_seconds": 252.0,
            "share_done": 0.38,
            "eta_seconds": 790,
            "replayed_up_to": "2024-11-02T08:14:00Z",
            "recovery_date": "2025-01-01T00:00:00Z",
            "lag_seconds": None,
        },
        "stream": {"committed_position": None, "last_error": None},
        "elasticsearch": {"last_ack_id": "1730535240000-0", "last_ack_age_seconds": 2.1},
    }
    assert summary_lines(details) == [
        "     phase:      replay for 4m12s, 38% done by update time, ETA 13m10s",
        "     position:   replayed objects updated up to 2024-11-02T08:14:00Z of "
        "2025-01-01T00:00:00Z; saved position - (none yet)",
        "     lag:        -",
        "     last write: 2s ago (event 1730535240000-0)",
        "     last error: -",
    ]


def test_the_summary_of_a_catch_up_and_of_errors() -> None:
    details: dict[str, object] = {
        "phase": "catch_up",
        "progress": {
            "phase_seconds": 30,
            "share_done": 0.5,
            "stream_events_left": 12000,
            "eta_seconds": 30,
            "position": "3000-0",
            "catching_up_to": "5000-0",
            "lag_seconds": 7200,
        },
        "stream": {"committed_position": "2999-0", "last_error": "lost the OpenCTI stream"},
        "elasticsearch": {"last_error": "HTTP 403: missing privilege"},
    }
    assert summary_lines(details) == [
        "     phase:      catch_up for 30s, 50% done, about 12,000 stream events left, ETA 30s",
        "     position:   at 3000-0, catching up to 5000-0; saved position 2999-0",
        "     lag:        2h00m behind OpenCTI",
        "     last write: - (nothing written yet)",
        "     last error: Elasticsearch: HTTP 403: missing privilege; OpenCTI stream: lost the "
        "OpenCTI stream",
    ]
