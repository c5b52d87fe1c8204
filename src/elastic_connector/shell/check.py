"""`elastic-connector check`: is this deployment ready? Answers in plain words.

Validates the configuration (the caller already did), then reaches OpenCTI (API, token, user
rights, the stream) and Elasticsearch (cluster, credentials, privileges, index, alerts index),
changing nothing on either side. Every line is ``OK``, ``WARN`` or ``FAIL``; the exit code is 1
when anything failed. Secret values never appear in the output, and neither do the client
libraries' log lines or tracebacks (the CLI silences them unless --verbose or log level debug):
each failure is one line naming the URL, the error and the option to fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, TextIO

import urllib3
from elastic_transport import ApiError, TransportError
from elasticsearch import Elasticsearch

from elastic_connector.core.config import Config, Mode
from elastic_connector.core.config.load import ConfigNote
from elastic_connector.core.elastic.privileges import alert_backing_patterns
from elastic_connector.core.stream.position import stream_headers, stream_url
from elastic_connector.shell.elastic import build_client, cluster_version, describe_error
from elastic_connector.shell.index_setup import TargetKind, check_privileges, target_kind
from elastic_connector.shell.logs import SecretMask, secret_values
from elastic_connector.shell.opencti_reach import opencti_problem
from elastic_connector.shell.output_setup import lookup_index_of

if TYPE_CHECKING:
    from pycti import OpenCTIApiClient
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


def run_check(
    config: Config,
    out: TextIO,
    notes: Iterable[ConfigNote] = (),
) -> int:
    """Print the checks; 0 when nothing failed, 1 otherwise. ``notes``: what loading the
    configuration had to say (earlier names used, ignored keys, misspelt variables)."""
    report = Report(out, SecretMask(secret_values(config)))
    report.ok(
        "config",
        f"mode {config.connector.mode.value}, index {config.index}, "
        f"max TLP {config.connector.max_tlp.label}",
    )
    for note in notes:
        report.line("WARN" if note.warning else "OK", "config", str(note))
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
    # pycti's own health check logs the client library's exception and answers only False:
    # ask the same question ourselves, to say what went wrong and what to change.
    problem = opencti_problem(config)
    if problem is not None:
        report.fail("opencti", problem)
        return
    try:
        api = OpenCTIApiClient(
            settings.url,
            settings.token.reveal(),
            ssl_verify=verify,
            perform_health_check=False,
            requests_timeout=30,
        )
        me = api.query(_ME_QUERY)
    except (ValueError, OSError) as error:
        report.fail(
            "opencti",
            f"OpenCTI at {settings.url} refused the connector user's query: "
            f"{_first_line(error)}; check opencti.token (OPENCTI_TOKEN)",
        )
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
    if config.connector.mode is Mode.ECS:
        check_sighting_marking(api, config, report)
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


_MARKINGS_QUERY: Final = (
    "query SightingMarking { me { capabilities { name } allowed_marking { standard_id } } }"
)


def check_sighting_marking(api: OpenCTIApiClient, config: Config, report: Report) -> None:
    """The marking ``sightings.tlp`` must be one the connector's user may use: OpenCTI refuses
    every sighting carrying another (``MISSING_REFERENCE_ERROR`` without ``unresolvedIds``)."""
    from elastic_connector.shell.sightings_writer import marking_id

    label = config.sightings.tlp.label
    try:
        answer = api.query(_MARKINGS_QUERY)
    except ValueError as error:
        report.warn(
            "sightings",
            f"cannot tell whether the user may use {label} (sightings.tlp): {_first_line(error)}",
        )
        return
    data = answer.get("data")
    me = data.get("me") if isinstance(data, dict) else None
    me = me if isinstance(me, dict) else {}
    capabilities = {
        item.get("name") for item in me.get("capabilities") or [] if isinstance(item, dict)
    }
    allowed = {
        item.get("standard_id")
        for item in me.get("allowed_marking") or []
        if isinstance(item, dict)
    }
    if "BYPASS" in capabilities or marking_id(config.sightings.tlp) in allowed:
        report.ok("sightings", f"the user may mark sightings {label} (sightings.tlp)")
        return
    report.fail(
        "sightings",
        f"the OpenCTI user may not use the marking {label} (sightings.tlp): OpenCTI would refuse "
        "every sighting; allow that marking to the user's group or change sightings.tlp",
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
        if _monitor_refused(error):
            report.warn("elasticsearch", _version_unknown(where))
        else:
            detail = (
                describe_error(error, hosts)
                if isinstance(error, ApiError | TransportError)
                else str(error)
            )
            if "check " not in detail:
                option = "cloud.id (CLOUD_ID)" if config.cloud.id else _HOSTS_OPTION
                detail += f"; check {option}"
            report.fail("elasticsearch", f"cannot use {where}: {detail}")
            return
    else:
        report.ok("elasticsearch", f"reached {where} (version {version})")
    if not settings.ssl_verify:
        report.warn("elasticsearch", "TLS certificate verification is off")
    alerts_index = config.sightings.alerts_index if config.connector.mode is Mode.ECS else None
    hints: list[tuple[str, str]] | None = None
    try:
        privileges = check_privileges(
            client,
            config.index,
            alerts_index,
            need_setup=not settings.reduced_privileges,
            lookup_index=lookup_index_of(config),
            dead_letter_index=settings.dead_letter_index,
        )
        if not privileges.verified:
            report.warn("privileges", privileges.note or "could not be verified")
        elif privileges.missing:
            for missing in privileges.missing:
                report.fail("privileges", missing)
            hints = _report_earlier_role(client, config, alerts_index, report)
        else:
            report.ok("privileges", "the connector's user has every privilege it needs")
        kind = target_kind(client, config.index)
    except (ApiError, TransportError) as error:
        if isinstance(error, ApiError) and error.meta.status == 403:
            if hints is None:
                hints = _report_earlier_role(client, config, alerts_index, report)
            if any(subject == "privileges" for subject, _ in hints):
                report.fail("index", f"{config.index}: access refused (HTTP 403), as said above")
                return
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
    _check_outputs(client, config, report)
    if alerts_index is not None:
        _check_alerts(client, alerts_index, hosts, report)


def _check_outputs(client: Elasticsearch, config: Config, report: Report) -> None:
    """The ES|QL lookup index and the dead-letter index, when configured (read-only)."""
    reduced = config.elasticsearch.reduced_privileges
    hosts = config.elasticsearch.hosts
    lookup = lookup_index_of(config)
    if config.elasticsearch_lookup.index and lookup is None:
        report.warn("lookup", "output.lookup.index is ignored in the stix mode")
    for subject, name in (
        ("lookup", lookup),
        ("dead letters", config.elasticsearch.dead_letter_index),
    ):
        if name is None:
            continue
        if name == config.index:
            report.fail(subject, f"{name} is also the indicator index: choose another name")
            continue
        try:
            kind = target_kind(client, name)
            modes = (
                _index_modes(client, name)
                if subject == "lookup" and kind is not TargetKind.MISSING
                else set()
            )
        except (ApiError, TransportError) as error:
            report.fail(subject, f"cannot read {name}: {describe_error(error, hosts)}")
            continue
        if kind is TargetKind.DATA_STREAM:
            report.fail(subject, f"{name} is a data stream; an index is needed")
        elif kind is TargetKind.MISSING:
            if reduced:
                report.fail(subject, f"{name} does not exist: run `elastic-connector setup` once")
            else:
                report.ok(subject, f"{name} does not exist yet; it is created at start")
        elif subject == "lookup" and modes != {"lookup"}:
            report.warn(
                subject,
                f"{name} is not a lookup-mode index (index.mode: {', '.join(sorted(modes))}): "
                "ES|QL LOOKUP JOIN refuses it; delete it and run `elastic-connector setup`",
            )
        else:
            report.ok(subject, f"{name} exists ({kind.value})")


def _index_modes(client: Elasticsearch, name: str) -> set[str]:
    settings = client.indices.get_settings(index=name).body
    modes: set[str] = set()
    for body in settings.values() if isinstance(settings, dict) else ():
        index = body.get("settings", {}).get("index", {}) if isinstance(body, dict) else {}
        modes.add(str(index.get("mode", "standard")) if isinstance(index, dict) else "standard")
    return modes or {"standard"}


# --- Elasticsearch: what a least-privilege key may not do, and reading alerts as the poller does


def _monitor_refused(error: BaseException) -> bool:
    """``GET /`` refused for lack of the ``monitor`` cluster privilege (an authenticated key)."""
    if not isinstance(error, ApiError) or error.meta.status != 403:
        return False
    body = error.body.get("error") if isinstance(error.body, dict) else None
    return isinstance(body, dict) and body.get("type") == "security_exception"


def _version_unknown(where: str) -> str:
    # The 403 itself proves the credentials work; Elasticsearch names its version only in the
    # body of GET / (no response header carries it), so the version stays unknown.
    return (
        f"reached {where}, credentials accepted; version unknown: GET / needs the monitor "
        "cluster privilege, which the connector does not need (it supports Elasticsearch 8.x "
        "and 9.x)"
    )


_CHECK_PIT_KEEP_ALIVE: Final = "1m"


def _check_alerts(
    client: Elasticsearch, alerts_index: str, hosts: tuple[str, ...], report: Report
) -> None:
    """Do what the alert poller does: open a point in time on ``alerts_index``, search through
    it, close it. A point in time keeps the concrete (backing) index names, so the search is
    authorized on those: a role with ``read`` on the alias only opens it and is then refused."""
    try:
        opened = client.open_point_in_time(index=alerts_index, keep_alive=_CHECK_PIT_KEEP_ALIVE)
    except (ApiError, TransportError) as error:
        if isinstance(error, ApiError) and error.meta.status == 404:
            report.warn(
                "alerts",
                f"{alerts_index} matches no index yet (Kibana creates it with the first alert "
                "of a detection rule); check again once rules have run",
            )
        elif isinstance(error, ApiError) and error.meta.status == 400:
            # A server without points in time: the poller reads with plain search_after.
            _check_plain_search(client, alerts_index, hosts, report, describe_error(error, hosts))
        else:
            report.fail(
                "alerts",
                f"cannot open a point in time on {alerts_index}: {describe_error(error, hosts)}",
            )
        return
    pit_id = opened.body.get("id") if isinstance(opened.body, dict) else None
    if not isinstance(pit_id, str) or not pit_id:
        report.fail("alerts", f"opening a point in time on {alerts_index} returned no id")
        return
    try:
        client.search(
            pit={"id": pit_id, "keep_alive": _CHECK_PIT_KEEP_ALIVE},
            size=0,
            track_total_hits=False,
        )
    except (ApiError, TransportError) as error:
        report.fail("alerts", _pit_search_refused(alerts_index, error, hosts))
        return
    finally:
        with contextlib.suppress(ApiError, TransportError):
            client.close_point_in_time(id=pit_id)
    report.ok("alerts", f"{alerts_index} is readable through a point in time")


def _check_plain_search(
    client: Elasticsearch, alerts_index: str, hosts: tuple[str, ...], report: Report, why: str
) -> None:
    try:
        client.search(index=alerts_index, size=0, allow_no_indices=True, ignore_unavailable=True)
    except (ApiError, TransportError) as error:
        report.fail("alerts", f"cannot read {alerts_index}: {describe_error(error, hosts)}")
        return
    report.warn(
        "alerts",
        f"{alerts_index} is readable, but without a point in time ({why}): alerts are read "
        "with plain search_after",
    )


def _pit_search_refused(
    alerts_index: str, error: ApiError | TransportError, hosts: tuple[str, ...]
) -> str:
    detail = describe_error(error, hosts)
    if not (isinstance(error, ApiError) and error.meta.status == 403):
        return f"cannot search {alerts_index} through a point in time: {detail}"
    backing = ", ".join(alert_backing_patterns(alerts_index)) or "the indices behind it"
    return (
        f"a point in time on {alerts_index} opens, but searching through it is refused: "
        f"missing index privilege read on {backing} (a point in time names the backing "
        f"indices, so read on the alias alone is not enough; see "
        f"docs/elasticsearch-privileges.md). Elasticsearch: {detail}"
    )


_HOSTS_OPTION: Final = "output.elasticsearch.hosts (ELASTICSEARCH_HOSTS)"

# What the earlier connector's README told users to grant its API key: `all` on `opencti*` and
# `read` on `.siem-signals-*` (the 7.x alerts index). Such a key reaches neither our default
# index nor Elastic 8's alerts index.
_EARLIER_INDEX_PATTERN: Final = "opencti*"
_EARLIER_ALERTS_PATTERN: Final = ".siem-signals-*"
_WRITE: Final = ("index", "delete", "create_index", "view_index_metadata")


def _earlier_role_hints(
    client: Elasticsearch, config: Config, alerts_index: str | None
) -> list[tuple[str, str]]:
    """(subject, sentence) for each way the credentials look like the earlier connector's
    documented role, and exactly what to change; empty when they do not (or cannot be asked)."""
    index = config.index
    asked = [
        {"names": [index, _EARLIER_INDEX_PATTERN], "privileges": list(_WRITE)},
    ]
    if alerts_index is not None:
        asked.append({"names": [alerts_index, _EARLIER_ALERTS_PATTERN], "privileges": ["read"]})
    try:
        answer = client.security.has_privileges(index=asked).body
    except (ApiError, TransportError):
        return []
    granted = answer.get("index") if isinstance(answer, dict) else None
    if not isinstance(granted, dict):
        return []

    def has_all(name: str, privileges: Iterable[str]) -> bool:
        entry = granted.get(name)
        return isinstance(entry, dict) and all(entry.get(p) is True for p in privileges)

    hints: list[tuple[str, str]] = []
    if not has_all(index, _WRITE) and has_all(_EARLIER_INDEX_PATTERN, _WRITE):
        hints.append(
            (
                "privileges",
                f"these credentials may write only to {_EARLIER_INDEX_PATTERN} indices (the "
                f"role the earlier connector's docs showed), not to {index}: either add "
                f"{index}* to the index names of their role (docs/elasticsearch-privileges.md), "
                f"or set output.elasticsearch.index (ELASTICSEARCH_INDEX) to a name under "
                f"{_EARLIER_INDEX_PATTERN}, e.g. opencti-indicators (Kibana's Intelligence page "
                "and prebuilt rules only read logs-ti_*: docs/migration.md)",
            )
        )
    if (
        alerts_index is not None
        and not has_all(alerts_index, ["read"])
        and has_all(_EARLIER_ALERTS_PATTERN, ["read"])
    ):
        hints.append(
            (
                "alerts",
                f"these credentials may read only {_EARLIER_ALERTS_PATTERN} (the 7.x alerts "
                f"index the earlier connector's docs granted), not {alerts_index}: grant read on "
                f"{alerts_index} and .internal.alerts-security.alerts-* "
                "(docs/elasticsearch-privileges.md), or set sightings.alerts_index "
                "(SIGHTINGS_ALERTS_INDEX) if your alerts are elsewhere",
            )
        )
    return hints


def _report_earlier_role(
    client: Elasticsearch, config: Config, alerts_index: str | None, report: Report
) -> list[tuple[str, str]]:
    hints = _earlier_role_hints(client, config, alerts_index)
    for subject, sentence in hints:
        report.fail(subject, sentence)
    return hints
