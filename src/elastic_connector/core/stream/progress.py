"""Which stream position may be saved (or resumed from) after a run of frames, by the platform's
rules (``shared/reference/opencti.md``, "Platform behaviours a connector must survive"; read in
``sseMiddleware.js`` and ``redis-stream.ts``).

Resuming is strictly *after* the given id, and three platform behaviours make "the last id
received" unsafe:

* **Several frames share one id.** Before an event the live stream sends the objects it refers
  to (marking, author...) as ``create`` frames carrying the event's own id, and a heartbeat can
  come in the middle of that group. An id is therefore complete only once a frame with a
  strictly greater id has arrived.
* **Idle heartbeat ids come from the platform host's clock** (``<Date.now()>-0`` after an empty
  Redis read), not from Redis: events appended just after, or by a Redis whose clock is behind,
  get smaller ids. A position known only from a heartbeat is moved back by a safety margin,
  so that the next connection reads such events again (replays are harmless: every write is
  idempotent). The platform's own read goes on from the heartbeat's id, so this is a
  mitigation bounded by the margin, not a cure.
* **The recovery replay has no position at all**: its frame ids are the objects' update times,
  in no order, some after the recovery date. The caller leaves recovery frames out.

``StreamProgress`` folds the ids of the frames seen, in arrival order, into the best position
that is safe to resume after; it never moves below where the stream was started from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import msgspec

from elastic_connector.core.stream.ids import STREAM_START, StreamId, parse_stream_id

_MAX_SEQ: Final = 2**64 - 1


class StreamProgress(msgspec.Struct, frozen=True):
    """What the frames seen so far allow resuming after.

    ``floor`` is where the stream was started from; ``complete`` the best safe position found
    so far (never below ``floor``); ``last`` the greatest id seen and whether a data frame
    carried it (``last_has_data``): such a group may still be arriving.
    """

    floor: StreamId
    complete: StreamId
    last: StreamId | None = None
    last_has_data: bool = False


def start_progress(start_from: str) -> StreamProgress:
    """Progress of a stream read from after ``start_from`` (an unparsable id counts as
    ``0-0``: nothing is known to be complete)."""
    floor = parse_stream_id(start_from) or STREAM_START
    return StreamProgress(floor, floor)


def just_before(event_id: StreamId) -> StreamId:
    """The greatest id below ``event_id`` (resuming after it delivers ``event_id`` again)."""
    if event_id.seq > 0:
        return StreamId(event_id.ms, event_id.seq - 1)
    if event_id.ms > 0:
        return StreamId(event_id.ms - 1, _MAX_SEQ)
    return STREAM_START


def step_back(heartbeat_id: StreamId, margin_ms: int) -> StreamId:
    """A heartbeat-derived position moved back by ``margin_ms`` (and a millisecond): strictly
    below the heartbeat's id whatever the margin, as a data frame may still come with that
    very id."""
    # In the millisecond before ``margin`` ago: every event of that millisecond is kept.
    return StreamId(max(0, heartbeat_id.ms - max(0, margin_ms) - 1), 0)


def observe_all(
    progress: StreamProgress, frames: Iterable[tuple[str, bool]], margin_ms: int
) -> StreamProgress:
    """``progress`` after the frames ``(id, is_data)``, in arrival order.

    ``is_data`` is True for ``create``/``update``/``delete``/``merge`` frames, False for
    heartbeats and other named events. A data group's id becomes safe once a frame with a
    greater id arrives; a heartbeat's id, at once, stepped back by ``margin_ms``. Data frames
    below the greatest id seen (a replay after a reconnect) and unparsable ids change nothing.
    """
    floor, complete = progress.floor, progress.complete
    last, has_data = progress.last, progress.last_has_data
    for text, is_data in frames:
        frame_id = parse_stream_id(text)
        if frame_id is None:
            continue
        if not is_data:
            # Everything up to the margin before a heartbeat's id has been sent.
            complete = max(complete, step_back(frame_id, margin_ms))
        if last is None or frame_id > last:
            if last is not None and has_data:
                complete = max(complete, last)
            last, has_data = frame_id, is_data
        elif frame_id == last:
            has_data = has_data or is_data
    if (last, has_data, complete) == (progress.last, progress.last_has_data, progress.complete):
        return progress
    return StreamProgress(floor, complete, last, has_data)


def observe(
    progress: StreamProgress, frame_id: str, *, is_data: bool, margin_ms: int
) -> StreamProgress:
    """``progress`` after one frame (see ``observe_all``)."""
    return observe_all(progress, ((frame_id, is_data),), margin_ms)


def resume_position(progress: StreamProgress) -> StreamId:
    """The position that is safe to save or reconnect from: every frame up to it has been
    seen, no frame still to come can carry it, and none is closer than the margin to a
    heartbeat's id."""
    return progress.complete


def skip_past(progress: StreamProgress, frame_id: str) -> StreamProgress:
    """``progress`` with ``frame_id`` counted complete: to resume after a frame that must be
    skipped (too large to read), accepting that later frames of its group are skipped too."""
    parsed = parse_stream_id(frame_id)
    if parsed is None or parsed <= progress.complete:
        return progress
    last = progress.last if progress.last is not None and progress.last > parsed else None
    has_data = progress.last_has_data if last is not None else False
    return StreamProgress(progress.floor, parsed, last, has_data)
