"""One reconciliation run: read the index, read OpenCTI, repair the difference.

The order is what makes the repairs safe (``docs/reconcile.md``):

1. the index is read first, at one point in time: each document's digest and version;
2. then OpenCTI, page by page: marking definitions, the live stream's filters, every
   indicator (``shell.opencti_indicators``), each planned by the stream's planner and compared
   with the index (``core.reconcile``). The repairs of a page are written as soon as it is
   planned, each guarded by the version read in step 1, so a document the stream wrote since
   is left alone (Elasticsearch answers 409, counted as ``superseded``);
3. after the last page, and only if every page was read and every node identified, the
   documents no indicator accounted for are deleted (orphans), guarded the same way;
4. a create has no version to guard it: when no ``WriteGate`` serialises this run with the
   stream (the ``reconcile`` command, possibly next to a running daemon), the indicators just
   created are read again — the index first, then OpenCTI — and a document whose indicator is
   meanwhile gone or withheld is deleted (guarded by the version just read).

Nothing but ids, digests and versions is kept per document, and only one page of indicators
and one batch of repairs at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

import msgspec

from elastic_connector.core.actions import Delete, Guard, Upsert
from elastic_connector.core.config import Config, ElasticsearchSettings, Mode
from elastic_connector.core.events import PlannerState, PlanSettings
from elastic_connector.core.reconcile import (
    CLASSES,
    MISSING,
    Counts,
    IndexedDocument,
    NodeProblem,
    Planned,
    ReadOutcome,
    Sample,
    compare,
    orphan,
    orphans_withheld,
    plan_node,
    read_node,
)
from elastic_connector.shell.bulk import BulkResult, BulkStopped, BulkWriter
from elastic_connector.shell.elastic import PermanentElasticsearchError
from elastic_connector.shell.opencti_indicators import (
    PAGE_SIZE,
    OpenCTIReadError,
    Retry,
    indicator_pages,
    indicators_by_ids,
    read_collection_filters,
    read_marking_levels,
)
from elastic_connector.shell.outputs import OutputWriter
from elastic_connector.shell.reconcile_index import PAGE_SIZE as INDEX_PAGE_SIZE
from elastic_connector.shell.reconcile_index import IndexReadError, read_index, read_versions
from elastic_connector.shell.write_gate import WriteAction, WriteGate

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch
    from pycti import OpenCTIApiClient

_log = logging.getLogger(__name__)

ATTEMPTS: Final = 8
"""Tries of each request before a run gives up (capped exponential backoff between them)."""
SAMPLE_SIZE: Final = 20
"""Ids shown per class by ``--dry-run``."""

Write = Callable[[Sequence[WriteAction]], BulkResult]


class ReconcileSettings(msgspec.Struct, frozen=True, kw_only=True):
    plan: PlanSettings
    live_stream_id: str | None
    with_inferences: bool = False
    indicators_only: bool = False
    """``stix`` mode: the index holds every STIX type, only indicators are reconciled."""
    write_batch: int = 500
    attempts: int = ATTEMPTS
    max_backoff: float = 60.0
    page_size: int = PAGE_SIZE
    index_page_size: int = INDEX_PAGE_SIZE
    recheck_creates: bool = True
    """Read created indicators again (needed when no ``WriteGate`` guards creates)."""
    sample_size: int = SAMPLE_SIZE

    @classmethod
    def from_config(cls, config: Config, *, recheck_creates: bool) -> ReconcileSettings:
        return cls(
            plan=PlanSettings.from_config(config),
            live_stream_id=config.connector.live_stream_id,
            with_inferences=config.connector.live_stream_with_inferences,
            indicators_only=config.connector.mode is Mode.STIX,
            write_batch=config.elasticsearch.bulk_max_actions,
            max_backoff=config.elasticsearch.retry_max_backoff,
            recheck_creates=recheck_creates,
        )


class ReconcileReport(msgspec.Struct, frozen=True):
    counts: Counts
    samples: Mapping[str, Sample]
    orphans_withheld: str | None
    """Why orphaned documents were left in place (None: there were none, or they were
    deleted, or counted only in a dry run)."""
    seconds: float


class ReconcileFailed(Exception):
    """The run could not finish; ``counts`` is what it found and did until then."""

    def __init__(self, message: str, counts: Counts) -> None:
        super().__init__(message)
        self.message = message
        self.counts = counts


class Progress(msgspec.Struct, frozen=True):
    """Where a run is: ``phase`` (``index``, ``opencti``, ``orphans``, ``recheck``), what is
    done of it and, when known, out of how many."""

    phase: str
    done: int
    total: int | None
    counts: Counts


class _WriteFailed(Exception):
    pass


class _Tally:
    def __init__(self) -> None:
        self.values: dict[str, int] = dict.fromkeys(msgspec.structs.asdict(Counts()), 0)

    def add(self, name: str, amount: int = 1) -> None:
        self.values[name] += amount

    def counts(self) -> Counts:
        return Counts(**self.values)


class _Samples:
    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: dict[str, list[str]] = {kind: [] for kind in CLASSES}
        self._more: dict[str, int] = dict.fromkeys(CLASSES, 0)

    def add(self, kind: str, doc_id: str) -> None:
        if len(self._ids[kind]) < self._size:
            self._ids[kind].append(doc_id)
        else:
            self._more[kind] += 1

    def result(self) -> dict[str, Sample]:
        return {kind: Sample(tuple(self._ids[kind]), self._more[kind]) for kind in CLASSES}


SkipReporter = Callable[[str, str, str], None]
"""Called with (object id, code, reason) for each indicator a run could not plan."""


def log_skip(object_id: str, code: str, reason: str) -> None:
    _log.warning(
        "reconcile skipped indicator %s: %s",
        object_id or "(no id)",
        reason,
        extra={"fields": {"object_id": object_id, "code": code}},
    )


class Reconciliation:
    """One run; ``write`` None is a dry run (nothing is changed)."""

    def __init__(
        self,
        settings: ReconcileSettings,
        *,
        api: OpenCTIApiClient,
        client: Elasticsearch,
        write: Write | None,
        gate: WriteGate | None = None,
        clock: Callable[[], datetime],
        stop: threading.Event,
        progress: Callable[[Progress], None] | None = None,
        on_skip: SkipReporter = log_skip,
    ) -> None:
        self._settings = settings
        self._api = api
        self._client = client
        self._write = write
        self._gate = gate
        self._clock = clock
        self._stop = stop
        self._progress = progress
        self._on_skip = on_skip
        self._retry = Retry(attempts=settings.attempts, max_backoff=settings.max_backoff, stop=stop)
        self._tally = _Tally()
        self._samples = _Samples(settings.sample_size)
        self._pending: list[WriteAction] = []
        self._created: list[str] = []

    @property
    def _index(self) -> str:
        return self._settings.plan.index

    def run(self) -> ReconcileReport:
        started = time.monotonic()
        if self._gate is not None:
            self._gate.open()  # before the index is read: every later stream write is noted
        try:
            withheld = self._run()
        except (IndexReadError, OpenCTIReadError, _WriteFailed) as error:
            raise ReconcileFailed(str(error), self._tally.counts()) from None
        finally:
            if self._gate is not None:
                self._gate.close()
        return ReconcileReport(
            self._tally.counts(), self._samples.result(), withheld, time.monotonic() - started
        )

    def _run(self) -> str | None:
        settings = self._settings
        snapshot = read_index(
            self._client,
            self._index,
            self._retry,
            indicators_only=settings.indicators_only,
            page_size=settings.index_page_size,
            on_page=lambda done: self._report("index", done, None),
        )
        self._tally.add("index_documents", len(snapshot))
        levels = read_marking_levels(self._api, self._retry)
        filters = read_collection_filters(self._api, settings.live_stream_id, self._retry)
        state = PlannerState(levels)
        authors: dict[str, str] = {}
        seen: set[str] = set()
        unidentified = 0
        failure: str | None = None
        read = 0
        try:
            for page in indicator_pages(
                self._api, filters, self._retry, page_size=settings.page_size
            ):
                self._check_stop()
                now = self._clock()
                for raw in page.nodes:
                    read += 1
                    unidentified += self._node(raw, state, now, authors, seen, snapshot)
                self._flush_if_full()
                self._report("opencti", read, page.global_count)
        except OpenCTIReadError as error:
            failure = str(error)
        self._flush()
        outcome = ReadOutcome(complete=failure is None, unidentified=unidentified, failure=failure)
        withheld = orphans_withheld(outcome)
        if withheld is None:
            for doc_id, current in snapshot.items():
                difference = orphan(self._index, doc_id, current)
                self._difference(difference.kind, difference.action)
                self._flush_if_full()
            self._flush()
            self._report("orphans", len(snapshot), len(snapshot))
        elif snapshot:
            _log.warning(
                "reconcile: %d document(s) not accounted for kept: %s", len(snapshot), withheld
            )
        if failure is not None:
            raise OpenCTIReadError(failure)
        if settings.recheck_creates and self._created and self._write is not None:
            self._recheck(filters, state, authors)
        return withheld if snapshot else None

    def _node(
        self,
        raw: object,
        state: PlannerState,
        now: datetime,
        authors: dict[str, str],
        seen: set[str],
        snapshot: dict[str, IndexedDocument],
    ) -> int:
        """Plan and compare one node; 1 when it could not even be identified."""
        node = read_node(raw)
        if isinstance(node, NodeProblem):
            self._skip(node.ids[0] if node.ids else "", "malformed", node.reason)
            seen.update(node.ids)
            for doc_id in node.ids:
                snapshot.pop(doc_id, None)  # cannot be judged: left as it is
            return 0 if node.ids else 1
        if node.author is not None:
            authors[node.author[0]] = node.author[1]
        outcome = plan_node(
            node,
            state,
            self._settings.plan,
            now,
            authors,
            with_inferences=self._settings.with_inferences,
        )
        if not isinstance(outcome, Planned):
            if outcome.skip is not None:
                skip = outcome.skip
                self._skip(skip.object_id or node.id, skip.code, skip.reason)
                seen.update(outcome.ids)
                for doc_id in outcome.ids:
                    snapshot.pop(doc_id, None)
            return 0
        action = outcome.action
        if action.id in seen:
            return 0  # listed twice (a page boundary moved): judged once
        seen.update(outcome.ids)
        self._tally.add("opencti_indicators")
        current = snapshot.pop(action.id, None)
        for doc_id in outcome.ids:
            snapshot.pop(doc_id, None)
        difference = compare(action, current)
        if difference is not None:
            self._difference(difference.kind, difference.action)
        return 0

    def _difference(self, kind: str, action: Upsert | Delete) -> None:
        self._tally.add(kind)
        self._samples.add(kind, action.id)
        if kind == MISSING:
            self._created.append(action.id)
        self._pending.append(action)

    def _skip(self, object_id: str, code: str, reason: str) -> None:
        self._tally.add("skipped")
        self._on_skip(object_id, code, reason)

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise OpenCTIReadError("stopped before the end")

    def _report(self, phase: str, done: int, total: int | None) -> None:
        if self._progress is not None:
            self._progress(Progress(phase, done, total, self._tally.counts()))

    # --- writing ----------------------------------------------------------------------------

    def _flush_if_full(self) -> None:
        if len(self._pending) >= self._settings.write_batch:
            self._flush()

    def _flush(self) -> None:
        actions, self._pending = self._pending, []
        if not actions or self._write is None:
            return
        try:
            if self._gate is None:
                result = self._write(actions)
            else:
                with self._gate.reconcile_write(actions) as (kept, dropped):
                    self._tally.add("superseded", dropped)
                    result = self._write(kept) if kept else BulkResult()
        except PermanentElasticsearchError as error:
            raise _WriteFailed(f"writing to {self._index}: {error}") from None
        except BulkStopped as stopped:
            raise _WriteFailed(
                f"writing to {self._index}: Elasticsearch did not take the writes "
                f"({stopped.unacknowledged} unacknowledged)"
            ) from None
        self._tally.add("written", result.written)
        self._tally.add("deleted", result.deleted)
        self._tally.add("superseded", result.conflicts)

    # --- creates, checked again ----------------------------------------------------------------

    def _recheck(
        self, filters: Mapping[str, object] | None, state: PlannerState, authors: dict[str, str]
    ) -> None:
        """Delete what this run created whose indicator is, now, gone or withheld. Only ids
        are kept: a withheld indicator's removal is queued as its page is read."""
        current = read_versions(self._client, self._index, self._created, self._retry)
        if not current:
            return
        found: set[str] = set()
        now = self._clock()
        for page in indicators_by_ids(self._api, list(current), filters, self._retry):
            for raw in page.nodes:
                node = read_node(raw)
                if isinstance(node, NodeProblem):
                    found.update(node.ids)  # cannot be judged: left as it is
                    continue
                outcome = plan_node(
                    node,
                    state,
                    self._settings.plan,
                    now,
                    authors,
                    with_inferences=self._settings.with_inferences,
                )
                found.update(outcome.ids)
                action = outcome.action if isinstance(outcome, Planned) else None
                document = current.get(action.id) if action is not None else None
                if isinstance(action, Delete) and document is not None:
                    guard = Guard(document.seq_no, document.primary_term)
                    self._pending.append(msgspec.structs.replace(action, guard=guard))
                    self._flush_if_full()
        for doc_id, document in current.items():
            if doc_id not in found:
                guard = Guard(document.seq_no, document.primary_term)
                self._pending.append(
                    Delete(self._index, doc_id, "deleted", "gone from OpenCTI", guard=guard)
                )
                self._flush_if_full()
        self._flush()
        self._report("recheck", len(current), len(current))


class BoundedWriter:
    """A ``BulkWriter`` that gives up: after ``attempts`` failed tries in a row of one write
    (transient failures, waited out with its capped backoff) it raises
    ``PermanentElasticsearchError`` naming the last failure. A run must end, and say why.

    With ``outputs`` (the ES|QL lookup index or dead letters configured: it makes their writer
    around this one's ``BulkWriter``), the repairs go through them as the stream's writes do, so
    the lookup rows follow the repaired documents."""

    def __init__(
        self,
        client: Elasticsearch,
        settings: ElasticsearchSettings,
        *,
        require_alias: bool,
        stop: threading.Event,
        attempts: int = ATTEMPTS,
        outputs: Callable[[BulkWriter], OutputWriter] | None = None,
    ) -> None:
        self._outer_stop = stop
        self._attempts = attempts
        self._failures = 0
        self._halt = threading.Event()
        self._gave_up = False
        self._writer = BulkWriter(
            client,
            require_alias=require_alias,
            max_actions=settings.bulk_max_actions,
            max_bytes=settings.bulk_max_bytes,
            max_backoff=settings.retry_max_backoff,
            stop=self._halt,
            sleep=self._sleep,
        )
        self._outputs = None if outputs is None else outputs(self._writer)

    def _sleep(self, delay: float) -> None:
        self._failures += 1
        if self._failures >= self._attempts:
            self._gave_up = True
            self._halt.set()
        elif self._outer_stop.wait(delay):
            self._halt.set()

    def __call__(self, actions: Sequence[WriteAction]) -> BulkResult:
        self._failures = 0
        if self._outer_stop.is_set():
            raise BulkStopped(BulkResult(), len(actions))
        try:
            if self._outputs is not None:
                return self._outputs.write(actions, {})
            return self._writer.write(actions)
        except BulkStopped:
            if not self._gave_up:
                raise
            reason = self._writer.health().last_error or "no reason given"
            raise PermanentElasticsearchError(
                f"gave up after {self._attempts} attempts: {reason}"
            ) from None


class ProgressLines:
    """Turns ``Progress`` into a line at most every ``interval`` seconds (counts, rate and,
    when the total is known, the time left), given to ``emit``."""

    def __init__(
        self,
        emit: Callable[[str], None],
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self._interval = interval
        self._clock = clock
        self._phase_started: dict[str, tuple[float, int]] = {}
        self._last = clock()

    def __call__(self, progress: Progress) -> None:
        now = self._clock()
        start = self._phase_started.setdefault(progress.phase, (now, progress.done))
        if now - self._last < self._interval:
            return
        self._last = now
        self._emit(progress_text(progress, now - start[0], progress.done - start[1]))


_DONE_WORDS: Final = {
    "index": "documents of the index read",
    "opencti": "indicators read",
    "orphans": "orphans handled",
    "recheck": "created documents checked again",
}


def progress_text(progress: Progress, seconds: float, done_in_phase: int) -> str:
    """``12,000 of 100,000 indicators read (2,400/s, about 37 s left); missing 3, ...``"""
    rate = done_in_phase / seconds if seconds > 0 else 0.0
    text = f"{progress.done:,}"
    if progress.total:
        text += f" of {progress.total:,}"
    text += f" {_DONE_WORDS.get(progress.phase, progress.phase)} ({rate:,.0f}/s"
    if progress.total and rate > 0 and progress.total > progress.done:
        text += f", about {(progress.total - progress.done) / rate:,.0f} s left"
    counts = progress.counts
    return (
        f"{text}); missing {counts.missing}, stale {counts.stale}, "
        f"orphaned {counts.orphaned}, skipped {counts.skipped}"
    )
