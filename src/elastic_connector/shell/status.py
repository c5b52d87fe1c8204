"""`elastic-connector status`: ask a running connector how it is, through its ``/healthz``.

The daemon serves ``/healthz`` on ``connector.metrics_port`` (JSON; 200 healthy, 503 not). This
reads it from the same configuration, without curl (the container image has none), and prints
one verdict line followed by the details the daemon gave, flattened (``stream.connected: true``),
so new details show up without changing this command. When nothing answers on the configured
port it says so plainly. Exit 0 healthy, 1 otherwise; the container ``HEALTHCHECK`` runs it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final, TextIO

import msgspec
import urllib3

from elastic_connector.core.config import Config
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


def status_lines(answer: HealthAnswer) -> list[str]:
    """The verdict line, then one line per detail the connector gave."""
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
    details = (
        f"     {key}: {_shown(value)}"
        for key, value in _flattened(answer.details)
        if key != "status"
    )
    return [verdict, *details]


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
