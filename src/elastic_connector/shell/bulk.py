"""Writing ``Upsert``/``Delete`` actions to Elasticsearch with ``_bulk``, losing nothing.

What happens to a sequence of actions:

1. **Collapse**: only the last action per (index, ``_id``) is kept, in the order of those last
   actions. Within one call the final state is what counts, each document is written once, and
   a retry of some items can never put an older version after a newer one.
2. **Encode**: NDJSON, the document bytes exactly as the core produced them (never decoded and
   re-encoded). A document that is not single-line JSON would corrupt the request framing, so
   it is rejected before sending.
3. **Batch** by ``bulk_max_actions`` and ``bulk_max_bytes``; batches go one at a time.
4. **Per item**: success, or a delete of a missing document (success), or a rejection
   (400 mapping/parsing error: reported with id and reason, counted, never retried), or retry
   (429, 502/503/504: only those items are sent again), or a problem of the *target*, raised as
   ``PermanentElasticsearchError`` for the daemon to stall on and report (401/403, missing
   index or alias, closed index, alias without a write index): the document is fine, so it is
   never dropped. A delete answered 404 *with* an error (``index_not_found_exception``) is such
   a target problem, not "already gone". A guarded action (reconciliation's, ``Guard``)
   answered 409 lost to a newer write of the same document: counted as a conflict, dropped.
5. **Whole request**: connection errors, timeouts, 429 and 5xx are retried with capped
   exponential backoff and jitter for as long as they last (the caller stops reading the stream
   meanwhile); ``stop`` interrupts the wait with ``BulkStopped``. A 413 splits the batch, and
   so does a ``PERMANENT`` circuit-breaker 429 (Elasticsearch says the same request would trip
   the breaker again): halves are sent until a single document still trips it, which is then
   rejected with its id and reason instead of being retried unchanged forever.

A ``BulkWriter`` is used by one thread at a time.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

import msgspec
from elastic_transport import ApiError
from elasticsearch import Elasticsearch

from elastic_connector.core.actions import Delete, Upsert
from elastic_connector.core.backoff import backoff_delay
from elastic_connector.core.config import ElasticsearchSettings
from elastic_connector.core.elastic.bulk_lines import WriteAction, encode_action
from elastic_connector.shell.elastic import (
    ErrorClass,
    PermanentElasticsearchError,
    classify_error,
    describe_error,
    describe_response,
)

__all__ = [
    "MAX_BOUNDED_ITEM_ATTEMPTS",
    "BulkResult",
    "BulkStopped",
    "BulkWriter",
    "ItemError",
    "ItemOutcome",
    "Rejection",
    "WriteAction",
    "WriterHealth",
    "collapse",
    "encode_action",
    "item_outcome",
    "permanent_breaker",
    "plan_batches",
    "target_problem",
]

log = logging.getLogger(__name__)

MAX_BOUNDED_ITEM_ATTEMPTS: Final = 10
"""Per-item 500 (and other unusual 5xx) answers are often a bug tripped by that one document,
not an outage: after this many attempts the item is rejected so it cannot block the stream."""

_TRANSIENT_ITEM_STATUSES: Final = frozenset({429, 502, 503, 504})
_NO_WRITE_INDEX: Final = "no write index is defined for alias"
_MAX_REASON_CHARS: Final = 500
_FILTER_PATH: Final = ",".join(
    [
        "errors",
        "items.*.status",
        "items.*.error.type",
        "items.*.error.reason",
        "items.*.error.durability",
        "items.*.error.index",
        "items.*.error.caused_by.type",
        "items.*.error.caused_by.reason",
    ]
)
_HEADERS: Final = {"content-type": "application/x-ndjson", "accept": "application/json"}


class Rejection(msgspec.Struct, frozen=True):
    """A document Elasticsearch (or the writer) refused; retrying would not help."""

    index: str
    id: str
    status: int
    """HTTP status of the item; 0 when refused before sending."""
    reason: str


class BulkResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one ``BulkWriter.write`` call achieved."""

    written: int = 0
    """Upserts acknowledged."""
    deleted: int = 0
    """Deletes acknowledged, including documents that were already gone."""
    rejected: tuple[Rejection, ...] = ()
    retries: int = 0
    """Requests sent again after a transient failure (whole request or some items)."""
    superseded: int = 0
    """Actions dropped because a later action on the same document replaced them."""
    conflicted: tuple[tuple[str, str], ...] = ()
    """(index, id) of each guarded action (``Guard``) Elasticsearch refused because the
    document changed since it was read (409): a newer write won, which is what the guard is
    for, and the document was left as it was."""

    @property
    def conflicts(self) -> int:
        """How many guarded actions lost to a newer write (``conflicted``)."""
        return len(self.conflicted)


class WriterHealth(msgspec.Struct, frozen=True, kw_only=True):
    """``failing_for``: seconds the write in progress has been retried (None while writes
    succeed); ``last_error``: why the last attempt failed."""

    failing_for: float | None
    last_error: str | None


class BulkStopped(Exception):
    """The stop event was set while waiting to retry. ``result`` holds what was acknowledged;
    ``unacknowledged`` actions may or may not have been applied (so the caller must not commit
    the stream position past them)."""

    def __init__(self, result: BulkResult, unacknowledged: int) -> None:
        super().__init__(f"bulk write stopped with {unacknowledged} actions unacknowledged")
        self.result = result
        self.unacknowledged = unacknowledged


class ItemOutcome(enum.Enum):
    """What to do with one item of a ``_bulk`` response."""

    DONE = "done"
    ABSENT = "absent"
    """A delete of a document that does not exist: the goal is reached."""
    RETRY = "retry"
    RETRY_BOUNDED = "retry_bounded"
    SPLIT = "split"
    """A ``PERMANENT`` circuit breaker: the same request would trip it again; send less."""
    REJECT = "reject"
    FATAL = "fatal"
    """A problem of the target (credentials, privileges, missing or closed index, alias without
    a write index): stall and report; the document itself is fine."""


# ---------------------------------------------------------------------------------------------
# Pure helpers


def collapse(actions: Sequence[WriteAction]) -> list[WriteAction]:
    """The last action per (index, id), ordered by the position of that last action."""
    last: dict[tuple[str, str], int] = {}
    for position, action in enumerate(actions):
        last[(action.index, action.id)] = position
    return [actions[p] for p in sorted(last.values())]


def plan_batches(sizes: Sequence[int], max_actions: int, max_bytes: int) -> list[range]:
    """Split items of the given encoded sizes into consecutive batches.

    A batch holds at most ``max_actions`` items and at most ``max_bytes`` bytes, except that an
    item larger than ``max_bytes`` travels alone. Batches are filled greedily, in order.
    """
    max_actions = max(1, max_actions)
    batches: list[range] = []
    start = 0
    total = 0
    for position, size in enumerate(sizes):
        count = position - start
        if count and (count >= max_actions or total + size > max_bytes):
            batches.append(range(start, position))
            start, total = position, 0
        total += size
    if start < len(sizes):
        batches.append(range(start, len(sizes)))
    return batches


def item_outcome(op: str, status: int, error: ItemError | str | None = None) -> ItemOutcome:
    """How to treat a ``_bulk`` item answered with ``status`` (and ``error``) for ``op``."""
    if 200 <= status <= 299:
        return ItemOutcome.DONE
    if status == 404:
        # Deleting what is not there reaches the goal (Elasticsearch answers such a delete
        # with ``result: not_found`` and no error). A 404 *with* an error is the target's: the
        # index or alias is gone (removed by hand; require_alias stops auto-creation).
        return ItemOutcome.ABSENT if op == "delete" and error is None else ItemOutcome.FATAL
    if target_problem(error):
        return ItemOutcome.FATAL
    if status == 429 and permanent_breaker(error):
        return ItemOutcome.SPLIT
    if status in _TRANSIENT_ITEM_STATUSES:
        return ItemOutcome.RETRY
    if 500 <= status <= 599:
        return ItemOutcome.RETRY_BOUNDED
    if status in (401, 403):
        return ItemOutcome.FATAL
    return ItemOutcome.REJECT


def target_problem(error: ItemError | str | None) -> bool:
    """Whether ``error`` is about where the document goes, not about the document: a closed
    index, or an alias without a write index (both 400s that look like a bad document)."""
    if not isinstance(error, ItemError):
        return False
    if error.type == "index_closed_exception":
        return True
    return error.type == "illegal_argument_exception" and _NO_WRITE_INDEX in (error.reason or "")


def permanent_breaker(error: object) -> bool:
    """Whether ``error`` (an item error, or a whole error body's ``error``) is a circuit breaker
    that trips again on the same request (``durability: PERMANENT``)."""
    if isinstance(error, ItemError):
        return error.type == "circuit_breaking_exception" and error.durability == "PERMANENT"
    if isinstance(error, dict):
        return (
            error.get("type") == "circuit_breaking_exception"
            and error.get("durability") == "PERMANENT"
        )
    return False


# ---------------------------------------------------------------------------------------------
# Response shapes (only the filtered fields)


class _Cause(msgspec.Struct):
    type: str = ""
    reason: str | None = None


class ItemError(msgspec.Struct):
    """The ``error`` of a ``_bulk`` item (the fields the writer asks for)."""

    type: str = ""
    reason: str | None = None
    durability: str | None = None
    """``TRANSIENT`` or ``PERMANENT`` on a ``circuit_breaking_exception``."""
    index: str | None = None
    caused_by: _Cause | None = None


class _Item(msgspec.Struct):
    status: int
    error: ItemError | str | None = None


class _Response(msgspec.Struct):
    errors: bool = False
    items: list[dict[str, _Item]] = msgspec.field(default_factory=list)


def _reason(error: ItemError | str | None) -> str:
    if error is None:
        return "no reason given"
    if isinstance(error, str):
        text = error
    else:
        text = f"{error.type}: {error.reason}" if error.reason else error.type
        if error.caused_by is not None and error.caused_by.reason:
            text += f" ({error.caused_by.reason})"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 3] + "..."


# ---------------------------------------------------------------------------------------------
# The writer


class _Pending(msgspec.Struct):
    action: WriteAction
    lines: bytes
    attempts: int = 0


class _Tally:
    def __init__(self) -> None:
        self.written = 0
        self.deleted = 0
        self.rejected: list[Rejection] = []
        self.retries = 0
        self.superseded = 0
        self.conflicted: list[tuple[str, str]] = []

    def result(self) -> BulkResult:
        return BulkResult(
            written=self.written,
            deleted=self.deleted,
            rejected=tuple(self.rejected),
            retries=self.retries,
            superseded=self.superseded,
            conflicted=tuple(self.conflicted),
        )

    def acknowledge(self, action: WriteAction) -> None:
        if isinstance(action, Upsert):
            self.written += 1
        else:
            self.deleted += 1

    def reject(self, action: WriteAction, status: int, reason: str) -> None:
        self.rejected.append(Rejection(action.index, action.id, status, reason))
        log.warning(
            "Elasticsearch rejected %s of document %s in %s (HTTP %d): %s",
            "the upsert" if isinstance(action, Upsert) else "the delete",
            action.id,
            action.index,
            status,
            reason,
        )


class _Stopped(Exception):
    def __init__(self, unacknowledged: int) -> None:
        super().__init__(unacknowledged)
        self.unacknowledged = unacknowledged


class _Split(Exception):
    """Send ``pending`` again in halves; a single document left is rejected with ``status``
    and ``reason`` (what is wrong with it alone)."""

    def __init__(
        self, pending: list[_Pending], status: int, reason: Callable[[int], str], *, alone: bool
    ) -> None:
        super().__init__(len(pending))
        self.pending = pending
        self.status = status
        self.reason = reason
        self.alone = alone
        """The refused request held that one document only: splitting cannot help."""


def _too_large(size: int) -> str:
    return (
        f"document of {size} bytes is larger than the cluster accepts in one request "
        "(http.max_content_length)"
    )


def _breaker_reason(detail: str) -> Callable[[int], str]:
    def reason(size: int) -> str:
        return (
            f"document of {size} bytes alone trips Elasticsearch's circuit breaker, which says "
            f"retrying cannot help (durability PERMANENT): {detail}"
        )

    return reason


class BulkWriter:
    """Sends actions to Elasticsearch with ``_bulk`` and waits out transient failures.

    ``require_alias``: make Elasticsearch refuse writes to a name that is not an alias instead of
    auto-creating an index with guessed mappings (pass ``SetupReport.require_alias``).
    ``sleep``/``random``/``clock`` are injectable for tests; by default the wait is
    ``stop.wait`` so setting ``stop`` ends it at once.
    """

    def __init__(
        self,
        client: Elasticsearch,
        *,
        require_alias: bool,
        max_actions: int = 500,
        max_bytes: int = 5_000_000,
        max_backoff: float = 60.0,
        base_backoff: float = 0.5,
        refresh: bool = False,
        stop: threading.Event | None = None,
        sleep: Callable[[float], object] | None = None,
        random: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Transport retries are immediate and would multiply ours: the writer retries itself.
        self._client = client.options(max_retries=0, retry_on_timeout=False)
        self._hosts = _client_hosts(client)
        self._require_alias = require_alias
        self._max_actions = max_actions
        self._max_bytes = max_bytes
        self._max_backoff = max_backoff
        self._base_backoff = base_backoff
        self._refresh = refresh
        self._stop = stop if stop is not None else threading.Event()
        self._sleep: Callable[[float], object] = sleep if sleep is not None else self._stop.wait
        self._random = random
        self._clock = clock
        self._attempt = 0
        self._failing_since: float | None = None
        self._last_error: str | None = None

    def health(self) -> WriterHealth:
        """How long the current write has been failing and why (read from another thread)."""
        since, error = self._failing_since, self._last_error
        return WriterHealth(
            failing_for=None if since is None else max(0.0, self._clock() - since),
            last_error=error,
        )

    @classmethod
    def from_settings(
        cls,
        client: Elasticsearch,
        settings: ElasticsearchSettings,
        *,
        require_alias: bool,
        stop: threading.Event | None = None,
    ) -> BulkWriter:
        """A writer with the batch sizes and backoff cap from ``settings``."""
        return cls(
            client,
            require_alias=require_alias,
            max_actions=settings.bulk_max_actions,
            max_bytes=settings.bulk_max_bytes,
            max_backoff=settings.retry_max_backoff,
            stop=stop,
        )

    def write(self, actions: Sequence[WriteAction]) -> BulkResult:
        """Apply ``actions``; returns once every one is acknowledged or rejected.

        Raises ``PermanentElasticsearchError`` (401/403, missing index, refused request) and
        ``BulkStopped`` (stop event set during a retry wait).
        """
        tally = _Tally()
        unique = collapse(actions)
        tally.superseded = len(actions) - len(unique)
        pending: list[_Pending] = []
        for action in unique:
            try:
                pending.append(_Pending(action, encode_action(action)))
            except ValueError as exc:
                tally.reject(action, 0, str(exc))
        queue = deque(
            [pending[i] for i in batch]
            for batch in plan_batches(
                [len(p.lines) for p in pending], self._max_actions, self._max_bytes
            )
        )
        while queue:
            batch = queue.popleft()
            try:
                self._write_batch(batch, tally)
            except _Split as split:
                rest = split.pending  # what is not yet acknowledged
                if split.alone:
                    tally.reject(rest[0].action, split.status, split.reason(len(rest[0].lines)))
                elif len(rest) == 1:
                    queue.appendleft(rest)
                else:
                    half = len(rest) // 2
                    queue.extendleft([rest[half:], rest[:half]])
            except _Stopped as stopped:
                left = stopped.unacknowledged + sum(len(b) for b in queue)
                raise BulkStopped(tally.result(), left) from None
        return tally.result()

    def _write_batch(self, batch: list[_Pending], tally: _Tally) -> None:
        pending = batch
        while pending:
            try:
                response = self._send(b"".join(p.lines for p in pending))
            except ApiError as exc:
                if exc.meta.status == 413:
                    raise _Split(pending, 413, _too_large, alone=len(pending) == 1) from exc
                error = exc.body.get("error") if isinstance(exc.body, dict) else None
                if exc.meta.status == 429 and isinstance(error, dict) and permanent_breaker(error):
                    detail = _reason(f"{error.get('type')}: {error.get('reason')}")
                    log.warning(
                        "Elasticsearch's circuit breaker refuses a bulk request of %d documents "
                        "for good (%s): sending it in halves",
                        len(pending),
                        detail,
                    )
                    raise _Split(
                        pending, 429, _breaker_reason(detail), alone=len(pending) == 1
                    ) from exc
                self._fail_or_wait(exc, tally, len(pending))
                continue
            except Exception as exc:
                self._fail_or_wait(exc, tally, len(pending))
                continue
            if len(response.items) != len(pending):
                raise PermanentElasticsearchError(
                    f"Elasticsearch answered a bulk request of {len(pending)} actions with "
                    f"{len(response.items)} results; refusing to guess which were applied"
                )
            retry: list[_Pending] = []
            smaller: list[_Pending] = []
            breaker_detail = ""
            first_reason = ""
            for item, answer in zip(pending, response.items, strict=True):
                op, result = next(iter(answer.items()))
                if result.status == 409 and item.action.guard is not None:
                    # The document changed since it was read: keep it.
                    tally.conflicted.append((item.action.index, item.action.id))
                    continue
                outcome = item_outcome(op, result.status, result.error)
                if outcome is ItemOutcome.SPLIT:
                    smaller.append(item)
                    breaker_detail = breaker_detail or _reason(result.error)
                elif outcome is ItemOutcome.DONE or outcome is ItemOutcome.ABSENT:
                    tally.acknowledge(item.action)
                elif outcome is ItemOutcome.REJECT:
                    tally.reject(item.action, result.status, _reason(result.error))
                elif outcome is ItemOutcome.FATAL:
                    raise PermanentElasticsearchError(
                        self._fatal_message(item.action, result), status=result.status
                    )
                else:
                    item.attempts += 1
                    if (
                        outcome is ItemOutcome.RETRY_BOUNDED
                        and item.attempts >= MAX_BOUNDED_ITEM_ATTEMPTS
                    ):
                        reason = f"{_reason(result.error)} (gave up after {item.attempts} tries)"
                        tally.reject(item.action, result.status, reason)
                        continue
                    retry.append(item)
                    first_reason = first_reason or f"HTTP {result.status} {_reason(result.error)}"
            if smaller:
                # Retrying the same items together would trip the breaker again: send them
                # (and the transient ones, which lose nothing by it) in smaller requests.
                order = {id(item): n for n, item in enumerate(pending)}
                rest = sorted(smaller + retry, key=lambda item: order[id(item)])
                raise _Split(rest, 429, _breaker_reason(breaker_detail), alone=len(pending) == 1)
            if not retry:
                self._recovered()
                return
            self._wait(
                f"{len(retry)} of {len(pending)} documents were refused ({first_reason})",
                tally,
                len(retry),
            )
            pending = retry

    def _send(self, body: bytes) -> _Response:
        params = {"filter_path": _FILTER_PATH}
        if self._require_alias:
            params["require_alias"] = "true"
        if self._refresh:
            params["refresh"] = "true"
        answer = self._client.perform_request(
            "POST", "/_bulk", params=params, headers=_HEADERS, body=body
        )
        try:
            return msgspec.convert(answer.body, _Response)
        except msgspec.ValidationError as exc:
            raise PermanentElasticsearchError(
                f"Elasticsearch answered a bulk request with an unexpected body ({exc})"
            ) from exc

    def _fail_or_wait(self, exc: Exception, tally: _Tally, unacknowledged: int) -> None:
        if classify_error(exc) is ErrorClass.PERMANENT:
            if isinstance(exc, PermanentElasticsearchError):
                raise exc
            status = exc.meta.status if isinstance(exc, ApiError) else None
            raise PermanentElasticsearchError(
                describe_error(exc, self._hosts), status=status
            ) from exc
        self._wait(describe_error(exc, self._hosts), tally, unacknowledged)

    def _wait(self, reason: str, tally: _Tally, unacknowledged: int) -> None:
        now = self._clock()
        self._last_error = reason
        if self._failing_since is None:
            self._failing_since = now
        delay = backoff_delay(
            self._attempt, self._random(), base=self._base_backoff, cap=self._max_backoff
        )
        self._attempt += 1
        tally.retries += 1
        log.warning(
            "bulk write retry %d in %.1fs (failing for %.0fs): %s",
            self._attempt,
            delay,
            now - self._failing_since,
            reason,
        )
        if self._stop.is_set():
            raise _Stopped(unacknowledged)
        self._sleep(delay)
        if self._stop.is_set():
            raise _Stopped(unacknowledged)

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.info("bulk writes succeed again after %.0fs", self._clock() - self._failing_since)
        self._attempt = 0
        self._failing_since = None
        self._last_error = None

    def _fatal_message(self, action: WriteAction, result: _Item) -> str:
        error = result.error
        body: dict[str, object]
        if isinstance(error, ItemError):
            fields = {"type": error.type, "reason": error.reason or ""}
            if error.index:
                fields["index"] = error.index
            body = {"error": fields}
        else:
            body = {"error": error or ""}
        if result.status == 404 and not isinstance(action, Delete):
            body = {"error": {"type": "index_not_found_exception", "index": action.index}}
        where = ", ".join(self._hosts) or "the configured hosts"
        return describe_response(result.status, body, where)


def _client_hosts(client: Elasticsearch) -> list[str]:
    """Base URLs of the client's nodes, for messages (the client never holds user-info)."""
    try:
        return [str(node.base_url) for node in client.transport.node_pool.all()]
    except AttributeError:
        return []
