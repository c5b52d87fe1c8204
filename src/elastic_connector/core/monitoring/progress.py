"""How far a sync has got: the phase, what the events read came to, how much of a replay or a
catch-up is done and when it may end, and the lines that say so. Pure: time comes in as
arguments (``now_ms``, elapsed seconds); the shell keeps the clock and writes the lines.

Phases:

* ``starting``: the stream has not been read yet.
* ``replay``: the recovery replay of a first start (frames marked ``recovery``): the platform
  re-reads the knowledge base and sends every object as a ``create``.
* ``catch_up``: reading events the platform already held when the connection opened (its
  ``connected`` event names the newest one, ``lastEventId``): after a restart or a reconnect.
* ``live``: caught up; events are written as they happen.

What "done" and the ETA are based on (read in the platform's ``sseMiddleware.js``,
``redis-stream.ts`` and ``filtering-resolution``):

* **Replay.** The platform lists the knowledge base ordered by update time, oldest first
  (``updated_at`` between the start and the recovery date, ``orderBy [updated_at,
  internal_id]``, ascending), and each replayed frame's id is its object's update time. The
  share done is how much of the span from the first replayed object's update time to the
  recovery date the replay has passed. It is a share of *time*, not of objects: it assumes the
  knowledge base's updates are spread evenly over that span (a bulk import last week makes the
  end slower than predicted). ``connected`` cannot help here: its ``streamSize`` is the length
  of the platform's Redis event stream (every kind of event, bounded by trimming), not the size
  of the knowledge base.
* **Catch-up.** Ids are positions in that Redis stream. The share done is how much of the id
  span from where the catch-up began to ``connected.lastEventId`` has been passed; the events
  left are estimated from ``streamSize`` (the events between ``firstEventId`` and
  ``lastEventId``), again assuming an even spread, and counting every event the platform holds,
  including those it filters out for this connector: an upper bound.
* **ETA**: the time taken so far, scaled to the share left.

The events that happen *during* a replay are read after it as live events: the ``connected``
event of a replay's connection was sent before them. ``lag`` (how old the last written event
is) says how far behind those are.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Final

import msgspec

from elastic_connector.core.actions import Action, Delete, Skip, Upsert
from elastic_connector.core.stream.frames import ConnectedInfo
from elastic_connector.core.stream.ids import StreamId, parse_stream_id

EXAMPLES_PER_REASON: Final = 3
"""Example ids a progress line names for each reason a document was withheld or skipped."""
REMOVED_CODES: Final = frozenset({"deleted", "merged"})
"""Delete codes of objects OpenCTI deleted or merged away; any other delete code withholds an
object the export policy does not allow (revoked, expired, tlp...)."""


class Phase(enum.Enum):
    STARTING = "starting"
    REPLAY = "replay"
    CATCH_UP = "catch_up"
    LIVE = "live"


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    """What the stream events read came to.

    Every data event (``create``/``update``/``delete``/``merge``) is counted in ``events``
    and its outcome once: ``written`` (a document indexed), ``deleted`` (its document removed:
    deleted or merged in OpenCTI), ``withheld`` (not exported, by reason code), ``skipped``
    (unusable, by reason code) or ``other`` (nothing to do: an object the mode does not export,
    such as an identity, a relationship or a marking in ``ecs`` modes). A ``merge`` also
    removes the documents of the objects merged away (counted in ``deleted``), so the outcomes
    can add up to more than ``events``.
    """

    events: int = 0
    written: int = 0
    deleted: int = 0
    withheld: Mapping[str, int] = {}
    skipped: Mapping[str, int] = {}
    other: int = 0

    @property
    def withheld_total(self) -> int:
        return sum(self.withheld.values())

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


Examples = Mapping[str, tuple[str, ...]]
"""Reason code -> a few ids of the objects (or events) withheld or skipped for it."""


def count_actions(counts: Counts, actions: Iterable[Action], *, events: int, other: int) -> Counts:
    """``counts`` after ``events`` more data events, ``other`` of which called for nothing, and
    the ``actions`` the rest called for."""
    written, deleted = counts.written, counts.deleted
    withheld, skipped = dict(counts.withheld), dict(counts.skipped)
    for action in actions:
        if isinstance(action, Upsert):
            written += 1
        elif isinstance(action, Delete):
            if action.code in REMOVED_CODES:
                deleted += 1
            else:
                withheld[action.code] = withheld.get(action.code, 0) + 1
        else:
            skipped[action.code] = skipped.get(action.code, 0) + 1
    return Counts(
        events=counts.events + events,
        written=written,
        deleted=deleted,
        withheld=withheld,
        skipped=skipped,
        other=counts.other + other,
    )


def since(later: Counts, earlier: Counts) -> Counts:
    """What was counted after ``earlier`` (both cumulative, ``later`` taken after)."""

    def minus(new: Mapping[str, int], old: Mapping[str, int]) -> dict[str, int]:
        return {code: n - old.get(code, 0) for code, n in new.items() if n - old.get(code, 0)}

    return Counts(
        events=later.events - earlier.events,
        written=later.written - earlier.written,
        deleted=later.deleted - earlier.deleted,
        withheld=minus(later.withheld, earlier.withheld),
        skipped=minus(later.skipped, earlier.skipped),
        other=later.other - earlier.other,
    )


def add_examples(
    examples: Examples, actions: Iterable[Action], limit: int = EXAMPLES_PER_REASON
) -> Examples:
    """``examples`` with the ids of withheld and skipped ``actions`` added, up to ``limit``
    per reason (the first ones kept)."""
    found = dict(examples)
    for action in actions:
        if isinstance(action, Delete):
            if action.code in REMOVED_CODES:
                continue
            code, example = action.code, action.id
        elif isinstance(action, Skip):
            code, example = action.code, action.object_id or action.event_id
        else:
            continue
        known = found.get(code, ())
        if len(known) < limit and example not in known:
            found[code] = (*known, example)
    return found


# --- how far: replay ---------------------------------------------------------------------------


class ReplaySpan(msgspec.Struct, frozen=True):
    """The update times a replay has gone through.

    ``until_ms`` is the recovery date, where the replay ends (None when unknown); ``first_ms``
    the earliest update time replayed, ``reached_ms`` the latest one up to the recovery date
    (objects edited while the replay runs carry later times and are left out)."""

    until_ms: int | None
    first_ms: int | None = None
    reached_ms: int | None = None


def replay_observe(span: ReplaySpan, frame_id: str) -> ReplaySpan:
    """``span`` after one more replayed data frame (its id is its object's update time)."""
    parsed = parse_stream_id(frame_id)
    if parsed is None:
        return span
    ms = parsed.ms
    first = ms if span.first_ms is None else min(span.first_ms, ms)
    reached = span.reached_ms
    if span.until_ms is None or ms <= span.until_ms:
        reached = ms if reached is None else max(reached, ms)
    if first == span.first_ms and reached == span.reached_ms:
        return span
    return ReplaySpan(span.until_ms, first, reached)


def replay_share(span: ReplaySpan) -> float | None:
    """The share of the replay's update-time span passed, 0 to 1; None when unknown."""
    if span.until_ms is None or span.first_ms is None or span.reached_ms is None:
        return None
    width = span.until_ms - span.first_ms
    if width <= 0:
        return None
    return _clamp((span.reached_ms - span.first_ms) / width)


# --- how far: catch-up -------------------------------------------------------------------------


class CatchUp(msgspec.Struct, frozen=True):
    """A catch-up from ``start`` towards ``target`` (``connected.lastEventId``), at
    ``reached`` (the last event written)."""

    start: StreamId
    target: StreamId
    reached: StreamId


def is_behind(reached: StreamId | None, target: StreamId | None) -> bool:
    """True while events up to ``target`` remain to be written."""
    return target is not None and (reached is None or reached < target)


def catch_up_share(catch_up: CatchUp) -> float | None:
    """The share of the id span from ``start`` to ``target`` passed (by the ids' times)."""
    width = catch_up.target.ms - catch_up.start.ms
    if width <= 0:
        return None if catch_up.reached < catch_up.target else 1.0
    return _clamp((catch_up.reached.ms - catch_up.start.ms) / width)


def stream_events_left(info: ConnectedInfo, reached: StreamId) -> int | None:
    """Events the platform held between ``reached`` and its newest event at connection,
    estimated from ``streamSize`` (an upper bound for this connector: every event counts,
    including those filtered out for it); None when ``connected`` did not say enough."""
    first = parse_stream_id(info.first_event_id) if info.first_event_id else None
    last = parse_stream_id(info.last_event_id) if info.last_event_id else None
    size = info.stream_size
    if first is None or last is None or size is None or size < 0:
        return None
    if reached >= last:
        return 0
    if reached < first:
        return size
    width = last.ms - first.ms
    if width <= 0:
        return size
    return round(size * (last.ms - reached.ms) / width)


# --- time ----------------------------------------------------------------------------------------


def eta_seconds(share: float | None, elapsed: float) -> float | None:
    """Seconds left if the rest goes as fast as the ``share`` done in ``elapsed`` seconds."""
    if share is None or share <= 0 or elapsed <= 0:
        return None
    if share >= 1:
        return 0.0
    return elapsed * (1 - share) / share


def rate(count: int, seconds: float) -> float:
    """``count`` per second over ``seconds`` (0 for an empty interval)."""
    return count / seconds if seconds > 0 else 0.0


def lag_seconds(event_id: str | None, now_ms: int) -> float | None:
    """How old the event ``event_id`` is at ``now_ms`` (its id is its time on the platform's
    clock); None without an id. Never negative (clocks differ)."""
    parsed = parse_stream_id(event_id) if event_id else None
    if parsed is None or parsed.ms == 0:
        return None
    return max(0.0, (now_ms - parsed.ms) / 1000)


def _clamp(share: float) -> float:
    return min(1.0, max(0.0, share))


# --- the report ----------------------------------------------------------------------------------


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one progress line (and ``/healthz``) says."""

    phase: Phase
    counts: Counts
    """Since the connector started."""
    interval_events: int = 0
    interval_seconds: float = 0.0
    examples: Examples = {}
    """From the interval."""
    share: float | None = None
    eta: float | None = None
    replay: ReplaySpan | None = None
    position: str | None = None
    """The last live event written."""
    target: str | None = None
    """During a catch-up: the newest event the platform held at connection."""
    events_left: int | None = None
    lag: float | None = None


def format_duration(seconds: float) -> str:
    """``42s``, ``13m10s``, ``2h05m``, ``3d04h``."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def iso_of_ms(ms: int) -> str:
    """An epoch-millisecond time as ``2024-06-10T06:13:20Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reasons(by_code: Mapping[str, int], examples: Examples) -> str:
    if not by_code:
        return ""
    parts = []
    for code, number in sorted(by_code.items(), key=lambda item: (-item[1], item[0])):
        named = examples.get(code, ())
        parts.append(f"{code} {number:,}" + (f" e.g. {', '.join(named)}" if named else ""))
    return " [" + "; ".join(parts) + "]"


def counts_text(counts: Counts, examples: Examples | None = None) -> str:
    """``48,210 events, 2,113 written, 0 deleted, 45,900 withheld [expired 41,002 e.g. ...],
    0 skipped, 197 other``."""
    examples = examples or {}
    return (
        f"{counts.events:,} events, {counts.written:,} written, {counts.deleted:,} deleted, "
        f"{counts.withheld_total:,} withheld{_reasons(counts.withheld, examples)}, "
        f"{counts.skipped_total:,} skipped{_reasons(counts.skipped, examples)}, "
        f"{counts.other:,} other"
    )


def _percent(share: float) -> str:
    return f"{share * 100:.0f}%" if share >= 0.01 or share == 0 else "<1%"


def _where(report: Report) -> str:
    if report.phase is Phase.REPLAY:
        span = report.replay
        if span is None or span.reached_ms is None:
            return "replay started, nothing replayed yet"
        text = f"replayed objects updated up to {iso_of_ms(span.reached_ms)}"
        if span.until_ms is not None:
            text += f" of {iso_of_ms(span.until_ms)}"
        if report.share is not None:
            text += f", {_percent(report.share)} done by update time"
    else:
        text = f"at {report.position or '-'}"
        if report.target is not None:
            text += f", catching up to {report.target}"
            if report.share is not None:
                text += f", {_percent(report.share)} done"
            if report.events_left is not None:
                text += f", about {report.events_left:,} stream events left"
        if report.lag is not None:
            text += f", lag {format_duration(report.lag)}"
    if report.eta is not None:
        text += f", ETA {format_duration(report.eta)}"
    return text


def progress_line(report: Report) -> str:
    """The periodic INFO line: phase, cumulative counts (reasons with a few example ids from
    the interval), the interval's rate, where the stream is, share done and ETA."""
    speed = rate(report.interval_events, report.interval_seconds)
    return (
        f"{report.phase.value}: {counts_text(report.counts, report.examples)}; "
        f"{speed:,.1f} events/s over the last {format_duration(report.interval_seconds)}; "
        f"{_where(report)}"
    )


def replay_done_line(counts: Counts, seconds: float) -> str:
    """The line that ends a replay: its totals and duration."""
    return (
        f"knowledge base replay done in {format_duration(seconds)}: {counts_text(counts)} "
        f"({rate(counts.events, seconds):,.1f} events/s); reading live events"
    )


def caught_up_line(counts: Counts, seconds: float) -> str:
    """The line that ends a catch-up that took a while."""
    return (
        f"caught up with the stream in {format_duration(seconds)}: {counts_text(counts)} "
        f"({rate(counts.events, seconds):,.1f} events/s)"
    )


def counts_fields(counts: Counts) -> dict[str, object]:
    """The counts as plain data."""
    return {
        "events": counts.events,
        "written": counts.written,
        "deleted": counts.deleted,
        "withheld": dict(counts.withheld),
        "skipped": dict(counts.skipped),
        "other": counts.other,
    }


def report_fields(report: Report) -> dict[str, object]:
    """The report as plain data, for JSON log lines and ``/healthz``."""
    fields: dict[str, object] = {
        "phase": report.phase.value,
        **counts_fields(report.counts),
        "rate_per_second": round(rate(report.interval_events, report.interval_seconds), 2),
        "share_done": None if report.share is None else round(report.share, 4),
        "eta_seconds": None if report.eta is None else round(report.eta),
        "position": report.position,
        "lag_seconds": None if report.lag is None else round(report.lag, 1),
    }
    if report.examples:
        fields["examples"] = {code: list(ids) for code, ids in report.examples.items()}
    span = report.replay
    if report.phase is Phase.REPLAY and span is not None:
        fields["replayed_up_to"] = None if span.reached_ms is None else iso_of_ms(span.reached_ms)
        fields["recovery_date"] = None if span.until_ms is None else iso_of_ms(span.until_ms)
    if report.target is not None:
        fields["catching_up_to"] = report.target
        fields["stream_events_left"] = report.events_left
    return fields
