"""Reconciliation at scale, and the two ways of a first start (``docs/performance.md``, section 5).

* ``run_reconcile_section(n)``: ``n`` indicators in the OpenCTI stand-in (the generator's
  realistic mix, each as ``toStix`` would give it), an empty index. The real
  ``elastic-connector reconcile`` fills it (every document *missing*); then 1% of the documents
  are deleted, 1% edited by hand and 1% extra ones added, and ``reconcile --dry-run`` measures
  what it must: reading the whole index and the whole knowledge base, planning every indicator,
  comparing. Each run is a subprocess: wall time from its start (pycti's import included) to its
  exit, and its peak RSS (``ru_maxrss``).
* ``run_initial_sync_section(n)``: the daemon's first start on ``n`` indicators, with
  ``connector.initial_sync: stream`` (the platform's recovery replay) and ``reconcile``: time
  until every document is indexed (and, for ``reconcile``, the run finished), peak RSS; then the
  same with a ``kill -9`` once half of the documents are in, and a restart: how long the restart
  takes to complete the index, and how many documents it writes.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from typing import Final

import msgspec

from benchmarks.generator import NOW, stream_events
from benchmarks.ingest import (
    _count,
    _daemon_env,
    _delete_index,
    _request,
    _status_kib,
    _stop,
    elasticsearch_endpoint,
)
from elastic_connector.core.actions import Upsert
from elastic_connector.core.config import Mode
from elastic_connector.core.events import PlannerState, PlanSettings, plan_frame
from elastic_connector.demo.noida import free_port
from elastic_connector.demo.opencti_data import Json
from elastic_connector.demo.opencti_standin import OpenCTIStandin

_TIMEOUT: Final = 900.0
_POLL: Final = 0.2
_SETTINGS: Final = PlanSettings(mode=Mode.ECS_NO_SIGNALS, index="bench")
_DAMAGE: Final = 0.01
"""The share of documents deleted, edited and added before the dry run (each)."""


class CommandRun(msgspec.Struct, frozen=True):
    what: str
    seconds: float
    peak_rss_mb: float
    summary: dict[str, object]


class ReconcileResult(msgspec.Struct, frozen=True):
    endpoint: str
    indicators: int
    expected_documents: int
    fill: CommandRun
    """``reconcile`` into an empty index."""
    dry_run: CommandRun
    """``reconcile --dry-run`` over the full index, 1% of each class to find."""
    indicators_per_s: float
    """Of the dry run, start to exit."""


class SyncRun(msgspec.Struct, frozen=True):
    mode: str
    documents: int
    seconds: float
    """From the daemon's start to the last document (and, in ``reconcile`` mode, the run's
    end)."""
    peak_rss_mb: float
    crash_at_documents: int = 0
    restart_seconds: float = 0.0
    """After the crash: from the restart to the last document."""
    restart_written: int = 0
    """Documents the restarted daemon wrote to complete the index."""


class InitialSyncResult(msgspec.Struct, frozen=True):
    endpoint: str
    indicators: int
    runs: tuple[SyncRun, ...]


# --- the knowledge base ------------------------------------------------------------------------


def knowledge_base(n: int, seed: int) -> list[Json]:
    """``n`` distinct indicators as OpenCTI holds them after the generator's stream: creates,
    with updates, deletes and merges applied (the state a reconciliation reads)."""
    objects: dict[str, Json] = {}
    produced = max(n + n // 5, 100)
    while True:
        for event in stream_events(produced, seed):
            envelope = json.loads(event.data)
            stix = envelope["data"]
            if stix.get("type") != "indicator":
                continue
            if event.event == "delete":
                objects.pop(stix["id"], None)
                continue
            if event.event == "merge":
                for source in (envelope.get("context") or {}).get("sources", []):
                    objects.pop(source.get("id"), None)
            objects[stix["id"]] = stix
        if len(objects) >= n:
            return list(objects.values())[:n]
        produced *= 2
        objects.clear()


def expected_count(indicators: Sequence[Json]) -> int:
    count = 0
    for number, stix in enumerate(indicators):
        frame = json.dumps({"data": stix}).encode()
        plan = plan_frame(f"{number}-0", "create", frame, PlannerState(), _SETTINGS, NOW)
        count += sum(isinstance(a, Upsert) for a in plan.actions)
    return count


def _load(standin: OpenCTIStandin, indicators: Sequence[Json]) -> None:
    """The indicators as created ten minutes ago: a first start's recovery replay (up to now)
    holds them all, a live stream followed from a minute ago none."""
    long_ago = int(time.time() * 1000) - 600_000
    standin.publish_many((("create", stix) for stix in indicators), start_ms=long_ago)


# --- section 5a: reconcile at scale ----------------------------------------------------------


def _command(env: dict[str, str], *args: str) -> CommandRun:
    """Run ``elastic-connector reconcile <args>``; its wall time, peak RSS and JSON line.

    The peak is the child's own ``VmHWM``, read until it exits (a new address space from
    ``exec`` on: ``wait4``'s ``ru_maxrss`` would also count the pages the fork shared with
    this process, the stand-in's data included, before the ``exec``)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "elastic_connector", "reconcile", *args],
            env=env,
            stdout=out,
            stderr=err,
        )
        peak = 0.0
        while process.poll() is None:
            peak = max(peak, _status_kib(process.pid, "VmHWM"))
            time.sleep(0.05)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        output, errors = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise RuntimeError(f"reconcile {' '.join(args)} failed:\n{errors[-3000:]}")
    line = json.loads(output.strip().splitlines()[-1])
    return CommandRun(
        what=" ".join(["reconcile", *args]),
        seconds=seconds,
        peak_rss_mb=peak / 1024,
        summary={key: value for key, value in line.items() if key not in ("ids", "more")},
    )


def _damage(es_url: str, index: str, seed: int) -> tuple[int, int, int]:
    """Delete, edit and add ``_DAMAGE`` of the documents; (deleted, edited, added)."""
    ids = _all_ids(es_url, index)
    rng = random.Random(seed)
    chosen = rng.sample(ids, 2 * max(1, int(len(ids) * _DAMAGE)))
    half = len(chosen) // 2
    lines: list[bytes] = []
    for doc_id in chosen[:half]:
        lines.append(json.dumps({"delete": {"_index": index, "_id": doc_id}}).encode() + b"\n")
    for doc_id in chosen[half:]:
        lines.append(json.dumps({"update": {"_index": index, "_id": doc_id}}).encode() + b"\n")
        lines.append(b'{"doc":{"tags":["edited-by-hand"]}}\n')
    for number in range(half):
        lines.append(json.dumps({"index": {"_index": index, "_id": f"extra-{number}"}}).encode())
        lines.append(b'\n{"threat":{"indicator":{"type":"ipv4-addr","ip":"192.0.2.1"}}}\n')
    _bulk(es_url, b"".join(lines))
    _request(f"{es_url}/{index}/_refresh", "POST")
    return half, half, half


def _bulk(es_url: str, body: bytes) -> None:
    request = urllib.request.Request(f"{es_url}/_bulk", data=body, method="POST")
    request.add_header("content-type", "application/x-ndjson")
    with urllib.request.urlopen(request, timeout=600) as response:
        answer = json.loads(response.read())
    if answer.get("errors"):
        raise RuntimeError("the damage bulk request failed")


def _all_ids(es_url: str, index: str) -> list[str]:
    ids: list[str] = []
    body = {"size": 10000, "sort": ["_doc"], "_source": False}
    answer = json.loads(
        _request(f"{es_url}/{index}/_search?scroll=2m", "POST", json.dumps(body).encode())
    )
    while answer["hits"]["hits"]:
        ids.extend(hit["_id"] for hit in answer["hits"]["hits"])
        scroll = {"scroll": "2m", "scroll_id": answer["_scroll_id"]}
        answer = json.loads(
            _request(f"{es_url}/_search/scroll", "POST", json.dumps(scroll).encode())
        )
    return ids


def run_reconcile_section(n: int, seed: int) -> ReconcileResult:
    indicators = knowledge_base(n, seed)
    expected = expected_count(indicators)
    with elasticsearch_endpoint() as (es_url, description):
        index = f"bench-{uuid.uuid4().hex[:8]}"
        with OpenCTIStandin(heartbeat_interval=1.0) as standin:
            _load(standin, indicators)
            env = _daemon_env(standin, es_url, index, free_port(), None)
            env["CONNECTOR_LOG_LEVEL"] = "error"
            try:
                fill = _command(env)
                _request(f"{es_url}/{index}/_refresh", "POST")
                _damage(es_url, index, seed)
                dry = _command(env, "--dry-run")
            finally:
                _delete_index(es_url, index)
    return ReconcileResult(
        endpoint=description,
        indicators=len(indicators),
        expected_documents=expected,
        fill=fill,
        dry_run=dry,
        indicators_per_s=len(indicators) / max(dry.seconds, 1e-9),
    )


# --- section 5b: the first start, by stream or by reconciliation ----------------------------------


class _Reconcile(msgspec.Struct):
    last: dict[str, object] | None = None


class _SyncHealth(msgspec.Struct):
    reconcile: _Reconcile | None = None


def _reconcile_done(metrics_port: int) -> bool:
    try:
        body = _request(f"http://127.0.0.1:{metrics_port}/healthz")
    except urllib.error.HTTPError as error:
        body = error.read()
    except OSError:
        return False
    try:
        health = msgspec.json.decode(body, type=_SyncHealth)
    except msgspec.DecodeError:
        return False
    last = health.reconcile.last if health.reconcile is not None else None
    return last is not None and last.get("outcome") == "ok"


def _metric(metrics_port: int, name: str) -> float:
    try:
        text = _request(f"http://127.0.0.1:{metrics_port}/metrics").decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _daemon(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "elastic_connector", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _written(process: subprocess.Popen[bytes], port: int) -> Iterator[int]:
    """Documents the daemon has written so far (stream and reconciliation), every
    ``_POLL`` seconds, while it runs. Its own metrics, not the index: refreshing noida-db's
    index several times a second slows every bulk request down."""
    deadline = time.monotonic() + _TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the daemon exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("the first start did not finish in time")
        yield int(
            _metric(port, "elastic_connector_documents_written_total")
            + _metric(port, 'elastic_connector_reconcile_last_count{count="written"}')
            + _running_written(port)
        )
        time.sleep(_POLL)


class _Counts(msgspec.Struct):
    written: int = 0


class _Step(msgspec.Struct):
    counts: _Counts = msgspec.field(default_factory=_Counts)


class _Running(msgspec.Struct):
    progress: _Step | None = None


class _RunningHealth(msgspec.Struct):
    reconcile: _Running | None = None


def _running_written(port: int) -> int:
    """What a reconciliation still running has written (``/healthz`` ``reconcile.progress``)."""
    try:
        body = _request(f"http://127.0.0.1:{port}/healthz")
    except urllib.error.HTTPError as error:
        body = error.read()
    except OSError:
        return 0
    try:
        health = msgspec.json.decode(body, type=_RunningHealth)
    except msgspec.DecodeError:
        return 0
    running = health.reconcile
    return running.progress.counts.written if running and running.progress else 0


def _sync_once(
    mode: str, standin: OpenCTIStandin, es_url: str, expected: int, *, crash: bool
) -> SyncRun:
    index = f"bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = _daemon_env(standin, es_url, index, port, None)
    env.pop("CONNECTOR_LIVE_STREAM_RECOVER_ISO_DATE")  # the first start's replay: up to now
    env["CONNECTOR_INITIAL_SYNC"] = mode
    env["ELASTICSEARCH_REQUEST_TIMEOUT"] = "300"  # a slow bulk is waited for, not sent twice
    try:
        started = time.monotonic()
        process = _daemon(env)
        crash_at = 0
        if crash:
            crash_at = _half(process, port, expected)
            process.send_signal(signal.SIGKILL)
            process.wait(30)
            started = time.monotonic()
            process = _daemon(env)
        for written in _written(process, port):
            done = _reconcile_done(port) if mode == "reconcile" else written >= expected
            if done:
                break
        seconds = time.monotonic() - started
        peak = _status_kib(process.pid, "VmHWM") / 1024
        rewritten = int(
            _metric(port, "elastic_connector_documents_written_total")
            + _metric(port, 'elastic_connector_reconcile_last_count{count="written"}')
        )
        _stop(process)
        indexed = _count(es_url, index)
        if indexed != expected:
            raise RuntimeError(f"{mode}: {indexed} documents indexed, {expected} expected")
    finally:
        _delete_index(es_url, index)
    if crash:
        return SyncRun(
            mode=mode,
            documents=expected,
            seconds=0.0,
            peak_rss_mb=peak,
            crash_at_documents=crash_at,
            restart_seconds=seconds,
            restart_written=rewritten,
        )
    return SyncRun(mode=mode, documents=expected, seconds=seconds, peak_rss_mb=peak)


def _half(process: subprocess.Popen[bytes], port: int, expected: int) -> int:
    """Wait until about half of the documents are written; how many were."""
    for written in _written(process, port):
        if written >= expected // 2:
            return written
    raise AssertionError("unreachable")  # pragma: no cover - _written raises or yields


def run_initial_sync_section(n: int, seed: int) -> InitialSyncResult:
    indicators = knowledge_base(n, seed)
    expected = expected_count(indicators)
    runs: list[SyncRun] = []
    with (
        elasticsearch_endpoint() as (es_url, description),
        OpenCTIStandin(heartbeat_interval=1.0) as standin,
    ):
        _load(standin, indicators)
        for crash in (False, True):
            for mode in ("stream", "reconcile"):
                runs.append(_sync_once(mode, standin, es_url, expected, crash=crash))
    return InitialSyncResult(endpoint=description, indicators=len(indicators), runs=tuple(runs))
