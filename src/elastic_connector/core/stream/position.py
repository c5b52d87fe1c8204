"""Where the OpenCTI stream is read from, and the request that asks for it.

The position lives in the connector state exactly as pycti's ``ListenStream`` keeps it
(``{"start_from": "<ms>-<seq>", "recover_until": "<ISO date>" | false}``), so a deployment can
switch between pycti's reader and ours without losing its place. The URL and headers are the
ones pycti sends (``/stream[/<id>][?recover=<date>]``, ``Last-Event-ID``, ``listen-delete``,
``no-dependencies``, ``with-inferences``, bearer token).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote

import msgspec

from elastic_connector.core.stream.ids import STREAM_START, StreamId, parse_stream_id

START_FROM_KEY: Final = "start_from"
RECOVER_UNTIL_KEY: Final = "recover_until"
# Keys written by pycti before 5.x; still read so very old states resume where they were.
_LEGACY_START_KEY: Final = "connectorLastEventId"
_LEGACY_RECOVER_KEY: Final = "connectorStartTime"
# pycti sends no ``recover`` parameter for these values (and for ``false``).
_NO_RECOVER: Final = frozenset({"no", "none", "No", "None", "false", "False"})


class StreamPosition(msgspec.Struct, frozen=True):
    """Resume after event ``start_from``; replay the knowledge base up to ``recover_until``.

    ``recover_until`` None means "no recovery": only events after ``start_from`` are sent.
    """

    start_from: str
    recover_until: str | None


def format_recover_date(moment: datetime) -> str:
    """``2024-01-15T10:30:00Z``: the UTC second, as pycti's ``date_now_z`` writes it."""
    utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return utc.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _recover_value(value: object) -> str | None:
    if isinstance(value, str) and value and value not in _NO_RECOVER:
        return value
    return None


def initial_position(
    state: Mapping[str, object] | None,
    *,
    start_timestamp: int | None,
    recover_iso_date: str | None,
    now: datetime,
) -> StreamPosition:
    """The position to start reading from, given the saved connector state.

    A state holding a position (``start_from``, or the legacy ``connectorLastEventId``) wins:
    the configuration is only for the first run, as in pycti. Otherwise (no state, or a state
    holding only other keys such as the alert cursor) this is a first run: start at
    ``<start_timestamp>-0`` or ``0-0``, and recover up to ``recover_iso_date`` or ``now``.
    """
    if state is not None:
        start = state.get(START_FROM_KEY, state.get(_LEGACY_START_KEY))
        if isinstance(start, str) and start:
            recover = state.get(RECOVER_UNTIL_KEY, state.get(_LEGACY_RECOVER_KEY))
            return StreamPosition(start, _recover_value(recover))
    first = f"{start_timestamp}-0" if start_timestamp is not None else str(STREAM_START)
    recover_until = recover_iso_date if recover_iso_date else format_recover_date(now)
    return StreamPosition(first, _recover_value(recover_until))


def has_saved_position(state: Mapping[str, object] | None) -> bool:
    """Whether ``state`` holds a position to resume from (``initial_position`` then ignores
    the configuration); without one, a start is a first start."""
    if state is None:
        return False
    start = state.get(START_FROM_KEY, state.get(_LEGACY_START_KEY))
    return isinstance(start, str) and bool(start)


def position_state(position: StreamPosition) -> dict[str, object]:
    """The state entries for ``position``, in pycti's format (no recovery is ``false``)."""
    return {
        START_FROM_KEY: position.start_from,
        RECOVER_UNTIL_KEY: position.recover_until if position.recover_until else False,
    }


def stream_url(base_url: str, live_stream_id: str | None, recover_until: str | None) -> str:
    """``{base}/stream``, ``{base}/stream/live`` or ``{base}/stream/<collection id>``, plus
    ``?recover=<date>`` when recovering.

    The date is percent-encoded (pycti sends it raw, which turns a ``+01:00`` offset into a
    space on the platform); a ``Z`` date is sent byte for byte as pycti sends it.
    """
    url = base_url.rstrip("/") + "/stream"
    if live_stream_id:
        url += "/" + quote(live_stream_id, safe="")
    if recover_until:
        url += "?recover=" + quote(recover_until, safe=":")
    return url


def recovery_ms(recover_until: str | None) -> int | None:
    """The recovery date as epoch milliseconds, read as the platform reads it (an ISO date,
    or a stream id's millisecond); None when there is no recovery or the platform would
    ignore the value."""
    if not recover_until:
        return None
    if recover_until in ("0", "0-0"):
        return 0
    as_id = parse_stream_id(recover_until)
    if as_id is not None:
        return as_id.ms
    try:
        moment = datetime.fromisoformat(recover_until)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def is_past_recovery(event_id: str, recover_until: str | None) -> bool:
    """Whether ``event_id`` may be saved as the position to resume from.

    While the platform replays the knowledge base (ids at or before the recovery date), event
    ids follow the objects' update times in no guaranteed order: resuming after one of them
    could skip objects not sent yet. So nothing is saved until the live part starts (an id
    after the recovery date); a restart during recovery replays it from the start, which
    idempotent writes make harmless.
    """
    recover_ms = recovery_ms(recover_until)
    if recover_ms is None:
        return True
    parsed = parse_stream_id(event_id)
    # The live part starts strictly after <recover ms>-0; replayed objects get <update ms>-0.
    return parsed is not None and parsed > StreamId(recover_ms, 0)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def stream_headers(
    token: str,
    start_from: str,
    *,
    listen_delete: bool,
    no_dependencies: bool,
    with_inferences: bool,
) -> dict[str, str]:
    """The request headers pycti's reader sends (plus the SSE ``Accept``/``Cache-Control``)."""
    return {
        "authorization": "Bearer " + token,
        "listen-delete": _flag(listen_delete),
        "no-dependencies": _flag(no_dependencies),
        "with-inferences": _flag(with_inferences),
        "Last-Event-ID": start_from,
        "Accept": "text/event-stream",
        "Cache-Control": "no-cache",
    }
