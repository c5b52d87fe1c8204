"""The retry schedule: bounded, growing, jittered in the upper half, total on any input."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.backoff import backoff_delay

attempts = st.integers(min_value=0, max_value=10_000)
units = st.floats(min_value=0.0, max_value=1.0)
bases = st.floats(min_value=1e-3, max_value=100.0)
caps = st.floats(min_value=1e-3, max_value=3600.0)


@given(attempts, units, bases, caps)
def test_delay_stays_between_half_the_first_ceiling_and_the_cap(
    attempt: int, unit: float, base: float, cap: float
) -> None:
    delay = backoff_delay(attempt, unit, base=base, cap=cap)

    assert min(base, cap) / 2 <= delay <= cap


@given(attempts, units, bases, caps)
def test_delay_never_shrinks_from_one_attempt_to_the_next(
    attempt: int, unit: float, base: float, cap: float
) -> None:
    assert backoff_delay(attempt, unit, base=base, cap=cap) <= backoff_delay(
        attempt + 1, unit, base=base, cap=cap
    )


@given(attempts, units, units, bases, caps)
def test_more_jitter_means_a_longer_delay(
    attempt: int, low: float, high: float, base: float, cap: float
) -> None:
    low, high = sorted((low, high))
    assert backoff_delay(attempt, low, base=base, cap=cap) <= backoff_delay(
        attempt, high, base=base, cap=cap
    )


@given(units, bases, caps)
def test_long_outages_settle_in_the_upper_half_of_the_cap(
    unit: float, base: float, cap: float
) -> None:
    delay = backoff_delay(10_000, unit, base=base, cap=cap)
    assert math.isclose(delay, cap / 2 + cap / 2 * unit)


@given(st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.floats(), st.floats())
def test_total_on_any_input(attempt: int, unit: float, base: float, cap: float) -> None:
    delay = backoff_delay(attempt, unit, base=base, cap=cap)
    assert not math.isnan(delay)
    assert delay >= 0


def test_examples() -> None:
    assert backoff_delay(0, 0.0, base=1.0, cap=60.0) == 0.5
    assert backoff_delay(0, 1.0, base=1.0, cap=60.0) == 1.0
    assert backoff_delay(3, 1.0, base=1.0, cap=60.0) == 8.0
    assert backoff_delay(6, 1.0, base=1.0, cap=60.0) == 60.0
    assert backoff_delay(-4, 1.0, base=1.0, cap=60.0) == 1.0
    assert backoff_delay(2, float("nan"), base=1.0, cap=60.0) == 2.0
    assert backoff_delay(2, 7.0, base=1.0, cap=60.0) == 4.0
    assert backoff_delay(2, 0.5, base=0.0, cap=60.0) == 0.0
