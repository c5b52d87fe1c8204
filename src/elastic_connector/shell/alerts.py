"""The alert poller (``ecs`` mode): Elastic Security indicator-match alerts -> OpenCTI sightings.

Every ``sightings.poll_interval`` the poller reads, in ``(@timestamp, kibana.alert.uuid)``
order, every alert after its cursor and up to *now - sightings.settle_delay*, rounded down to
the minute (Kibana stamps ``@timestamp`` before the alert becomes searchable; the cursor must
never pass an alert that could still appear), page by page (``sightings.page_size``, a page never
spanning two minutes) inside a point in time, then closes it. A cluster that refuses points in
time (or searches through one: a 403 when the role reads the alias but not its backing indices)
is read with plain ``search_after``. For each page the core decodes the alerts and groups them
into one sighting per OpenCTI indicator, identified by the page (its start and end positions);
the sightings are written; only when every one of them was accepted, or refused for good
(indicator deleted in OpenCTI), does the cursor move past the page. An OpenCTI outage therefore
holds the page and retries it with capped backoff: sightings are delayed, never lost, and never
counted twice (see ``shell.sightings_writer`` for how the platform's upsert rules are kept exact,
and ``docs/sightings.md`` for the whole design).

Alerts that stand for suppressed matches are counted once when first read, and remembered
(``suppressed``: alert id -> when it can no longer change); once that time has passed the alert
is read again and its final ``kibana.alert.suppression.docs_count`` is written as one more
sighting, identified by the alert, so that it can never be written twice.

The position lives in the connector state under ``alert_poller`` (so alerts created while the
connector was down are read after a restart): the cursor, the ids of alerts read at the
cursor's millisecond that have no ``kibana.alert.uuid`` (7.x signals, which cannot be ordered
inside that millisecond), per-indicator ``last_seen`` watermarks and the suppressed alerts still
to settle. The first run starts at
*now - sightings.initial_lookback*; a reset of the connector state from the OpenCTI UI starts
the poller there again.

Sorting on ``_id`` is refused by Elasticsearch 8.x (``indices.id_field_data.enabled``), so 7.x
signals (``.siem-signals-*``, or legacy signals behind the 8.x alias) are ordered on the same
``kibana.alert.uuid`` sort, where they have no value and come last in their millisecond.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

import msgspec
from elastic_transport import ApiError, TransportError
from elasticsearch import Elasticsearch
from returns.result import Failure

from elastic_connector.core.backoff import backoff_delay
from elastic_connector.core.config import Config
from elastic_connector.core.sightings.aggregation import (
    SOURCE_FIELDS,
    AlertCursor,
    SightingPayload,
    aggregate,
    cursor_from_state,
    cursor_to_state,
    epoch_millis,
    grid_cell,
    grid_floor,
    hit_position,
    ownership_for,
    scoped,
    search_body,
    suppressed_payloads,
    suppression_final_at,
)
from elastic_connector.core.sightings.aggregation import counts as alert_counts
from elastic_connector.core.sightings.alerts import Alert, AlertSchema, decode_hit
from elastic_connector.shell.connector_state import ConnectorState
from elastic_connector.shell.elastic import ErrorClass, classify_error, describe_error
from elastic_connector.shell.metrics import Metrics
from elastic_connector.shell.sightings_writer import (
    Accepted,
    Failed,
    Refused,
    SightingPlan,
    SightingWriter,
    plan_sightings,
    prune_watermarks,
)

if TYPE_CHECKING:
    from pycti import OpenCTIApiClient

_log = logging.getLogger(__name__)

STATE_KEY: Final = "alert_poller"
PIT_KEEP_ALIVE: Final = "5m"
AFTER_EVERY_UUID: Final = "\U0010ffff"
"""A ``search_after`` tiebreaker beyond any ``kibana.alert.uuid`` (the largest code point): what
follows it in a millisecond are the alerts without one."""
CODE_ALERT_INVALID: Final = "alert_invalid"
CODE_ENRICHMENT_INVALID: Final = "enrichment_invalid"
_JOIN_TIMEOUT: Final = 5.0


class PollPosition(msgspec.Struct, frozen=True):
    """Where the next poll starts, as kept in the connector state."""

    cursor: AlertCursor | None = None
    """The last alert consumed (None: never polled, start at the initial lookback)."""
    unsorted: tuple[str, ...] = ()
    """``_id`` of the alerts consumed at ``cursor.timestamp_ms`` that have no tiebreaker."""
    watermarks: dict[str, int] = msgspec.field(default_factory=dict)
    """Indicator id -> ``last_seen`` (epoch ms) last written, for marks that may still tie."""
    suppressed: dict[str, int] = msgspec.field(default_factory=dict)
    """Alert id -> when (epoch ms) that alert's suppressed matches are final and get written."""


def position_to_state(position: PollPosition) -> dict[str, object]:
    """The position as JSON-ready connector-state entries."""
    return {
        "cursor": None if position.cursor is None else cursor_to_state(position.cursor),
        "unsorted": list(position.unsorted),
        "last_seen": dict(position.watermarks),
        "suppressed": dict(position.suppressed),
    }


class _StoredPosition(msgspec.Struct):
    cursor: object = None
    unsorted: list[str] = msgspec.field(default_factory=list)
    last_seen: dict[str, int] = msgspec.field(default_factory=dict)
    suppressed: dict[str, int] = msgspec.field(default_factory=dict)


def position_from_state(value: object) -> PollPosition | str:
    """The position read back from the connector state, or why it cannot be."""
    if value is None:
        return PollPosition()
    try:
        stored = msgspec.convert(value, _StoredPosition)
    except msgspec.ValidationError as error:
        return f"invalid {STATE_KEY} in the connector state: {error}"
    cursor = cursor_from_state(stored.cursor)
    if isinstance(cursor, Failure):
        return str(cursor.failure())
    return PollPosition(
        cursor.unwrap(), tuple(stored.unsorted), dict(stored.last_seen), dict(stored.suppressed)
    )


def _page_scope(before: PollPosition, after: PollPosition) -> str:
    """What identifies a page: where it starts and where it ends (see the module notes)."""

    def where(position: PollPosition) -> str:
        cursor = position.cursor
        at = "start" if cursor is None else f"{cursor.timestamp_ms}/{cursor.tiebreaker}"
        return at + "".join(f"+{doc_id}" for doc_id in sorted(position.unsorted))

    return f"page:{where(before)}>{where(after)}"


class PollReport(msgspec.Struct, frozen=True):
    """What one poll did."""

    pages: int = 0
    alerts: int = 0
    """Alerts read (each once)."""
    sightings: int = 0
    """Sightings accepted by OpenCTI (or found already there)."""
    skipped: int = 0
    """Sightings OpenCTI refused for good (see the log and ``sighting_errors``)."""
    unusable: int = 0
    """Alerts or enrichments that could not be read."""
    complete: bool = False
    """Every alert up to the poll's end time was read and written."""
    cursor: AlertCursor | None = None
    error: str | None = None


class _Hit(msgspec.Struct, frozen=True):
    """Where a search hit sits in the alert order."""

    timestamp_ms: int
    tiebreaker: str | None
    doc_id: str
    sort: tuple[object, ...]


def _hit_order(hit: Mapping[str, object]) -> _Hit | None:
    raw_id = hit.get("_id")
    doc_id = raw_id if isinstance(raw_id, str) else ""
    sort = hit.get("sort")
    if isinstance(sort, list) and len(sort) >= 2 and isinstance(sort[0], int):
        tiebreak = sort[1]
        if isinstance(tiebreak, str) or tiebreak is None:
            return _Hit(sort[0], tiebreak, doc_id, tuple(sort))
    # No usable sort values (should not happen): fall back to the document itself.
    position = hit_position(hit)
    if position is None:
        return None
    return _Hit(position.timestamp_ms, position.tiebreaker, doc_id, ())


def _after(position: PollPosition, hit: _Hit) -> PollPosition:
    """The position once ``hit`` is consumed."""
    if hit.tiebreaker is not None:
        return msgspec.structs.replace(
            position, cursor=AlertCursor(hit.timestamp_ms, hit.tiebreaker), unsorted=()
        )
    # Without a tiebreaker the alert sorts after every uuid of its millisecond: remember it by
    # _id, and continue from "after every uuid" within that millisecond.
    cursor = position.cursor
    same_ms = cursor is not None and cursor.timestamp_ms == hit.timestamp_ms
    unsorted = (*position.unsorted, hit.doc_id) if same_ms else (hit.doc_id,)
    return msgspec.structs.replace(
        position, cursor=AlertCursor(hit.timestamp_ms, AFTER_EVERY_UUID), unsorted=unsorted
    )


def _consumed(position: PollPosition, hit: _Hit) -> bool:
    """Whether ``hit`` was already consumed (a re-read of the cursor's millisecond)."""
    cursor = position.cursor
    if cursor is None:
        return False
    if hit.tiebreaker is None:
        return hit.timestamp_ms == cursor.timestamp_ms and hit.doc_id in position.unsorted
    return (hit.timestamp_ms, hit.tiebreaker) <= (cursor.timestamp_ms, cursor.tiebreaker)


class _StateReset(Exception):
    """The connector state was reset from OpenCTI while polling."""


class _Stopped(Exception):
    """The poller was asked to stop (or ran out of write attempts) while writing a page."""


class AlertPoller:
    """Polls the alerts index and records sightings in OpenCTI (see the module notes).

    ``poll_once`` runs one whole poll (all pages) in the caller's thread; ``start`` runs polls
    every ``sightings.poll_interval`` in a thread of its own until ``stop``.
    ``max_write_rounds`` bounds how often a page's writes are retried (None: until stopped).
    Elasticsearch and OpenCTI failures end or delay a poll; anything else is a bug and ends
    the thread (the daemon's watchdog then stops the connector).
    """

    def __init__(
        self,
        *,
        config: Config,
        client: Elasticsearch,
        api: OpenCTIApiClient,
        state: ConnectorState,
        metrics: Metrics,
        clock: Callable[[], datetime],
        writer: SightingWriter | None = None,
        max_write_rounds: int | None = None,
    ) -> None:
        self._config = config
        self._settings = config.sightings
        self._client = client
        self._state = state
        self._metrics = metrics
        self._clock = clock
        self._writer = writer or SightingWriter(api, config.sightings, config.kibana)
        self._ownership = ownership_for(config)
        self._max_write_rounds = max_write_rounds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll_lock = threading.Lock()
        self._position: PollPosition | None = None
        self._persisted = False
        """Our entry is in the state (a later absence means a reset)."""
        self._reset_pending = False
        """Restarted after a reset that the connector state has not accepted writes since."""
        self._verify_next_page = True
        """The next page may have been written before: after a start (the state reaches
        OpenCTI only with pycti's ping, every 40 s, so a crash replays up to 40 s of pages), a
        reset, or a stop mid-page. Its sightings are looked up before being sent, page after
        page, until one turns out to be new."""
        self._use_pit = True
        self._mismatched: set[str] = set()
        """Sightings whose count mismatch was logged (once each)."""

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Poll in a background thread until ``stop``."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="alert-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the poll to end (a page being written is left for the next run) and wait a
        little for the thread."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT)

    def is_alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            report = self.poll_once()
            if report.alerts or report.error:
                _log.info(
                    "alert poll: %d alerts, %d sightings written, %d skipped%s",
                    report.alerts,
                    report.sightings,
                    report.skipped,
                    f" ({report.error})" if report.error else "",
                )
            self._stop.wait(self._settings.poll_interval)

    # --- one poll --------------------------------------------------------------------------

    def poll_once(self) -> PollReport:
        """Read every alert after the cursor (all pages) and write its sightings."""
        with self._poll_lock:
            counts = _Counts()
            try:
                return self._poll(counts)
            except _StateReset:
                return counts.report(self._current_cursor(), error="connector state reset")
            except _Stopped:
                return counts.report(self._current_cursor(), error="stopped before the end")
            except (ApiError, TransportError) as error:
                problem = describe_error(error, self._config.elasticsearch.hosts)
                kind = "" if classify_error(error) is ErrorClass.TRANSIENT else " (check access)"
                _log.error(
                    "cannot read alerts from %s%s: %s", self._settings.alerts_index, kind, problem
                )
                return counts.report(self._current_cursor(), error=problem)

    def _current_cursor(self) -> AlertCursor | None:
        return None if self._position is None else self._position.cursor

    def _poll(self, counts: _Counts) -> PollReport:
        now = self._clock()
        settled = now - timedelta(seconds=self._settings.settle_delay)
        since = grid_floor(now - timedelta(seconds=self._settings.initial_lookback))
        until = grid_floor(settled)
        position = self._load_position()
        if position.cursor is None:
            _log.info("reading alerts from %s on (initial lookback)", since.isoformat())
        pit = self._open_pit()
        try:
            complete = self._read_pages(position, since, until, pit, counts)
        finally:
            if pit is not None:
                self._close_pit(pit.id)
        position = self._position or PollPosition()
        if complete:
            if position.cursor is None:
                # Nothing to read yet: start from here next time, not from a new lookback.
                position = msgspec.structs.replace(
                    position, cursor=AlertCursor(epoch_millis(since), "")
                )
            # Also saves a position kept in memory while a state reset was not acknowledged.
            self._save(position)
            self._write_suppressed(settled, counts)
            position = self._position or position
        return counts.report(position.cursor, complete=complete)

    def _read_pages(
        self,
        position: PollPosition,
        since: datetime,
        until: datetime,
        pit: _Pit | None,
        counts: _Counts,
    ) -> bool:
        continuation: list[object] | None = None
        while not self._stop.is_set():
            body = search_body(
                position.cursor, self._settings.page_size, since, until, AlertSchema.ALERTS
            )
            if continuation is not None:
                body["search_after"] = continuation
            elif position.unsorted:
                body["query"] = _excluding(body.get("query"), position.unsorted)
            hits = self._search(body, pit)
            if hits is None:
                # The point in time expired (a long OpenCTI outage) or may not be searched:
                # continue without it.
                pit, continuation = None, None
                continue
            if not hits:
                return True
            orders = [_hit_order(hit) for hit in hits]
            # A page never spans two minutes: its alerts do not depend on when it is read.
            cut = _same_minute(orders)
            cut_short = cut < len(hits)
            hits, orders = hits[:cut], orders[:cut]
            fresh = [
                hit
                for hit, order in zip(hits, orders, strict=True)
                if order is None or not _consumed(position, order)
            ]
            moved = position
            for order in orders:
                if order is not None and not _consumed(moved, order):
                    moved = _after(moved, order)
            last = orders[-1]
            progress = (moved.cursor, moved.unsorted) != (position.cursor, position.unsorted) or (
                pit is not None and last is not None and len(last.sort) > 2
            )
            position = self._write_page(fresh, position, moved, counts)
            counts.pages += 1
            if len(hits) < self._settings.page_size and not cut_short:
                return True
            if not progress:
                _log.warning(
                    "more than %d alerts without kibana.alert.uuid share the millisecond %s: "
                    "raise sightings.page_size to read past them",
                    self._settings.page_size,
                    None if position.cursor is None else position.cursor.timestamp,
                )
                return False
            # Inside a point in time, continue exactly after the last hit (its sort values end
            # with the shard-doc tiebreaker); otherwise from the saved position.
            continuation = (
                list(last.sort) if pit is not None and last and len(last.sort) > 2 else None
            )
        return False

    def _decode(self, hits: Sequence[Mapping[str, object]], counts: _Counts) -> list[Alert]:
        alerts: list[Alert] = []
        invalid = 0
        for hit in hits:
            decoded = decode_hit(hit)
            if isinstance(decoded, Failure):
                invalid += 1
                _log.warning("alert %s skipped: %s", hit.get("_id"), decoded.failure())
                continue
            alerts.append(decoded.unwrap())
        if invalid:
            counts.unusable += invalid
            self._metrics.sighting_errors.labels(CODE_ALERT_INVALID).inc(invalid)
        return alerts

    def _write_page(
        self,
        fresh: Sequence[Mapping[str, object]],
        before: PollPosition,
        after: PollPosition,
        counts: _Counts,
    ) -> PollPosition:
        """Write the sightings of one page, then save the position after it."""
        alerts = self._decode(fresh, counts)
        result = aggregate(
            alerts,
            self._ownership,
            self._config.kibana.url,
            include_closed=self._settings.include_closed,
        )
        skipped = tuple(dict.fromkeys(result.skipped))
        for part in skipped:
            _log.warning("alert %s: part skipped: %s", part.alert_id, part.reason)
        scope = _page_scope(before, after)
        payloads = [scoped(payload, scope) for payload in result.sightings]
        suppressed = dict(before.suppressed)
        for alert in alerts:
            final_at = suppression_final_at(alert)
            if final_at is not None and alert_counts(alert, self._settings.include_closed):
                suppressed[alert.id] = epoch_millis(final_at)
        verified = self._verify_next_page
        watermarks, new_writes = self._write_all(
            payloads, before.watermarks, verify=verified, counts=counts
        )
        # Counted once the page is done: a page left unfinished is read again.
        counts.alerts += len(fresh)
        counts.unusable += len(skipped)
        self._metrics.alerts.inc(len(fresh))
        if skipped:
            self._metrics.sighting_errors.labels(CODE_ENRICHMENT_INVALID).inc(len(skipped))
        cursor_ms = after.cursor.timestamp_ms if after.cursor is not None else 0
        after = msgspec.structs.replace(
            after,
            watermarks=prune_watermarks(watermarks, cursor_ms),
            suppressed=suppressed,
        )
        self._save(after)
        if verified and new_writes:
            # A sighting that was not there yet: nothing after it was written before either.
            self._verify_next_page = False
        return after

    def _write_suppressed(self, settled: datetime, counts: _Counts) -> None:
        """Write the final suppressed matches of the alerts that can no longer change."""
        position = self._position or PollPosition()
        ready_ms = epoch_millis(settled)
        due = sorted(
            (final_ms, alert_id)
            for alert_id, final_ms in position.suppressed.items()
            if final_ms <= ready_ms
        )
        size = self._settings.page_size
        for start in range(0, len(due), size):
            if self._stop.is_set():
                raise _Stopped
            batch = [alert_id for _, alert_id in due[start : start + size]]
            alerts = {alert.id: alert for alert in self._decode(self._fetch(batch), counts)}
            payloads: list[SightingPayload] = []
            later: dict[str, int] = {}
            for alert_id in batch:
                alert = alerts.get(alert_id)
                if alert is None:
                    _log.info(
                        "suppressed alert %s is gone: its suppressed matches are not counted",
                        alert_id,
                    )
                    continue
                final_at = suppression_final_at(alert)
                if final_at is not None and epoch_millis(final_at) > ready_ms:
                    later[alert_id] = epoch_millis(final_at)
                elif alert_counts(alert, self._settings.include_closed):
                    payloads.extend(
                        suppressed_payloads(alert, self._ownership, self._config.kibana.url)
                    )
            position = self._position or position
            cursor_ms = position.cursor.timestamp_ms if position.cursor is not None else 0
            # Every such write is checked first: it can be one a crash left unsaved.
            watermarks, _ = self._write_all(
                payloads, position.watermarks, verify=True, counts=counts, floor_ms=cursor_ms
            )
            remaining = {
                key: value for key, value in position.suppressed.items() if key not in batch
            }
            remaining.update(later)
            self._save(
                msgspec.structs.replace(
                    position,
                    watermarks=prune_watermarks(watermarks, cursor_ms),
                    suppressed=remaining,
                )
            )

    def _fetch(self, alert_ids: Sequence[str]) -> list[Mapping[str, object]]:
        """The alerts with these ids, as they are now."""
        answer = self._client.search(
            index=self._settings.alerts_index,
            body={
                "size": len(alert_ids),
                "_source": list(SOURCE_FIELDS),
                "query": {"ids": {"values": list(alert_ids)}},
            },
            allow_no_indices=True,
            ignore_unavailable=True,
        )
        hits = _body(_body(answer.body).get("hits")).get("hits")
        return [hit for hit in hits if isinstance(hit, Mapping)] if isinstance(hits, list) else []

    def _write_all(
        self,
        payloads: Sequence[SightingPayload],
        watermarks: Mapping[str, int],
        *,
        verify: bool,
        counts: _Counts,
        floor_ms: int = 0,
    ) -> tuple[dict[str, int], int]:
        """Write every payload until each is accepted or refused for good (raise ``_Stopped``
        otherwise); returns the watermarks after them and how many writes were new to OpenCTI.

        Each plan's dates are chosen just before its first send, after the watermarks learned
        from the sightings read back so far: OpenCTI's own ``last_seen`` then also counts, so a
        write always widens the sighting it merges into, even after a crash lost the
        watermarks of writes OpenCTI had taken.
        """
        marks = dict(watermarks)
        pending: list[tuple[SightingPayload, SightingPlan | None, bool]] = [
            (payload, None, verify) for payload in payloads
        ]
        rounds = 0
        new_writes = 0
        while pending:
            retry: list[tuple[SightingPayload, SightingPlan | None, bool]] = []
            problem = ""
            for index, (payload, planned, check) in enumerate(pending):
                if self._stop.is_set():
                    raise _Stopped
                plan = planned
                if plan is None:
                    (plan,), marks = plan_sightings([payload], marks, floor_ms)
                if payload.count <= 0:
                    continue  # only closed alerts: it dates the indicator, nothing to count
                outcome = self._writer.write(plan, verify=check)
                if isinstance(outcome, Accepted):
                    counts.sightings += 1
                    self._learn(marks, payload.indicator_id, outcome)
                    if not outcome.already:
                        new_writes += 1
                        self._metrics.sightings.inc()
                    if outcome.problem is not None:
                        self._mismatch(payload, outcome)
                elif isinstance(outcome, Refused):
                    counts.skipped += 1
                    self._metrics.sighting_errors.labels(outcome.code).inc()
                    _log.warning(
                        "sighting skipped: %s (alerts %s)",
                        outcome.reason,
                        ", ".join(payload.alert_ids[:5]),
                    )
                else:
                    assert isinstance(outcome, Failed)
                    # OpenCTI is probably unavailable: keep this one and the rest for later.
                    retry.append((payload, plan, check or outcome.maybe_applied))
                    retry.extend(pending[index + 1 :])
                    problem = outcome.reason
                    break
            pending = retry
            if not pending:
                return marks, new_writes
            rounds += 1
            if self._max_write_rounds is not None and rounds >= self._max_write_rounds:
                raise _Stopped
            cap = self._config.elasticsearch.retry_max_backoff
            delay = backoff_delay(rounds - 1, random.random(), base=min(1.0, cap), cap=cap)
            _log.warning(
                "OpenCTI did not take %d sighting(s) (%s): retrying in %.1f s",
                len(pending),
                problem,
                delay,
            )
            if self._stop.wait(delay):
                raise _Stopped
        return marks, new_writes

    @staticmethod
    def _learn(marks: dict[str, int], indicator_id: str, outcome: Accepted) -> None:
        stored = outcome.stored
        if stored is not None and stored.last_seen is not None:
            seen = epoch_millis(stored.last_seen)
            marks[indicator_id] = max(marks.get(indicator_id, seen), seen)

    def _mismatch(self, payload: SightingPayload, outcome: Accepted) -> None:
        self._metrics.sighting_count_mismatches.inc()
        if outcome.sighting_id in self._mismatched:
            return
        self._mismatched.add(outcome.sighting_id)
        _log.warning(
            "sighting %s of indicator %s does not count these %d match(es): %s "
            "(logged once per sighting; see elastic_connector_sighting_count_mismatches_total)",
            outcome.sighting_id,
            payload.indicator_id,
            payload.count,
            outcome.problem,
        )

    # --- position and state ----------------------------------------------------------------

    def _load_position(self) -> PollPosition:
        snapshot = self._state.snapshot()
        stored = None if snapshot is None else snapshot.get(STATE_KEY)
        if self._position is None:
            loaded = position_from_state(stored)
            if isinstance(loaded, str):
                _log.error("%s: reading alerts from the initial lookback", loaded)
                loaded = PollPosition()
            self._position = loaded
            self._persisted = stored is not None
        elif self._persisted and not self._reset_pending and stored is None:
            self._restart("the connector state was reset from OpenCTI")
        return self._position

    def _save(self, position: PollPosition) -> None:
        """Keep ``position`` and put it in the connector state (raise ``_StateReset`` when the
        state was reset meanwhile)."""
        snapshot = self._state.snapshot()
        if (
            self._persisted
            and not self._reset_pending
            and (snapshot is None or STATE_KEY not in snapshot)
        ):
            self._restart("the connector state was reset from OpenCTI")
            raise _StateReset
        if not self._state.update({STATE_KEY: position_to_state(position)}):
            if not self._reset_pending:
                self._restart("the connector state was reset from OpenCTI")
                raise _StateReset
            # The stream pipeline has not restarted yet: keep going in memory; the position is
            # saved as soon as the state takes writes again.
            self._position = position
            return
        self._position = position
        self._persisted = True
        self._reset_pending = False

    def _restart(self, why: str) -> None:
        _log.warning("%s: reading alerts again from the initial lookback", why)
        self._position = PollPosition()
        self._reset_pending = True
        self._verify_next_page = True

    # --- Elasticsearch ---------------------------------------------------------------------

    def _open_pit(self) -> _Pit | None:
        if not self._use_pit:
            return None
        try:
            answer = self._client.open_point_in_time(
                index=self._settings.alerts_index, keep_alive=PIT_KEEP_ALIVE
            )
        except ApiError as error:
            if error.meta.status == 404:
                return None  # no alerts index yet: a plain search finds nothing either
            if classify_error(error) is ErrorClass.TRANSIENT:
                raise
            self._use_pit = False
            _log.warning(
                "Elasticsearch refused a point in time on %s (%s): reading alerts with plain "
                "search_after",
                self._settings.alerts_index,
                describe_error(error, self._config.elasticsearch.hosts),
            )
            return None
        pit_id = _text(_body(answer.body).get("id"))
        return _Pit(pit_id) if pit_id else None

    def _close_pit(self, pit_id: str) -> None:
        try:
            self._client.close_point_in_time(id=pit_id)
        except (ApiError, TransportError) as error:
            _log.debug("closing a point in time failed (it expires by itself): %s", error)

    def _search(
        self, body: dict[str, object], pit: _Pit | None
    ) -> list[Mapping[str, object]] | None:
        """One page of hits; None when the point in time has expired."""
        if pit is None:
            answer = self._client.search(
                index=self._settings.alerts_index,
                body=body,
                allow_no_indices=True,
                ignore_unavailable=True,
            )
        else:
            body["pit"] = {"id": pit.id, "keep_alive": PIT_KEEP_ALIVE}
            try:
                answer = self._client.search(body=body)
            except ApiError as error:
                if error.meta.status == 404:
                    return None
                if error.meta.status == 403:
                    # Searching through a point in time opened on an alias needs read on the
                    # backing indices, which a role granting the alias only does not give.
                    self._use_pit = False
                    _log.warning(
                        "searching %s through a point in time was refused (%s): reading alerts "
                        "with plain search_after; grant read on the backing indices "
                        "(.internal.alerts-security.alerts-*) to use points in time",
                        self._settings.alerts_index,
                        describe_error(error, self._config.elasticsearch.hosts),
                    )
                    return None
                if error.meta.status == 400 and not pit.searched:
                    # A first search refused inside a point in time: do without one.
                    self._use_pit = False
                    _log.warning(
                        "search in a point in time refused (%s): reading alerts with plain "
                        "search_after",
                        describe_error(error, self._config.elasticsearch.hosts),
                    )
                    return None
                raise
            pit.searched = True
        response = _body(answer.body)
        if pit is not None:
            pit.id = _text(response.get("pit_id")) or pit.id
        hits = _body(response.get("hits")).get("hits")
        return [hit for hit in hits if isinstance(hit, Mapping)] if isinstance(hits, list) else []


class _Pit:
    def __init__(self, pit_id: str) -> None:
        self.id = pit_id
        self.searched = False


class _Counts:
    """Running totals of one poll."""

    def __init__(self) -> None:
        self.pages = 0
        self.alerts = 0
        self.sightings = 0
        self.skipped = 0
        self.unusable = 0

    def report(
        self, cursor: AlertCursor | None, *, complete: bool = False, error: str | None = None
    ) -> PollReport:
        return PollReport(
            pages=self.pages,
            alerts=self.alerts,
            sightings=self.sightings,
            skipped=self.skipped,
            unusable=self.unusable,
            complete=complete,
            cursor=cursor,
            error=error,
        )


def _same_minute(orders: Sequence[_Hit | None]) -> int:
    """How many hits, from the first, share the first hit's minute (``PAGE_GRID_MS``)."""
    first = next((order for order in orders if order is not None), None)
    if first is None:
        return len(orders)
    cell = grid_cell(first.timestamp_ms)
    for index, order in enumerate(orders):
        if order is not None and grid_cell(order.timestamp_ms) != cell:
            return index
    return len(orders)


def _excluding(query: object, doc_ids: Sequence[str]) -> dict[str, object]:
    """``query`` without the documents ``doc_ids`` (alerts without a tiebreaker already read in
    the cursor's millisecond: ``search_after`` cannot step over them)."""
    return {"bool": {"filter": [query], "must_not": [{"ids": {"values": list(doc_ids)}}]}}


def _body(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
