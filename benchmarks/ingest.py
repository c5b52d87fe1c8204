"""Section 3: end-to-end ingest through the real daemon, the connector alone, the endpoint alone.

One daemon run: the OpenCTI stand-in (in this process) holds ``n`` generated events;
``elastic-connector run`` is started as a subprocess in ``ecs_no_signals`` mode, reads the stream
from the start (no recovery replay: exactly the ``n`` events are served over SSE) and is timed
from its stream request to the acknowledgement of the last event (``/healthz`` reports the last
acknowledged id). The daemon's peak RSS is ``VmHWM`` from ``/proc/<pid>/status``, plus its
planning process's (``connector.planning_process``) when it has one; the daemon's RSS when
the stream starts is kept too, to tell start-up memory from what streaming adds.

Three views of one pipeline, to tell which part limits ingest:

* **connector runs**: the daemon against ``benchmarks.null_bulk`` (bulk requests answered at no
  cost, everything else forwarded to the real endpoint): the connector's own ceiling, and its
  memory over 10k and 100k events;
* **endpoint runs**: the daemon against noida-db (or the cluster named by
  ``ELASTICSEARCH_TEST_URL``), documents counted in the index afterwards;
* **endpoint alone**: the very bulk bodies the core makes of the same events (batches of
  ``bulk_max_actions``, one request at a time, like the connector) posted from this process with
  ``http.client``: the fastest the endpoint takes them.

*Profile*: one more run against the real endpoint under ``benchmarks.daemon_profile``
(``cProfile`` in every thread); the summary lists the functions with the most own time in the
writer thread and how its wall time splits between waiting for Elasticsearch, waiting for the
stream and planning.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import urlsplit

import msgspec

from benchmarks.generator import NOW, Event, stream_events
from benchmarks.mapping import SETTINGS, map_events
from benchmarks.null_bulk import NullBulkProxy
from elastic_connector.core.actions import Delete, Upsert
from elastic_connector.core.events import PlannerState, plan_frame
from elastic_connector.core.stream.ids import StreamId, parse_stream_id
from elastic_connector.demo.noida import NoidaServer, free_port
from elastic_connector.demo.opencti_standin import OpenCTIStandin

BULK_MAX_ACTIONS: Final = 500
"""The connector's default ``bulk_max_actions``."""
_TIMEOUT: Final = 600.0
_POLL: Final = 0.05
_PROFILE_THREAD: Final = "es-writer"
_READER_THREAD: Final = "opencti-stream"
# The directory that holds the `benchmarks` package: the profiled daemon imports it from there
# whatever its working directory (the package under test comes from the environment).
_BENCHMARKS_HOME: Final = Path(__file__).resolve().parents[1]


class IngestRun(msgspec.Struct, frozen=True):
    endpoint: str
    """``null`` (``benchmarks.null_bulk``: bulk requests cost nothing) or ``elasticsearch``."""
    events: int
    documents: int
    """Documents in the index once the last event is acknowledged (0 with ``null``)."""
    expected_documents: int
    """What the core's plan leaves in the index (upserts minus deletes, per ``_id``)."""
    seconds: float
    """From the daemon's stream request to the acknowledgement of the last event."""
    events_per_s: float
    docs_per_s: float
    """Bulk actions (upserts and deletes) acknowledged per second."""
    startup_seconds: float
    rss_at_stream_start_mb: float
    peak_rss_mb: float


class EndpointRun(msgspec.Struct, frozen=True):
    actions: int
    requests: int
    seconds: float
    docs_per_s: float


class ProfileEntry(msgspec.Struct, frozen=True):
    function: str
    own_s: float
    cumulative_s: float
    calls: int


class ProfileSummary(msgspec.Struct, frozen=True):
    endpoint: str
    """``elasticsearch`` or ``null`` (see ``IngestRun.endpoint``)."""
    events: int
    thread: str
    thread_wall_s: float
    waiting_for_elasticsearch_s: float
    """Time in the blocking HTTP call of each bulk request (the endpoint's share)."""
    waiting_for_stream_s: float
    """Time waiting for the reader's queue (the stream is slower than the writer)."""
    planning_s: float
    """Time in the pipeline's planning step in the writer thread (``plan_frame`` for each event:
    decode, policy, parse, map, encode the document)."""
    waiting_for_planning_s: float
    """Time waiting for the planning process's answers (and reading them): the planning the
    writer thread waits for when it plans in the other process."""
    encoding_s: float
    """Time in ``encode_action`` (NDJSON framing)."""
    top: tuple[ProfileEntry, ...]
    reader_wall_s: float
    """Wall time of the stream reader thread (``opencti-stream``)."""
    reader_top: tuple[ProfileEntry, ...]


class IngestResult(msgspec.Struct, frozen=True):
    endpoint: str
    """``noida-db <version>`` or ``elasticsearch (ELASTICSEARCH_TEST_URL)``."""
    connector_runs: tuple[IngestRun, ...]
    """Against the null bulk endpoint: what the connector alone can do, and its memory."""
    endpoint_runs: tuple[IngestRun, ...]
    """Against the real endpoint: end-to-end ingest."""
    endpoint_alone: EndpointRun
    """The bulk bodies of the smallest endpoint run's events, posted without the connector."""
    connector_share: float
    """Smallest endpoint run's docs/s over the endpoint alone's: 1.0, the connector adds nothing."""
    rss_growth_mb: float
    """Peak RSS of the largest connector run minus that of the smallest."""
    profile: ProfileSummary | None
    """The writer against the real endpoint: who waits for whom."""
    connector_profile: ProfileSummary | None
    """The same against the null bulk endpoint: where the connector's own time goes."""


# --- the endpoint -----------------------------------------------------------------------------


@contextlib.contextmanager
def elasticsearch_endpoint() -> Iterator[tuple[str, str]]:
    """(URL, description): ``ELASTICSEARCH_TEST_URL`` or a private noida-db."""
    url = os.environ.get("ELASTICSEARCH_TEST_URL")
    if url:
        yield url, "elasticsearch (ELASTICSEARCH_TEST_URL)"
        return
    server = NoidaServer()
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        # Memory-backed storage: the disk of a shared CI machine adds noise, not insight.
        server.remove()
        server.data_dir = Path(tempfile.mkdtemp(prefix="elastic-connector-noida-", dir=shm))
    with server:
        yield server.url, f"noida-db {_noida_version()}"


def _noida_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("noida-db")
    except PackageNotFoundError:
        return "?"


def _request(url: str, method: str = "GET", body: bytes | None = None) -> bytes:
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as response:
        data: bytes = response.read()
        return data


class _Count(msgspec.Struct):
    count: int


def _count(es_url: str, index: str) -> int:
    _request(f"{es_url}/{index}/_refresh", "POST")
    return msgspec.json.decode(_request(f"{es_url}/{index}/_count"), type=_Count).count


def _delete_index(es_url: str, index: str) -> None:
    """Remove the indices behind the alias ``index`` and the template set up for it (wildcard
    deletes are refused by Elasticsearch's defaults)."""
    from elastic_connector.shell.index_setup import template_name

    try:
        backing = msgspec.json.decode(_request(f"{es_url}/_alias/{index}"), type=dict[str, object])
    except (urllib.error.HTTPError, msgspec.DecodeError):
        backing = {}
    for name in backing or {index: None}:
        with contextlib.suppress(urllib.error.HTTPError):
            _request(f"{es_url}/{name}", "DELETE")
    with contextlib.suppress(urllib.error.HTTPError):
        _request(f"{es_url}/_index_template/{template_name(index)}", "DELETE")


# --- the daemon -------------------------------------------------------------------------------


def _daemon_env(
    standin: OpenCTIStandin, es_url: str, index: str, metrics_port: int, via: str | None
) -> dict[str, str]:
    """The daemon's whole environment (nothing stray is inherited); ``via`` replaces the host
    of ``es_url`` (its credentials are kept)."""
    # PYTHONFAULTHANDLER: `kill -ABRT` a stuck daemon and its threads' stacks go to the log.
    keep = (
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TMPDIR",
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "SYSTEMROOT",
        "PYTHONFAULTHANDLER",
    )
    env = {name: os.environ[name] for name in keep if name in os.environ}
    parts = urlsplit(es_url)
    port = parts.port or (443 if parts.scheme == "https" else 9200)
    host = via or f"{parts.scheme}://{parts.hostname}:{port}"
    env.update(
        {
            "NO_PROXY": "127.0.0.1,localhost",
            "OPENCTI_URL": standin.url,
            "OPENCTI_TOKEN": standin.token,
            "CONNECTOR_ID": str(uuid.uuid4()),
            "CONNECTOR_MODE": "ecs_no_signals",
            "CONNECTOR_LOG_LEVEL": "warning",
            "CONNECTOR_LIVE_STREAM_RECOVER_ISO_DATE": "false",
            "CONNECTOR_METRICS_PORT": str(metrics_port),
            "CONNECTOR_METRICS_HOST": "127.0.0.1",
            "ELASTICSEARCH_HOSTS": host,
            "ELASTICSEARCH_INDEX": index,
        }
    )
    if parts.username:
        env["ELASTICSEARCH_USERNAME"] = parts.username
        env["ELASTICSEARCH_PASSWORD"] = parts.password or ""
    for name in ("API_KEY", "CA_CERTS"):
        value = os.environ.get(f"ELASTICSEARCH_TEST_{name}")
        if value:
            env[f"ELASTICSEARCH_{name}"] = value
    return env


def _status_kib(pid: int, field: str) -> float:
    """``VmRSS``/``VmHWM`` of a process, in kB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        return 0.0
    return 0.0


def _peak_with_children_kib(pid: int) -> float:
    """``VmHWM`` of a process plus its children's (the daemon's planning process, started by
    its writer thread: each thread lists the children it started)."""
    children: list[str] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += (task / "children").read_text().split()
        except OSError:
            continue
    return _status_kib(pid, "VmHWM") + sum(_status_kib(int(c), "VmHWM") for c in children)


class _Health(msgspec.Struct):
    elasticsearch: dict[str, object] | None = None


def _last_ack(metrics_port: int) -> str | None:
    try:
        body = _request(f"http://127.0.0.1:{metrics_port}/healthz")
    except urllib.error.HTTPError as error:  # 503 while unhealthy still carries the details
        body = error.read()
    except OSError:
        return None
    try:
        health = msgspec.json.decode(body, type=_Health)
    except msgspec.DecodeError:
        return None
    ack = (health.elasticsearch or {}).get("last_ack_id")
    return ack if isinstance(ack, str) else None


def _at_or_past(ack: str | None, last: StreamId | None) -> bool:
    acked = None if ack is None else parse_stream_id(ack)
    return acked is not None and last is not None and acked >= last


def _publish(standin: OpenCTIStandin, events: Sequence[Event]) -> None:
    for event in events:
        ms = int(event.id.partition("-")[0])
        standin.publish_raw(event.event, event.data, at_ms=ms)


def _run_daemon(
    events: Sequence[Event],
    es_url: str,
    *,
    bulk_url: str | None = None,
    profile_dir: Path | None = None,
) -> IngestRun:
    """One daemon run over ``events``; with ``bulk_url`` (a ``NullBulkProxy`` in front of
    ``es_url``) the daemon talks to that instead and nothing is stored."""
    index = f"bench-{uuid.uuid4().hex[:8]}"
    metrics_port = free_port()
    with OpenCTIStandin(heartbeat_interval=1.0) as standin:
        _publish(standin, events)
        last = parse_stream_id(events[-1].id)
        command = [sys.executable, "-m"]
        env = _daemon_env(standin, es_url, index, metrics_port, bulk_url)
        if profile_dir is not None:
            command += ["benchmarks.daemon_profile", str(profile_dir)]
            inherited = env.get("PYTHONPATH")
            home = str(_BENCHMARKS_HOME)
            env["PYTHONPATH"] = f"{home}{os.pathsep}{inherited}" if inherited else home
        else:
            command += ["elastic_connector.cli"]
        command.append("run")
        started = time.monotonic()
        # A file, not a pipe: nobody reads a pipe until the run ends, and once its buffer is
        # full the daemon's next log line blocks it (the run then hangs until the timeout).
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            stream_start = _wait_stream_request(standin, process, log)
            rss_start = _status_kib(process.pid, "VmRSS")
            deadline = time.monotonic() + _TIMEOUT
            # At or past the last event: a heartbeat that arrives after it is acknowledged in
            # turn (in the same batch, or before the next poll), and its id is the later one.
            while not _at_or_past(_last_ack(metrics_port), last):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(_failure(process, log, "did not acknowledge the last event"))
                time.sleep(_POLL)
            finished = time.monotonic()
            peak = _peak_with_children_kib(process.pid)
        finally:
            _stop(process)
            log.close()
        documents = _count(es_url, index)
        _delete_index(es_url, index)
    actions, expected = _expected(events)
    seconds = max(finished - stream_start, 1e-9)
    return IngestRun(
        endpoint="elasticsearch" if bulk_url is None else "null",
        events=len(events),
        documents=documents,
        expected_documents=expected,
        seconds=seconds,
        events_per_s=len(events) / seconds,
        docs_per_s=actions / seconds,
        startup_seconds=stream_start - started,
        rss_at_stream_start_mb=rss_start / 1024,
        peak_rss_mb=peak / 1024,
    )


def _expected(events: Sequence[Event]) -> tuple[int, int]:
    """(upserts and deletes, documents left in the index) the core plans for ``events``."""
    state = PlannerState()
    alive: set[str] = set()
    actions = 0
    for event in events:
        plan = plan_frame(event.id, event.event, event.data, state, SETTINGS, NOW)
        state = plan.state
        for action in plan.actions:
            if isinstance(action, Upsert):
                alive.add(action.id)
            elif isinstance(action, Delete):
                alive.discard(action.id)
            else:
                continue
            actions += 1
    return actions, len(alive)


def _wait_stream_request(
    standin: OpenCTIStandin, process: subprocess.Popen[bytes], log: IO[bytes]
) -> float:
    deadline = time.monotonic() + 120
    while not standin.stream_requests:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(_failure(process, log, "never requested the stream"))
        time.sleep(0.01)
    return time.monotonic()


def _failure(process: subprocess.Popen[bytes], log: IO[bytes], what: str) -> str:
    if process.poll() is None:
        _stop(process)
    log.seek(0)
    tail = log.read()[-3000:].decode(errors="replace")
    return f"the daemon {what} (exit {process.returncode}):\n{tail}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


# --- the endpoint alone -----------------------------------------------------------------------


class _BulkItem(msgspec.Struct):
    status: int


class _BulkAnswer(msgspec.Struct):
    items: list[dict[str, _BulkItem]] = msgspec.field(default_factory=list)


def endpoint_alone(events: Sequence[Event], es_url: str) -> EndpointRun:
    """Post the NDJSON the core makes of ``events`` in batches of ``BULK_MAX_ACTIONS``, one
    request at a time, to a fresh index set up as the daemon sets it up."""
    from elastic_connector.core.config import CloudSettings, ElasticsearchSettings, Mode, Secret
    from elastic_connector.core.events import PlanSettings
    from elastic_connector.shell.daemon import index_mappings
    from elastic_connector.shell.elastic import build_client
    from elastic_connector.shell.index_setup import ensure_setup

    index = f"bench-{uuid.uuid4().hex[:8]}"
    lines, _ = map_events(events, PlanSettings(mode=Mode.ECS_NO_SIGNALS, index=index))
    parts = urlsplit(es_url)
    api_key = os.environ.get("ELASTICSEARCH_TEST_API_KEY")
    host = f"{parts.scheme}://{parts.hostname}:{parts.port or 9200}"
    client = build_client(
        ElasticsearchSettings(
            hosts=(host,),
            username=parts.username,
            password=Secret(parts.password) if parts.password else None,
            api_key=Secret(api_key) if api_key else None,
            ca_certs=os.environ.get("ELASTICSEARCH_TEST_CA_CERTS") or None,
        ),
        CloudSettings(),
    )
    report = ensure_setup(client, index=index, mappings=index_mappings(Mode.ECS_NO_SIGNALS))
    bodies = [
        b"".join(lines[start : start + BULK_MAX_ACTIONS])
        for start in range(0, len(lines), BULK_MAX_ACTIONS)
    ]
    path = "/_bulk?filter_path=errors,items.*.status" + (
        "&require_alias=true" if report.require_alias else ""
    )
    headers = {"content-type": "application/x-ndjson", "accept": "application/json"}
    if parts.username:
        token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        headers["authorization"] = f"Basic {token}"
    elif api_key:
        headers["authorization"] = f"ApiKey {api_key}"
    connection: http.client.HTTPConnection = (
        http.client.HTTPSConnection(parts.hostname or "", parts.port or 443)
        if parts.scheme == "https"
        else http.client.HTTPConnection(parts.hostname or "", parts.port or 9200)
    )
    try:
        start = time.perf_counter()
        for body in bodies:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            _check_bulk(response.status, answer)
        seconds = max(time.perf_counter() - start, 1e-9)
    finally:
        connection.close()
        client.close()
    _delete_index(es_url, index)
    return EndpointRun(
        actions=len(lines), requests=len(bodies), seconds=seconds, docs_per_s=len(lines) / seconds
    )


def _check_bulk(status: int, answer: bytes) -> None:
    """Every item applied (a delete of an absent document counts as applied)."""
    if status != 200:
        raise RuntimeError(f"bulk request failed: HTTP {status} {answer[:300]!r}")
    for item in msgspec.json.decode(answer, type=_BulkAnswer).items:
        for op, result in item.items():
            if not (200 <= result.status < 300 or (op == "delete" and result.status == 404)):
                raise RuntimeError(f"bulk item failed: {op} HTTP {result.status}")


# --- the profile ------------------------------------------------------------------------------


def _label(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if filename == "~":
        return name
    for marker in ("site-packages/", "src/", "lib/python3."):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({name})"


def _table(stats_file: Path) -> tuple[dict[tuple[str, int, str], tuple[Any, ...]], float]:
    stats = pstats.Stats(str(stats_file))
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]  # untyped in pstats
    return table, float(getattr(stats, "total_tt", 0.0))


def _top(table: dict[tuple[str, int, str], tuple[Any, ...]], top: int) -> tuple[ProfileEntry, ...]:
    entries = sorted(table.items(), key=lambda item: float(item[1][2]), reverse=True)
    return tuple(
        ProfileEntry(_label(key), float(row[2]), float(row[3]), int(row[1]))
        for key, row in entries[:top]
    )


def _summarise(directory: Path, endpoint: str, events: int, top: int) -> ProfileSummary:
    table, wall = _table(directory / f"{_PROFILE_THREAD}.prof")
    reader_file = directory / f"{_READER_THREAD}.prof"
    reader_table, reader_wall = _table(reader_file) if reader_file.exists() else ({}, 0.0)

    def cumulative_in(filename: str, function: str) -> float:
        # A compiled function is a built-in to cProfile: ``<built-in method module.name>``.
        module = filename.removesuffix(".py")
        return max(
            (
                float(row[3])
                for key, row in table.items()
                if (key[2] == function and key[0].endswith(filename))
                or key[2].endswith(f".{module}.{function}>")
            ),
            default=0.0,
        )

    return ProfileSummary(
        endpoint=endpoint,
        events=events,
        thread=_PROFILE_THREAD,
        thread_wall_s=wall,
        waiting_for_elasticsearch_s=cumulative_in("bulk.py", "_send"),
        waiting_for_stream_s=cumulative_in("pipeline.py", "_collect"),
        # The pipeline's planning step: ``core.events.plan_frame`` itself has no Python frame
        # in the compiled build, so cProfile would give it no time there.
        planning_s=cumulative_in("pipeline.py", "_plan"),
        waiting_for_planning_s=cumulative_in("planning.py", "result"),
        encoding_s=cumulative_in("bulk_lines.py", "encode_action"),
        top=_top(table, top),
        reader_wall_s=reader_wall,
        reader_top=_top(reader_table, min(top, 8)),
    )


def profile_daemon(
    events: Sequence[Event], es_url: str, *, bulk_url: str | None = None, top: int = 15
) -> ProfileSummary:
    """Run the daemon under cProfile and summarise its writer (and reader) thread."""
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as directory:
        out = Path(directory)
        _run_daemon(events, es_url, bulk_url=bulk_url, profile_dir=out)
        stats_file = out / f"{_PROFILE_THREAD}.prof"
        deadline = time.monotonic() + 10
        while not stats_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not stats_file.exists():
            raise RuntimeError(f"no profile of the {_PROFILE_THREAD} thread was written")
        endpoint = "elasticsearch" if bulk_url is None else "null"
        return _summarise(out, endpoint, len(events), top)


# --- the section --------------------------------------------------------------------------------


def run_ingest(
    sizes: Sequence[int],
    endpoint_sizes: Sequence[int],
    profile_events: int,
    seed: int,
    *,
    with_profile: bool = True,
) -> IngestResult:
    """Section 3: the daemon against the null bulk endpoint for each of ``sizes``, against the
    real endpoint for each of ``endpoint_sizes``, the endpoint alone, and a profiled run."""
    all_events = stream_events(max(*sizes, *endpoint_sizes, profile_events), seed)
    with elasticsearch_endpoint() as (es_url, description):
        with NullBulkProxy(es_url) as proxy:
            connector_runs = tuple(
                _run_daemon(all_events[:n], es_url, bulk_url=proxy.url) for n in sorted(sizes)
            )
            connector_profile = (
                profile_daemon(all_events[:profile_events], es_url, bulk_url=proxy.url)
                if with_profile
                else None
            )
        endpoint_runs = tuple(_run_daemon(all_events[:n], es_url) for n in sorted(endpoint_sizes))
        # Same documents and index size as the smallest endpoint run: the rates compare.
        alone = endpoint_alone(all_events[: min(endpoint_sizes)], es_url)
        summary = profile_daemon(all_events[:profile_events], es_url) if with_profile else None
    return IngestResult(
        endpoint=description,
        connector_runs=connector_runs,
        endpoint_runs=endpoint_runs,
        endpoint_alone=alone,
        connector_share=endpoint_runs[0].docs_per_s / alone.docs_per_s,
        rss_growth_mb=connector_runs[-1].peak_rss_mb - connector_runs[0].peak_rss_mb,
        profile=summary,
        connector_profile=connector_profile,
    )
