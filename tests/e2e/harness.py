"""End-to-end harness: the real ``elastic-connector`` process against the OpenCTI stand-in and
Elasticsearch (noida-db, or a real cluster with ``ELASTICSEARCH_TEST_URL``).

Pieces, usable on their own:

* ``connector_environment``: the exact environment of a connector process. Nothing is inherited
  but ``PATH``/``HOME``/locale/temp dir (and pytest-cov's variables, so subprocess coverage
  works): pycti reads ``OPENCTI_*``/``CONNECTOR_*`` variables itself, so a stray one in the test
  runner's environment would silently change what is tested.
* ``ConnectorProcess``: one subprocess (``run``, ``check``, ``setup``...) in its own session, its
  stdout and stderr captured to one log file; signals, exit codes, waiting on log lines, and the
  ``/metrics`` and ``/healthz`` endpoints when a metrics port is configured.
* ``ConnectorHarness``: one deployment under test — a stand-in, an index, a connector id and a
  working directory. ``start()`` runs the daemon and waits until it reads the stream;
  ``start()`` again after ``terminate()``/``kill()`` is a restart with the same connector id,
  so the daemon resumes from the state the stand-in stored. It reads the index document by
  document (``documents()``, which fails on a duplicated ``_id``) and waits for the daemon to
  acknowledge a given stream event (``wait_for_ack``) — the reliable way to know that an event
  which changes nothing visible (a delete of an absent document) has been processed.

* ``e2e_harness`` (fixture): ``e2e_harness(mode, env={...})`` builds harnesses, each with its
  own stand-in (heartbeats every 0.2 s) and index (``<es_prefix>-<n>``); all are torn down.
  Point a harness at the ``faulty_proxy`` by replacing ``harness.es_settings`` before
  ``start()``; stop/start its stand-in to simulate an OpenCTI outage (the URL is kept).

Every wait has a timeout and fails the test with the tail of the daemon's log.

Stream ids: a first start (no saved state) makes the platform replay the knowledge base as
``create`` events with ids ``<update ms>-0``, not the ids ``publish`` returned; wait on the
index (``wait_for_documents``) rather than on an event id when a test depends on that replay.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self, TypeVar

import pytest
from elasticsearch import Elasticsearch

from elastic_connector.core.config import ElasticsearchSettings
from elastic_connector.core.stream import parse_stream_id
from elastic_connector.demo.noida import free_port
from elastic_connector.demo.opencti_data import OPENCTI_EXTENSION, Json, now_iso
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from tests.support.elasticsearch import delete_everything_named

__all__ = [
    "START_TIMEOUT",
    "ConnectorHarness",
    "ConnectorProcess",
    "Hit",
    "connector_environment",
    "dig",
    "doc_id",
    "documents_of",
    "e2e_harness",
    "elasticsearch_environment",
    "index_hits",
    "is_at_or_after",
    "module_index_cleanup",
    "parse_metrics",
    "wait_for",
]

START_TIMEOUT: Final = 30.0
"""Importing pycti alone takes ~2 s; a loaded CI machine may be several times slower."""
WAIT_TIMEOUT: Final = 15.0
STOP_TIMEOUT: Final = 10.0
"""What the connector promises for a SIGTERM (the orchestrator's grace period is 10 s)."""
_POLL: Final = 0.05
_INHERITED: Final = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
_INHERITED_PREFIXES: Final = ("COV_CORE_", "COVERAGE_")
_LOG_TAIL: Final = 4000
_MAX_HITS: Final = 10_000

T = TypeVar("T")


# --- waiting -------------------------------------------------------------------------------


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float = WAIT_TIMEOUT,
    what: str,
    context: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until it returns something other than None (or False); return it.

    Fails the test after ``timeout`` seconds, naming ``what`` and appending ``context()``
    (typically the daemon's log tail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{context()}" if context is not None else ""
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}{extra}")
        time.sleep(_POLL)


def is_at_or_after(event_id: str | None, target: str) -> bool:
    """Stream ids compare as (ms, seq) integer pairs, never as strings."""
    if event_id is None:
        return False
    got, wanted = parse_stream_id(event_id), parse_stream_id(target)
    return got is not None and wanted is not None and got >= wanted


def doc_id(stix_object: Mapping[str, object]) -> str:
    """The ``_id`` the connector gives an object's document: its OpenCTI internal id."""
    extensions = stix_object.get("extensions")
    if isinstance(extensions, Mapping):
        extension = extensions.get(OPENCTI_EXTENSION)
        if isinstance(extension, Mapping) and isinstance(extension.get("id"), str):
            return str(extension["id"])
    return str(stix_object["id"])


def updated(stix: Mapping[str, object], **changes: object) -> Json:
    """The object after an update in OpenCTI: same ids, new values, newer ``modified`` (and
    the OpenCTI extension's ``updated_at``)."""
    result = copy.deepcopy(dict(stix))
    result.update(changes)
    stamp = now_iso()
    result["modified"] = stamp
    extensions = result["extensions"]
    assert isinstance(extensions, dict)
    extensions[OPENCTI_EXTENSION]["updated_at"] = stamp
    return result


# --- environment ---------------------------------------------------------------------------


def elasticsearch_environment(settings: ElasticsearchSettings) -> dict[str, str]:
    """``ELASTICSEARCH_*`` variables reaching the cluster described by ``settings``."""
    env = {"ELASTICSEARCH_HOSTS": ",".join(settings.hosts)}
    if settings.username is not None:
        env["ELASTICSEARCH_USERNAME"] = settings.username
    if settings.password is not None:
        env["ELASTICSEARCH_PASSWORD"] = settings.password.reveal()
    if settings.api_key is not None:
        env["ELASTICSEARCH_API_KEY"] = settings.api_key.reveal()
    if settings.ca_certs is not None:
        env["ELASTICSEARCH_CA_CERTS"] = settings.ca_certs
    return env


def connector_environment(
    *,
    opencti_url: str,
    opencti_token: str,
    connector_id: str,
    elasticsearch: ElasticsearchSettings,
    index: str,
    mode: str = "ecs_no_signals",
    metrics_port: int | None = None,
    overrides: Mapping[str, str | None] | None = None,
) -> dict[str, str]:
    """The complete environment of a connector process; ``overrides`` set variables, or
    remove them with None. Flushes fast (0.2 s) so tests do not wait for batches."""
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env.update(
        {name: value for name, value in os.environ.items() if name.startswith(_INHERITED_PREFIXES)}
    )
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            # Loopback must never go through a proxy configured on the machine.
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "OPENCTI_URL": opencti_url,
            "OPENCTI_TOKEN": opencti_token,
            "CONNECTOR_ID": connector_id,
            "CONNECTOR_MODE": mode,
            "CONNECTOR_LOG_LEVEL": "info",
            "ELASTICSEARCH_INDEX": index,
            "ELASTICSEARCH_BULK_FLUSH_INTERVAL": "0.2",
            "ELASTICSEARCH_RETRY_MAX_BACKOFF": "2",
            **elasticsearch_environment(elasticsearch),
        }
    )
    if metrics_port is not None:
        env["CONNECTOR_METRICS_PORT"] = str(metrics_port)
        env["CONNECTOR_METRICS_HOST"] = "127.0.0.1"
    for name, value in (overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


# --- metrics --------------------------------------------------------------------------------

_SAMPLE: Final = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition -> ``{'name{label="v"}': value}`` (``name`` alone when the
    series has no labels)."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or line.startswith("#"):
            continue
        name, labels, value = match.groups()
        samples[name + (labels or "")] = float(value)
    return samples


def _series(name: str, labels: Mapping[str, str]) -> str:
    if not labels:
        return name
    inner = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return f"{name}{{{inner}}}"


# --- one process ------------------------------------------------------------------------------


class ConnectorProcess:
    """One ``python -m elastic_connector <args>`` subprocess; output in ``log_path``."""

    def __init__(
        self,
        args: tuple[str, ...],
        env: Mapping[str, str],
        workdir: Path,
        log_path: Path,
        *,
        metrics_port: int | None = None,
    ) -> None:
        self.args = args
        self.env = dict(env)
        self.workdir = workdir
        self.log_path = log_path
        self.metrics_port = metrics_port
        self._process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> Self:
        with self.log_path.open("ab") as log:
            # Own session: a signal meant for the test runner never reaches the connector,
            # and the connector's signals reach only it.
            self._process = subprocess.Popen(
                [sys.executable, "-m", "elastic_connector", *self.args],
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        return self

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the process was not started")
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # --- output ------------------------------------------------------------------------------

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr, interleaved)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def lines(self) -> list[str]:
        return self.output().splitlines()

    def tail(self) -> str:
        text = self.output()
        code = self._process.poll() if self._process is not None else None
        state = "running" if code is None else f"exited with {code}"
        return f"--- {' '.join(self.args)} ({state}), {self.log_path} ---\n{text[-_LOG_TAIL:]}"

    def wait_for_line(
        self, pattern: str | re.Pattern[str], *, timeout: float = WAIT_TIMEOUT
    ) -> re.Match[str]:
        """The first output line matching ``pattern`` (a regex), once it is written."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern

        def probe() -> re.Match[str] | None:
            for line in self.lines():
                match = regex.search(line)
                if match is not None:
                    return match
            if not self.running and self._process is not None:
                pytest.fail(f"the process exited before logging {regex.pattern!r}\n{self.tail()}")
            return None

        return wait_for(
            probe, timeout=timeout, what=f"log line {regex.pattern!r}", context=self.tail
        )

    # --- signals and exit -----------------------------------------------------------------------

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """The exit code; fails the test if the process is still running after ``timeout``."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the process did not exit within {timeout:g} s\n{self.tail()}")

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then the exit code (within ``timeout``, or the test fails)."""
        if self.running:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> int:
        """SIGKILL: no shutdown code runs, as on an OOM kill or a node loss."""
        if self.running:
            self.process.kill()
        return self.process.wait(STOP_TIMEOUT)

    def close(self) -> None:
        """Make sure the process is gone (used at teardown; never fails)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(STOP_TIMEOUT)

    # --- metrics and health ---------------------------------------------------------------------

    def _get(self, path: str) -> tuple[int, bytes]:
        if self.metrics_port is None:
            raise RuntimeError("no metrics port configured for this process")
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())

    def health(self) -> tuple[int, dict[str, object]] | None:
        """``(HTTP status, JSON body)`` of ``/healthz``; None while the server is not up."""
        try:
            status, body = self._get("/healthz")
        except (urllib.error.URLError, OSError):
            return None
        decoded = json.loads(body)
        assert isinstance(decoded, dict)
        return status, decoded

    def metrics(self) -> dict[str, float]:
        """Every sample of ``/metrics`` (see ``parse_metrics``)."""
        status, body = self._get("/metrics")
        assert status == 200, body
        return parse_metrics(body.decode())

    def metric(self, name: str, **labels: str) -> float:
        """One sample (``elastic_connector_`` prefix optional); 0 when not exported yet."""
        full = name if name.startswith("elastic_connector_") else f"elastic_connector_{name}"
        samples = self.metrics()
        return samples.get(_series(full, labels), samples.get(_series(full + "_total", labels), 0))

    def last_ack_id(self) -> str | None:
        health = self.health()
        if health is None:
            return None
        elastic = health[1].get("elasticsearch")
        value = elastic.get("last_ack_id") if isinstance(elastic, dict) else None
        return value if isinstance(value, str) else None

    def committed_position(self) -> str | None:
        """The stream position the daemon last saved in the connector state (``/healthz``)."""
        health = self.health()
        stream = health[1].get("stream") if health is not None else None
        value = stream.get("committed_position") if isinstance(stream, dict) else None
        return value if isinstance(value, str) else None

    def status_last_event_id(self) -> str | None:
        """The last stream id the daemon has read (``/healthz``), acknowledged or not."""
        health = self.health()
        stream = health[1].get("stream") if health is not None else None
        value = stream.get("last_event_id") if isinstance(stream, dict) else None
        return value if isinstance(value, str) else None

    def stream_connected(self) -> bool:
        health = self.health()
        stream = health[1].get("stream") if health is not None else None
        return isinstance(stream, dict) and stream.get("connected") is True


# --- the index ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    index: str
    id: str
    source: dict[str, object]


def index_hits(client: Elasticsearch, index: str) -> list[Hit]:
    """Every document of ``index`` (an alias reads all its indices), after a refresh.

    End-to-end indices are small: one page of ``_MAX_HITS`` (a larger index fails the test
    rather than being read partially)."""
    if not client.indices.exists(index=index):
        return []
    client.indices.refresh(index=index)
    response = client.search(
        index=index, query={"match_all": {}}, size=_MAX_HITS, track_total_hits=True
    )
    total = response["hits"]["total"]["value"]
    if total > _MAX_HITS:
        pytest.fail(f"{index} holds {total} documents; the harness reads at most {_MAX_HITS}")
    return [Hit(hit["_index"], hit["_id"], hit["_source"]) for hit in response["hits"]["hits"]]


def documents_of(client: Elasticsearch, index: str) -> dict[str, dict[str, object]]:
    """``_id -> _source`` of ``index``; fails the test when an ``_id`` appears twice (in
    two backing indices: a duplicate the connector must never produce)."""
    hits = index_hits(client, index)
    seen: dict[str, dict[str, object]] = {}
    for hit in hits:
        if hit.id in seen:
            pytest.fail(f"document {hit.id} is in {index} twice: {[h.index for h in hits]}")
        seen[hit.id] = hit.source
    return seen


def dig(document: Mapping[str, object], path: str) -> object:
    """``document['a']['b']`` for ``'a.b'`` (also accepts flattened dotted keys)."""
    if path in document:
        return document[path]
    current: object = document
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


# --- a deployment under test ----------------------------------------------------------------


class ConnectorHarness:
    """One connector deployment: a stand-in, an index, a connector id, a working directory.

    ``start()`` runs ``elastic-connector run`` and waits for it to read the stream; calling it
    again after the previous daemon exited is a restart with the same connector id. Only one
    daemon runs at a time. ``run(...)`` runs a short command (``check``, ``setup``) to the end.
    """

    def __init__(
        self,
        *,
        standin: OpenCTIStandin,
        es_client: Elasticsearch,
        es_settings: ElasticsearchSettings,
        index: str,
        workdir: Path,
        mode: str = "ecs_no_signals",
        connector_id: str | None = None,
        env: Mapping[str, str | None] | None = None,
    ) -> None:
        self.standin = standin
        # Kept: the stand-in may be stopped (an OpenCTI outage) and restarted on the same port.
        self.opencti_url = standin.url
        self.es = es_client
        self.es_settings = es_settings
        self.index = index
        self.workdir = workdir
        self.mode = mode
        self.connector_id = connector_id or str(uuid.uuid4())
        self.base_overrides: dict[str, str | None] = dict(env or {})
        self.processes: list[ConnectorProcess] = []
        workdir.mkdir(parents=True, exist_ok=True)

    # --- processes ---------------------------------------------------------------------------

    def environment(
        self, metrics_port: int | None = None, **overrides: str | None
    ) -> dict[str, str]:
        """The environment of the next process (harness overrides, then ``overrides``)."""
        return connector_environment(
            opencti_url=self.opencti_url,
            opencti_token=self.standin.token,
            connector_id=self.connector_id,
            elasticsearch=self.es_settings,
            index=self.index,
            mode=self.mode,
            metrics_port=metrics_port,
            overrides={**self.base_overrides, **overrides},
        )

    def spawn(
        self,
        *args: str,
        metrics: bool = True,
        env: Mapping[str, str | None] | None = None,
    ) -> ConnectorProcess:
        """Start ``elastic-connector <args>`` without waiting for anything; ``env`` overrides
        the harness's variables (None removes one); ``metrics`` serves ``/metrics`` and
        ``/healthz`` on a free port."""
        port = free_port() if metrics else None
        number = len(self.processes) + 1
        name = "-".join(args) or "run"
        process = ConnectorProcess(
            args,
            self.environment(port, **(env or {})),
            self.workdir,
            self.workdir / f"{number:02d}-{name}.log",
            metrics_port=port,
        )
        self.processes.append(process)
        return process.start()

    def start(self, *, timeout: float = START_TIMEOUT, **overrides: str | None) -> ConnectorProcess:
        """Run the daemon and wait until its stream is connected (``/healthz``)."""
        running = self.daemon if self.processes else None
        if running is not None and running.running and running.args == ("run",):
            raise RuntimeError("a daemon is already running; terminate() or kill() it first")
        daemon = self.spawn("run", env=overrides)

        def connected() -> bool:
            if not daemon.running:
                pytest.fail(f"the daemon exited during start\n{daemon.tail()}")
            return daemon.stream_connected()

        wait_for(connected, timeout=timeout, what="the daemon to connect", context=daemon.tail)
        return daemon

    def run(self, *args: str, timeout: float = 60.0, **overrides: str | None) -> ConnectorProcess:
        """Run a short command to completion (``check``, ``setup``...)."""
        process = self.spawn(*args, metrics=False, env=overrides)
        process.wait(timeout)
        return process

    @property
    def daemon(self) -> ConnectorProcess:
        """The most recent process started by ``start``/``spawn``."""
        if not self.processes:
            raise RuntimeError("no process was started")
        return self.processes[-1]

    def tail(self) -> str:
        return self.daemon.tail() if self.processes else "(no process started)"

    def close(self) -> None:
        for process in self.processes:
            process.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- connector state on the platform -------------------------------------------------------

    def saved_state(self) -> dict[str, object] | None:
        """The connector state the stand-in holds (what the last ping sent), decoded."""
        raw = self.standin.connector_state(self.connector_id)
        if not raw:
            return None
        decoded = json.loads(raw)
        assert decoded is None or isinstance(decoded, dict), raw
        return decoded

    def stream_request_positions(self) -> list[str | None]:
        """The ``Last-Event-ID`` of every stream request the stand-in received, in order."""
        return [request.headers.get("last-event-id") for request in self.standin.stream_requests]

    # --- waiting on the daemon ------------------------------------------------------------------

    def wait_for_ack(self, event_id: str, *, timeout: float = WAIT_TIMEOUT) -> None:
        """Wait until Elasticsearch acknowledged everything up to ``event_id`` (the daemon's
        ``/healthz`` ``last_ack_id``)."""
        daemon = self.daemon
        wait_for(
            lambda: is_at_or_after(daemon.last_ack_id(), event_id),
            timeout=timeout,
            what=f"the daemon to acknowledge event {event_id}",
            context=daemon.tail,
        )

    def wait_for_commit(self, event_id: str, *, timeout: float = WAIT_TIMEOUT) -> None:
        """Wait until the daemon saved a position at or after ``event_id``: its frames were
        written and a later frame showed no more can carry its id (an idle heartbeat does,
        within two heartbeat periods)."""
        daemon = self.daemon
        wait_for(
            lambda: is_at_or_after(daemon.committed_position(), event_id),
            timeout=timeout,
            what=f"the daemon to save a position at or after {event_id}",
            context=daemon.tail,
        )

    def publish(
        self,
        kind: str,
        stix_object: Mapping[str, object],
        context: Mapping[str, object] | None = None,
    ) -> str:
        """Publish on the stand-in's stream; returns the event id."""
        return self.standin.publish(kind, stix_object, context)

    def publish_and_ack(
        self,
        kind: str,
        stix_object: Mapping[str, object],
        context: Mapping[str, object] | None = None,
    ) -> str:
        """Publish, then wait until the daemon acknowledged the event."""
        event_id = self.publish(kind, stix_object, context)
        self.wait_for_ack(event_id)
        return event_id

    # --- the index ------------------------------------------------------------------------------

    def documents(self) -> dict[str, dict[str, object]]:
        """``_id -> _source`` of the whole index (fails on a duplicated ``_id``)."""
        return documents_of(self.es, self.index)

    def document(self, document_id: str) -> dict[str, object] | None:
        return self.documents().get(document_id)

    def wait_for_documents(
        self,
        condition: Callable[[dict[str, dict[str, object]]], bool],
        *,
        timeout: float = WAIT_TIMEOUT,
        what: str = "the index to reach the expected state",
    ) -> dict[str, dict[str, object]]:
        """Poll ``documents()`` until ``condition`` holds; return them."""

        def probe() -> dict[str, dict[str, object]] | None:
            documents = self.documents()
            return documents if condition(documents) else None

        def context() -> str:
            return f"index now: {sorted(self.documents())}\n{self.tail()}"

        return wait_for(probe, timeout=timeout, what=what, context=context)


@pytest.fixture
def e2e_harness(
    tmp_path: Path,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    es_prefix: str,
) -> Iterator[Callable[..., ConnectorHarness]]:
    """A factory of harnesses, each with its own stand-in (heartbeats every 0.2 s) and index
    (``<es_prefix>-<n>``); every daemon is killed and every stand-in stopped at teardown."""
    standins: list[OpenCTIStandin] = []
    harnesses: list[ConnectorHarness] = []

    def build(
        mode: str = "ecs_no_signals",
        *,
        env: Mapping[str, str | None] | None = None,
        standin: OpenCTIStandin | None = None,
        index: str | None = None,
    ) -> ConnectorHarness:
        if standin is None:
            standin = OpenCTIStandin(heartbeat_interval=0.2).start()
            standins.append(standin)
        number = len(harnesses) + 1
        harness = ConnectorHarness(
            standin=standin,
            es_client=es_client,
            es_settings=es_settings,
            index=index or f"{es_prefix}-{number}",
            workdir=tmp_path / f"connector-{number}",
            mode=mode,
            env=env,
        )
        harnesses.append(harness)
        return harness

    try:
        yield build
    finally:
        for harness in harnesses:
            harness.close()
        for standin in standins:
            standin.stop()


def module_index_cleanup(client: Elasticsearch, prefix: str) -> None:
    """For module-scoped harnesses: delete everything named with ``prefix``."""
    delete_everything_named(client, prefix)
