"""What the frames of one stream connection say about it, beyond their data: the ``connected``
greeting (where the platform's bounded stream starts), and whether a frame still belongs to the
recovery replay of a first start. Read in the platform's ``sseMiddleware.js`` and
``redis-stream.ts`` (``shared/reference/opencti.md``, "Platform behaviours...").
"""

from __future__ import annotations

from typing import Final

import msgspec

from elastic_connector.core.stix import DATA_EVENTS
from elastic_connector.core.stream.ids import STREAM_START, StreamId, parse_stream_id
from elastic_connector.core.stream.position import StreamPosition, recovery_ms
from elastic_connector.core.stream.progress import just_before

RECOVERY_REFERERS: Final = frozenset({"init-create", "init-dependencies"})
"""``origin.referer`` of the frames a live stream builds itself: the recovery replay
(``init-create``) and the objects sent before an event (``init-dependencies``)."""


class _Origin(msgspec.Struct, frozen=True):
    referer: str | None = None


class _Framed(msgspec.Struct, frozen=True):
    origin: _Origin | None = None


class ConnectedInfo(msgspec.Struct, frozen=True):
    """The ``connected`` event's data (``XINFO STREAM``): the oldest and newest ids the
    platform's Redis stream still holds."""

    first_event_id: str | None = msgspec.field(default=None, name="firstEventId")
    last_event_id: str | None = msgspec.field(default=None, name="lastEventId")
    stream_size: int | None = msgspec.field(default=None, name="streamSize")


_framed_decoder: Final = msgspec.json.Decoder(_Framed)
_connected_decoder: Final = msgspec.json.Decoder(ConnectedInfo)


def frame_referer(data: bytes) -> str | None:
    """``origin.referer`` of a data frame; None when absent or unreadable (never raises)."""
    try:
        origin = _framed_decoder.decode(data).origin
    except (msgspec.DecodeError, UnicodeError, RecursionError):
        return None
    return origin.referer if origin is not None else None


def read_connected(data: bytes) -> ConnectedInfo | None:
    """The ``connected`` event's data; None when unreadable (never raises)."""
    try:
        return _connected_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeError, RecursionError):
        return None


def trimmed_gap(start_from: str, first_event_id: str | None) -> bool:
    """True when resuming after ``start_from`` skips events the platform no longer holds.

    Redis keeps a bounded stream, and reading from an id older than the oldest kept event
    silently starts at that event. A start below ``firstEventId`` (other than ``0-0``, "from
    whatever is there") may have lost events, deletions included, that only a full re-read of
    the knowledge base can repair.
    """
    start = parse_stream_id(start_from)
    first = parse_stream_id(first_event_id) if first_event_id else None
    if start is None or first is None or start == STREAM_START:
        return False
    # Resuming right before the oldest kept event loses nothing.
    return start < just_before(first)


class Recovery(msgspec.Struct, frozen=True):
    """The recovery replay of one connection, while it lasts.

    ``until`` is where the live part starts (the recovery date as an id); ``seen`` the greatest
    id received so far on the connection (at first, the requested start).
    """

    until: StreamId
    seen: StreamId


def recovery_of(live_stream_id: str | None, position: StreamPosition) -> Recovery | None:
    """The replay a connection from ``position`` gets, or None.

    The platform replays only on a live stream (``/stream/<id>``), and only when the recovery
    date is after the start (``sseMiddleware.js``: ``utcDate(recover).isAfter(start)``).
    """
    if not live_stream_id:
        return None
    recover = recovery_ms(position.recover_until)
    start = parse_stream_id(position.start_from)
    if recover is None or start is None or recover <= start.ms:
        return None
    return Recovery(StreamId(recover, 0), start)


def next_recovery(recovery: Recovery, frame_id: str, event: str, data: bytes) -> Recovery | None:
    """The recovery after one more frame; None when that frame is the first live one.

    * A data frame whose ``origin.referer`` is neither ``init-create`` nor
      ``init-dependencies``, with an id after the recovery date, is a live event.
    * Any other frame (heartbeat...) whose id is above every id of the connection and its
      start is live too: during the replay the platform's heartbeats carry the id of the last
      frame it sent (or the start), so a greater one comes from the live part (an idle read
      ``<now>-0``, or a live event filtered out for this consumer).
    * Everything else, dependencies included, still belongs to the replay.
    """
    parsed = parse_stream_id(frame_id)
    if parsed is None:
        return recovery
    if event in DATA_EVENTS:
        if parsed > recovery.until and frame_referer(data) not in RECOVERY_REFERERS:
            return None
    elif parsed > recovery.seen:
        return None
    if parsed > recovery.seen:
        return Recovery(recovery.until, parsed)
    return recovery
