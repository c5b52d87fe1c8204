"""`elastic-connector check`: is this deployment ready? Answers in plain words.

Validates the configuration (the caller already did), then reaches OpenCTI (API, token, user
rights, the stream) and Elasticsearch (cluster, credentials, privileges, index, alerts index),
changing nothing on either side. Every line is ``OK``, ``WARN`` or ``FAIL``; the exit code is 1
when anything failed. Secret values never appear in the output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final, TextIO

import urllib3
from elastic_transport import ApiError, TransportError

from elastic_connector.core.config import Config, Mode
from elastic_connector.core.config_loading import misspelled_env_vars
from elastic_connector.core.stream_position import stream_headers, stream_url
from elastic_connector.shell.elastic import build_client, cluster_version, describe_error
from elastic_connector.shell.index_setup import TargetKind, check_privileges, target_kind
from elastic_connector.shell.logs import SecretMask, secret_values
from elastic_connector.shell.opencti import tls_problem
from elastic_connector.shell.stream import unauthorized_causes

_ME_QUERY: Final = "query Me { me { name capabilities { name } } }"


class Report:
    """Collects check lines; ``failed`` once any line is a failure."""

    def __init__(self, out: TextIO, mask: SecretMask) -> None:
        self._out = out
        self._mask = mask
        self.failed = False

    def line(self, status: str, subject: str, detail: str) -> None:
        if status == "FAIL":
            self.failed = True
        self._out.write(self._mask.mask(f"{status:<4} {subject}: {detail}") + "\n")

    def ok(self, subject: str, detail: str) -> None:
        self.line("OK", subject, detail)

    def warn(self, subject: str, detail: str) -> None:
        self.line("WARN", subject, detail)

    def fail(self, subject: str, detail: str) -> None:
        self.line("FAIL", subject, detail)


def run_check(config: Config, out: TextIO, environ: Mapping[str, str] | None = None) -> int:
    """Print the checks; 0 when nothing failed, 1 otherwise."""
    report = Report(out, SecretMask(secret_values(config)))
    report.ok(
        "config",
        f"mode {config.connector.mode.value}, index {config.index}, "
        f"max TLP {config.connector.max_tlp.label}",
    )
    for warning in misspelled_env_vars(os.environ if environ is None else environ):
        report.warn("config", str(warning))
    _check_opencti(config, report)
    _check_elasticsearch(config, report)
    return 1 if report.failed else 0


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def _check_opencti(config: Config, report: Report) -> None:
    from pycti import OpenCTIApiClient

    settings = config.opencti
    verify: bool | str = settings.ca_certs if settings.ca_certs else settings.ssl_verify
    try:
        api = OpenCTIApiClient(
            settings.url,
            settings.token.reveal(),
            ssl_verify=verify,
            perform_health_check=False,
            requests_timeout=30,
        )
        healthy = api.health_check()
    except (ValueError, OSError) as error:
        report.fail("opencti", f"cannot reach {settings.url}: {_first_line(error)}")
        return
    if not healthy:
        report.fail(
            "opencti",
            tls_problem(config)
            or f"{settings.url} did not answer a health check (URL or token wrong?)",
        )
        return
    try:
        me = api.query(_ME_QUERY)
    except ValueError as error:
        report.fail("opencti", f"the token was refused: {_first_line(error)}")
        return
    data = me.get("data")
    user = data.get("me") if isinstance(data, dict) else None
    capabilities: set[str] = set()
    name = "?"
    if isinstance(user, dict):
        name = str(user.get("name") or "?")
        for item in user.get("capabilities") or []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                capabilities.add(item["name"])
    report.ok("opencti", f"reached {settings.url} as user {name!r}")
    if "BYPASS" in capabilities:
        report.warn(
            "opencti",
            f"user {name!r} is an administrator (BYPASS): use a dedicated connector user with "
            "only the rights it needs (see README, 'OpenCTI user')",
        )
    if not settings.ssl_verify:
        report.warn("opencti", "TLS certificate verification is off")
    _check_stream(config, report)
    _check_deletions(config, report)


def _check_deletions(config: Config, report: Report) -> None:
    """Without deletions (``live_stream_listen_delete: false``) deleted indicators stay."""
    if not config.connector.live_stream_listen_delete:
        report.warn(
            "stream",
            "connector.live_stream_listen_delete is false: indicators deleted in OpenCTI are "
            f"never removed from {config.index} (they keep matching until they expire)",
        )


def _check_stream(config: Config, report: Report) -> None:
    """Open the stream and read until the platform says ``connected`` (or refuses)."""
    settings = config.opencti
    connector = config.connector
    url = stream_url(settings.url, connector.live_stream_id, None)
    headers = stream_headers(
        settings.token.reveal(),
        "0-0",
        listen_delete=connector.live_stream_listen_delete,
        no_dependencies=connector.live_stream_no_dependencies,
        with_inferences=connector.live_stream_with_inferences,
    )
    pool = urllib3.PoolManager(
        cert_reqs="CERT_REQUIRED" if settings.ssl_verify else "CERT_NONE",
        ca_certs=settings.ca_certs,
    )
    try:
        response = pool.request(
            "GET",
            url,
            headers=headers,
            preload_content=False,
            timeout=urllib3.Timeout(connect=10, read=15),
            retries=False,
        )
    except urllib3.exceptions.HTTPError as error:
        report.fail("stream", f"cannot open {url}: {_first_line(error)}")
        return
    try:
        if response.status == 401:
            report.fail(
                "stream",
                f"{url} refused the token (401): {unauthorized_causes(connector.live_stream_id)}",
            )
        elif response.status == 410:
            report.fail("stream", f"{url}: the live stream is stopped (410); start it in OpenCTI")
        elif response.status != 200:
            report.fail("stream", f"{url} answered HTTP {response.status}")
        else:
            chunk = response.read1(65536) if hasattr(response, "read1") else response.read(1024)
            if b"event: connected" in chunk or b"event:connected" in chunk:
                report.ok("stream", f"{url} is readable")
            else:
                report.warn("stream", f"{url} answered 200 but sent no 'connected' event yet")
    finally:
        response.release_conn()
        pool.clear()


def _check_elasticsearch(config: Config, report: Report) -> None:
    settings = config.elasticsearch
    hosts = settings.hosts
    where = f"cloud {config.cloud.id.split(':')[0]}" if config.cloud.id else ", ".join(hosts)
    client = build_client(settings, config.cloud)
    try:
        version = cluster_version(client)
    except (ApiError, TransportError, ValueError) as error:
        detail = (
            describe_error(error, hosts)
            if isinstance(error, ApiError | TransportError)
            else str(error)
        )
        report.fail("elasticsearch", f"cannot use {where}: {detail}")
        return
    report.ok("elasticsearch", f"reached {where} (version {version})")
    if not settings.ssl_verify:
        report.warn("elasticsearch", "TLS certificate verification is off")
    alerts_index = config.sightings.alerts_index if config.connector.mode is Mode.ECS else None
    try:
        privileges = check_privileges(
            client,
            config.index,
            alerts_index,
            need_setup=not settings.reduced_privileges,
        )
        if not privileges.verified:
            report.warn("privileges", privileges.note or "could not be verified")
        elif privileges.missing:
            for missing in privileges.missing:
                report.fail("privileges", missing)
        else:
            report.ok("privileges", "the connector's user has every privilege it needs")
        kind = target_kind(client, config.index)
    except (ApiError, TransportError) as error:
        report.fail("elasticsearch", describe_error(error, hosts))
        return
    if kind is TargetKind.DATA_STREAM:
        report.fail("index", f"{config.index} is a data stream; indicators need an index or alias")
    elif kind is TargetKind.MISSING:
        if settings.reduced_privileges:
            report.fail(
                "index", f"{config.index} does not exist: run `elastic-connector setup` once"
            )
        else:
            report.ok("index", f"{config.index} does not exist yet; it is created at start")
    else:
        report.ok("index", f"{config.index} exists ({kind.value})")
    if alerts_index is not None:
        try:
            client.search(
                index=alerts_index, size=0, allow_no_indices=True, ignore_unavailable=True
            )
            report.ok("alerts", f"{alerts_index} is readable")
        except (ApiError, TransportError) as error:
            report.fail("alerts", f"cannot read {alerts_index}: {describe_error(error, hosts)}")
