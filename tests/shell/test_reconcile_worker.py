"""The daemon's reconciliation thread (``shell/reconcile_worker.py``) with the run itself
replaced: triggers coalesced, a failed gap or initial run tried again and kept pending in the
state until one finishes, the schedule, ``/healthz`` and metrics; and the progress lines."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from elasticsearch import Elasticsearch

from elastic_connector.core.config import ElasticsearchSettings, Mode
from elastic_connector.core.events import PlanSettings
from elastic_connector.core.reconcile import PENDING_KEY, Counts
from elastic_connector.shell import reconcile_worker
from elastic_connector.shell.connector_state import ConnectorState
from elastic_connector.shell.metrics import Metrics
from elastic_connector.shell.reconcile import (
    Progress,
    ProgressLines,
    ReconcileFailed,
    ReconcileReport,
    ReconcileSettings,
    progress_text,
)
from elastic_connector.shell.reconcile_worker import Reconciler
from elastic_connector.shell.write_gate import WriteGate
from tests.reliability.pipeline_run import MemoryStore


class FakeRun:
    """Stands for ``Reconciliation``: each run takes the next outcome of ``script``."""

    script: ClassVar[list[str]] = []
    runs: ClassVar[list[str]] = []
    release = threading.Event()

    def __init__(self, *_args: Any, progress: Any = None, **_kwargs: Any) -> None:
        self._progress = progress

    def run(self) -> ReconcileReport:
        outcome = FakeRun.script.pop(0) if FakeRun.script else "ok"
        FakeRun.runs.append(outcome)
        if self._progress is not None:
            self._progress(Progress("opencti", 5, 10, Counts(written=3)))
        if outcome == "block":
            FakeRun.release.wait(5)
        if outcome == "fail":
            raise ReconcileFailed("reading indicators (page 1): boom", Counts(missing=1))
        return ReconcileReport(Counts(opencti_indicators=10, written=2), {}, None, 0.01)


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MemoryStore, Metrics]]:
    FakeRun.script = []
    FakeRun.runs = []
    FakeRun.release = threading.Event()
    monkeypatch.setattr(reconcile_worker, "Reconciliation", FakeRun)
    yield MemoryStore(), Metrics()
    FakeRun.release.set()


def reconciler(
    store: MemoryStore, metrics: Metrics, *, interval: float | None = None
) -> Reconciler:
    return Reconciler(
        ReconcileSettings(plan=PlanSettings(mode=Mode.ECS, index="ti"), live_stream_id=None),
        api=object(),  # type: ignore[arg-type]  # never called: the run is replaced
        client=Elasticsearch("http://127.0.0.1:9"),
        elasticsearch=ElasticsearchSettings(),
        require_alias=False,
        gate=WriteGate(),
        metrics=metrics,
        state=ConnectorState(store),
        clock=lambda: datetime(2025, 6, 1, tzinfo=UTC),
        interval=interval,
        retry_after=0.1,
    )


def wait(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def test_a_gap_is_kept_pending_and_tried_again_until_one_run_finishes(
    rig: tuple[MemoryStore, Metrics],
) -> None:
    store, metrics = rig
    FakeRun.script = ["fail", "ok"]
    worker = reconciler(store, metrics)
    worker.start()
    worker.request("gap")
    assert store.state == {PENDING_KEY: True}  # saved before it runs
    wait(lambda: FakeRun.runs == ["fail", "ok"])
    wait(lambda: store.state == {PENDING_KEY: False})
    status = worker.status()
    last = status["last"]
    assert isinstance(last, dict)
    assert (last["trigger"], last["outcome"], last["error"]) == ("gap", "ok", None)
    assert (
        sample(metrics, "elastic_connector_reconcile_runs_total", trigger="gap", outcome="failed")
        == 1
    )
    assert (
        sample(metrics, "elastic_connector_reconcile_runs_total", trigger="gap", outcome="ok") == 1
    )
    assert sample(metrics, "elastic_connector_reconcile_last_count", count="written") == 2
    assert sample(metrics, "elastic_connector_reconcile_last_success_timestamp_seconds") > 0
    worker.stop()


def test_requests_during_a_run_are_one_run_after_it(rig: tuple[MemoryStore, Metrics]) -> None:
    store, metrics = rig
    FakeRun.script = ["block", "ok"]
    worker = reconciler(store, metrics)
    worker.start()
    worker.request("interval")
    wait(lambda: worker.status()["running"] is True)
    status = worker.status()
    assert status["progress"] == {
        "phase": "opencti",
        "done": 5,
        "total": 10,
        "counts": {**dict.fromkeys(Counts.__struct_fields__, 0), "written": 3},
    }
    worker.request("gap")
    worker.request("gap")
    worker.request("initial")
    assert worker.status()["requested"] == ["gap", "initial"]
    FakeRun.release.set()
    wait(lambda: len(FakeRun.runs) == 2 and worker.status()["running"] is False)
    time.sleep(0.2)
    assert len(FakeRun.runs) == 2
    last = worker.status()["last"]
    assert isinstance(last, dict)
    assert last["trigger"] == "gap+initial"
    assert worker.finished("initial")
    worker.stop()


def test_the_schedule_runs_it_again_and_again(rig: tuple[MemoryStore, Metrics]) -> None:
    store, metrics = rig
    worker = reconciler(store, metrics, interval=0.1)
    worker.start()
    wait(lambda: len(FakeRun.runs) >= 3)
    assert worker.status()["interval_seconds"] == 0.1
    assert store.state is None  # an interval run is never saved as pending
    worker.stop()
    assert not worker.is_alive()


def test_a_bug_in_a_run_does_not_kill_the_thread(
    rig: tuple[MemoryStore, Metrics], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, metrics = rig

    class Broken(FakeRun):
        def run(self) -> ReconcileReport:
            raise KeyError("bug")

    monkeypatch.setattr(reconcile_worker, "Reconciliation", Broken)
    worker = reconciler(store, metrics)
    worker.start()
    worker.request("interval")
    wait(lambda: worker.status()["last"] is not None)
    last = worker.status()["last"]
    assert isinstance(last, dict)
    assert last["outcome"] == "failed"
    assert "internal error" in str(last["error"])
    assert worker.is_alive()
    worker.stop()


# --- progress lines ------------------------------------------------------------------------------


def test_a_progress_line_says_counts_rate_and_time_left() -> None:
    step = Progress("opencti", 12_000, 100_000, Counts(missing=3, stale=1))
    assert progress_text(step, 5.0, 12_000) == (
        "12,000 of 100,000 indicators read (2,400/s, about 37 s left); missing 3, stale 1, "
        "orphaned 0, skipped 0"
    )
    index = Progress("index", 45_000, None, Counts())
    assert progress_text(index, 10.0, 45_000).startswith(
        "45,000 documents of the index read (4,500/s)"
    )


def test_progress_lines_are_spaced_by_the_interval() -> None:
    now = [0.0]
    lines: list[str] = []
    progress = ProgressLines(lines.append, interval=5.0, clock=lambda: now[0])
    for second in range(12):
        now[0] = float(second)
        progress(Progress("opencti", second * 100, 1_200, Counts()))
    assert len(lines) == 2  # at 5 s and 10 s
