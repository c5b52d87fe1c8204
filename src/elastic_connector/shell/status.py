"""`elastic-connector status`: ask a running connector how it is, through its ``/healthz``.

The daemon serves ``/healthz`` on ``connector.metrics_port`` (JSON; 200 healthy, 503 not). This
reads it from the same configuration, without curl (the container image has none), and prints
one verdict line, then what an operator asks first (phase and how far it is, stream position,
lag, last write, last error), then every detail the daemon gave, flattened
(``stream.connected: true``), so new details show up without changing this command. When
nothing answers on the configured port it says so plainly. Exit 0 healthy, 1 otherwise; the
container ``HEALTHCHECK`` runs it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final, TextIO

import msgspec
import urllib3

from elastic_connector.core.config import Config
from elastic_connector.core.monitoring.progress import format_duration
from elastic_connector.shell.opencti_reach import connection_reason

# A server listening on every address is asked on the loopback one.
_LOOPBACK_FOR: Final[Mapping[str, str]] = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104


class HealthAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What ``/healthz`` answered: ``status`` None when nothing answered (``error`` says why)."""

    url: str
    status: int | None = None
    details: Mapping[str, object] = {}
    error: str | None = None


def health_url(config: Config) -> str | None:
    """``/healthz`` of the connector this configuration runs; None without a metrics port."""
    port = config.connector.metrics_port
    if port is None:
        return None
    host = config.connector.metrics_host
    host = _LOOPBACK_FOR.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def fetch_health(url: str, timeout: float) -> HealthAnswer:
    """Ask ``url`` once (no proxy: the connector is local or on the pod's own network)."""
    pool = urllib3.PoolManager()
    try:
        response = pool.request("GET", url, timeout=urllib3.Timeout(total=timeout), retries=False)
    except (urllib3.exceptions.HTTPError, OSError) as error:
        return HealthAnswer(url=url, error=connection_reason(error))
    finally:
        pool.clear()
    try:
        body = msgspec.json.decode(response.data)
    except msgspec.DecodeError:
        body = None
    return HealthAnswer(
        url=url, status=response.status, details=body if isinstance(body, dict) else {}
    )


def _flattened(details: Mapping[str, object], prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in details.items():
        if isinstance(value, Mapping):
            yield from _flattened(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _shown(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def _at(details: Mapping[str, object], *path: str) -> object:
    """``details[path[0]][path[1]]...``; None where a level is missing."""
    value: object = details
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _phase_line(details: Mapping[str, object]) -> str:
    phase = _text(_at(details, "phase"))
    if phase is None:
        return "-"
    parts = [phase]
    seconds = _number(_at(details, "progress", "phase_seconds"))
    if seconds is not None:
        parts[0] += f" for {format_duration(seconds)}"
    share = _number(_at(details, "progress", "share_done"))
    if share is not None:
        basis = " by update time" if phase == "replay" else ""
        parts.append(f"{share * 100:.0f}% done{basis}")
    left = _number(_at(details, "progress", "stream_events_left"))
    if left is not None:
        parts.append(f"about {left:,.0f} stream events left")
    eta = _number(_at(details, "progress", "eta_seconds"))
    if eta is not None:
        parts.append(f"ETA {format_duration(eta)}")
    return ", ".join(parts)


def _position_line(details: Mapping[str, object]) -> str:
    if _at(details, "phase") == "replay":
        reached = _text(_at(details, "progress", "replayed_up_to"))
        until = _text(_at(details, "progress", "recovery_date"))
        where = f"replayed objects updated up to {reached}" if reached else "replay started"
        where += f" of {until}" if until and reached else ""
    else:
        where = f"at {_text(_at(details, 'progress', 'position')) or '-'}"
        target = _text(_at(details, "progress", "catching_up_to"))
        where += f", catching up to {target}" if target else ""
    saved = _text(_at(details, "stream", "committed_position"))
    return f"{where}; saved position {saved or '- (none yet)'}"


def _lag_line(details: Mapping[str, object]) -> str:
    lag = _number(_at(details, "progress", "lag_seconds"))
    return "-" if lag is None else f"{format_duration(lag)} behind OpenCTI"


def _last_write_line(details: Mapping[str, object]) -> str:
    age = _number(_at(details, "elasticsearch", "last_ack_age_seconds"))
    if age is None:
        return "- (nothing written yet)"
    event = _text(_at(details, "elasticsearch", "last_ack_id"))
    return f"{format_duration(age)} ago" + (f" (event {event})" if event else "")


def _last_error_line(details: Mapping[str, object]) -> str:
    errors = [
        f"{where}: {text}"
        for where, text in (
            ("Elasticsearch", _text(_at(details, "elasticsearch", "last_error"))),
            ("OpenCTI stream", _text(_at(details, "stream", "last_error"))),
        )
        if text
    ]
    return "; ".join(errors) or "-"


def summary_lines(details: Mapping[str, object]) -> list[str]:
    """Phase, position, lag, last write and last error, from ``/healthz``'s details ("-" for
    what a connector did not say)."""
    return [
        f"     phase:      {_phase_line(details)}",
        f"     position:   {_position_line(details)}",
        f"     lag:        {_lag_line(details)}",
        f"     last write: {_last_write_line(details)}",
        f"     last error: {_last_error_line(details)}",
    ]


def status_lines(answer: HealthAnswer) -> list[str]:
    """The verdict line, the summary, then one line per detail the connector gave."""
    if answer.status is None:
        return [
            f"FAIL no connector answers on {answer.url}: {answer.error} (is it running, with "
            "this connector.metrics_port?)"
        ]
    if answer.status == 200:
        verdict = f"OK   healthy ({answer.url})"
    elif answer.status == 503:
        verdict = f"FAIL unhealthy ({answer.url} answered 503)"
    else:
        return [
            f"FAIL {answer.url} answered HTTP {answer.status}: not the connector's health "
            "endpoint (check connector.metrics_port)"
        ]
    details = [
        f"       {key}: {_shown(value)}"
        for key, value in _flattened(answer.details)
        if key != "status"
    ]
    return [verdict, *summary_lines(answer.details), "     details:", *details]


def healthy(answer: HealthAnswer) -> bool:
    return answer.status == 200


def run_status(config: Config, out: TextIO, *, healthcheck: bool, timeout: float = 5.0) -> int:
    """Print the connector's health; 0 healthy, 1 not. ``healthcheck``: a configuration without
    a metrics port is nothing to ask, not a failure (exit 0)."""
    url = health_url(config)
    if url is None:
        out.write(
            "no health endpoint: connector.metrics_port (CONNECTOR_METRICS_PORT) is not set, so "
            "a running connector cannot be asked\n"
        )
        return 0 if healthcheck else 1
    answer = fetch_health(url, timeout)
    out.write("\n".join(status_lines(answer)) + "\n")
    return 0 if healthy(answer) else 1
