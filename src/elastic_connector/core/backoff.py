"""How long to wait before retrying: capped exponential backoff with jitter.

Randomness is an argument (``unit``, a number in [0, 1]) so the schedule is a pure function;
the shell passes ``random.random()``.
"""

from __future__ import annotations

import math
from typing import Final

_MAX_DOUBLINGS: Final = 60  # 2**60 times any sane base is past any sane cap


def backoff_delay(attempt: int, unit: float, *, base: float = 1.0, cap: float = 60.0) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    The ceiling doubles from ``base`` at each attempt up to ``cap``; the delay is drawn in
    the upper half of the ceiling ("equal jitter"), so many clients restarting together
    spread out yet none retries much sooner than planned. ``unit`` outside [0, 1] (or NaN) is
    clamped; negative attempts count as 0; non-positive ``base``/``cap`` give 0.
    """
    if not (base > 0 and cap > 0):
        return 0.0
    doublings = min(max(attempt, 0), _MAX_DOUBLINGS)
    ceiling = min(cap, base * 2.0**doublings)
    jitter = 0.0 if math.isnan(unit) else min(max(unit, 0.0), 1.0)
    return ceiling * (0.5 + 0.5 * jitter)
