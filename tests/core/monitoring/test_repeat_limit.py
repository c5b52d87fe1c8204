"""How often one kind of warning may be logged (``core/monitoring/repeat_limit.py``): a budget
per window, and every line left out accounted for in exactly one "N more like this" summary."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.monitoring.repeat_limit import (
    LeftOut,
    RepeatLimits,
    admit,
    close_windows,
    left_out_line,
)

PER_WINDOW = 3
WINDOW = 10.0

events = st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 5, allow_nan=False)), max_size=80)


def run(
    steps: list[tuple[str, float]], closes: bool
) -> tuple[list[tuple[str, float, bool]], list[LeftOut], RepeatLimits]:
    """Lines of kinds a/b/c at increasing times (gaps from ``steps``); with ``closes``, the
    windows are closed after every line, as the daemon does every second."""
    limits = RepeatLimits(PER_WINDOW, WINDOW)
    now = 0.0
    written: list[tuple[str, float, bool]] = []
    summaries: list[LeftOut] = []
    for number, (key, gap) in enumerate(steps):
        now += gap
        limits, allowed, closed = admit(limits, key, f"{key} line {number}", now)
        written.append((key, now, allowed))
        if closed is not None:
            summaries.append(closed)
        if closes:
            limits, more = close_windows(limits, now)
            summaries.extend(more)
    limits, last = close_windows(limits, now, every=True)
    return written, [*summaries, *last], limits


@given(events, st.booleans())
def test_every_line_left_out_is_counted_in_exactly_one_summary(
    steps: list[tuple[str, float]], closes: bool
) -> None:
    written, summaries, limits = run(steps, closes)
    left_out = Counter(key for key, _, allowed in written if not allowed)
    summed: Counter[str] = Counter()
    for summary in summaries:
        assert summary.count > 0
        summed[summary.key] += summary.count
    assert summed == left_out
    assert limits.windows == {}


@given(events)
def test_no_kind_gets_more_than_twice_its_budget_in_any_window_length(
    steps: list[tuple[str, float]],
) -> None:
    """Windows follow each other, so any stretch as long as one window meets at most two."""
    written, _, _ = run(steps, closes=False)
    for key in "abc":
        shown = [moment for k, moment, allowed in written if k == key and allowed]
        for index in range(len(shown) - 2 * PER_WINDOW):
            assert shown[index + 2 * PER_WINDOW] - shown[index] >= WINDOW


def test_the_summary_names_the_count_and_the_last_line() -> None:
    limits = RepeatLimits(2, 60.0)
    results = []
    for number in range(5):
        limits, allowed, _ = admit(limits, "rejected", f"rejected doc-{number}", float(number))
        results.append(allowed)
    assert results == [True, True, False, False, False]
    limits, none_yet = close_windows(limits, 30.0)
    assert none_yet == ()
    limits, (summary,) = close_windows(limits, 60.0)
    assert summary == LeftOut("rejected", 3, 60.0, "rejected doc-4")
    assert left_out_line(summary) == (
        "(3 more like this in the last 60 s; the last: rejected doc-4)"
    )
    # A new window: the budget is back.
    limits, allowed, closed = admit(limits, "rejected", "rejected doc-5", 61.0)
    assert allowed
    assert closed is None


def test_kinds_have_budgets_of_their_own() -> None:
    limits = RepeatLimits(1, 60.0)
    limits, first, _ = admit(limits, "a", "a", 0.0)
    limits, second, _ = admit(limits, "b", "b", 0.0)
    limits, third, _ = admit(limits, "a", "a again", 1.0)
    assert (first, second, third) == (True, True, False)
