"""How often one kind of warning may be logged: each kind gets a budget of lines per window;
past it, lines are counted instead of written, and once the window is over one summary line
says how many were left out ("N more like this"), naming the last of them.

An operator needs every kind of problem named, and a few examples of each, not ten thousand
identical lines (a feed of documents Elasticsearch refuses, say) drowning everything else.
Pure: the shell passes the time in and writes the lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

LINES_PER_WINDOW: Final = 10
WINDOW_SECONDS: Final = 60.0


class _Window(msgspec.Struct, frozen=True):
    started: float
    shown: int = 0
    left_out: int = 0
    last: str = ""
    """The last line left out."""


class LeftOut(msgspec.Struct, frozen=True):
    """Lines of kind ``key`` not written during ``seconds``; ``last`` is the last of them."""

    key: str
    count: int
    seconds: float
    last: str


class RepeatLimits(msgspec.Struct, frozen=True):
    """The budget (``per_window`` lines each ``window`` seconds) and the open windows."""

    per_window: int = LINES_PER_WINDOW
    window: float = WINDOW_SECONDS
    windows: Mapping[str, _Window] = {}


def admit(
    limits: RepeatLimits, key: str, line: str, now: float
) -> tuple[RepeatLimits, bool, LeftOut | None]:
    """Whether a line of kind ``key`` may be written at ``now``, the limits after it, and the
    summary of the kind's previous window when that window just closed with lines left out."""
    window = limits.windows.get(key)
    closed: LeftOut | None = None
    if window is None or now - window.started >= limits.window or now < window.started:
        if window is not None and window.left_out:
            closed = LeftOut(key, window.left_out, now - window.started, window.last)
        window = _Window(now)
    allowed = window.shown < limits.per_window
    if allowed:
        window = _Window(window.started, window.shown + 1, window.left_out, window.last)
    else:
        window = _Window(window.started, window.shown, window.left_out + 1, line)
    windows = {**limits.windows, key: window}
    return RepeatLimits(limits.per_window, limits.window, windows), allowed, closed


def close_windows(
    limits: RepeatLimits, now: float, *, every: bool = False
) -> tuple[RepeatLimits, tuple[LeftOut, ...]]:
    """Close the windows that are over at ``now`` (``every`` one: at shutdown): the limits
    after, and a summary for each closed window that left lines out."""
    kept: dict[str, _Window] = {}
    summaries: list[LeftOut] = []
    for key, window in limits.windows.items():
        if not every and now - window.started < limits.window and now >= window.started:
            kept[key] = window
        elif window.left_out:
            summaries.append(LeftOut(key, window.left_out, now - window.started, window.last))
    if len(kept) == len(limits.windows):
        return limits, ()
    return RepeatLimits(limits.per_window, limits.window, kept), tuple(summaries)


def left_out_line(left_out: LeftOut) -> str:
    """The summary of a closed window."""
    return (
        f"({left_out.count:,} more like this in the last {left_out.seconds:.0f} s; the last: "
        f"{left_out.last})"
    )
