"""OpenCTI stream event ids.

The live stream is a Redis stream: every event id is ``<epoch-ms>-<seq>``. Ids must be compared
as integer pairs, never as strings (``"999-0" > "1000-0"`` as text, but it is earlier).
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

_ID_TEXT: Final = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_MAX_PART: Final = 2**64 - 1  # Redis stores both parts as unsigned 64-bit integers


class StreamId(NamedTuple):
    """A parsed stream event id; tuples order the same way Redis orders ids."""

    ms: int
    seq: int

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"


STREAM_START: Final = StreamId(0, 0)
"""``0-0``: before every event (what a first run asks for)."""


def parse_stream_id(text: str) -> StreamId | None:
    """``"1704067200000-3"`` -> ``StreamId(1704067200000, 3)``; None when ``text`` is not an id.

    Strict: two ASCII decimal numbers below 2**64 joined by one dash, nothing around them.
    """
    match = _ID_TEXT.fullmatch(text)
    if match is None:
        return None
    ms, seq = int(match.group(1)), int(match.group(2))
    if ms > _MAX_PART or seq > _MAX_PART:
        return None
    return StreamId(ms, seq)


def is_after(candidate: str, reference: str) -> bool:
    """True when event id ``candidate`` comes strictly after ``reference``.

    An unparsable ``reference`` is treated as "before everything" and an unparsable
    ``candidate`` as "after nothing", so garbage never moves a position backwards.
    """
    new = parse_stream_id(candidate)
    if new is None:
        return False
    old = parse_stream_id(reference)
    return old is None or new > old


def latest(first: str, second: str) -> str:
    """The later of two event ids (the first one when they are equal or neither parses)."""
    return second if is_after(second, first) else first


def stream_id_at(epoch_ms: int) -> StreamId:
    """The first id of millisecond ``epoch_ms`` (what ``<ms>-0`` start positions mean)."""
    return StreamId(max(0, epoch_ms), 0)
