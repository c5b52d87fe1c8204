"""Values as the Elasticsearch field types of the documents accept them.

Every mapping step passes its output values through these: a ``keyword`` is a non-empty string
JSON can carry, a ``long`` is an ``int`` in range, a ``date`` is a UTC instant. They live apart
from ``core.indicators.ecs`` because that module defines the document
Structs and stays interpreted in the compiled build, while these run several times per document.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

LONG_MIN: Final = -(2**63)
LONG_MAX: Final = 2**63 - 1
# The largest magnitude mypyc keeps in a machine word (62 bits and a sign).
_SHORT_MAX: Final = 2**62 - 1
# The method itself: ``value.isascii()`` looks the method up on every call.
_isascii: Final = str.isascii


def keyword_value(value: object) -> str | None:
    """``value`` when it is a non-empty string JSON can carry (no lone surrogate), else None."""
    if not isinstance(value, str) or not value:
        return None
    if _isascii(value):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def long_value(value: object, low: int | None = None, high: int | None = None) -> int | None:
    """``value`` when it is an ``int`` (not a ``bool``) within ``low..high`` (by default the
    range of a ``long``), else None."""
    if type(value) is not int:
        return None
    if low is None and high is None and -_SHORT_MAX <= value <= _SHORT_MAX:
        # Compiled, a comparison with a bound beyond 62 bits is a call: most values are far
        # inside, and are checked against bounds that are not.
        return value
    return (
        value
        if (LONG_MIN if low is None else low) <= value <= (LONG_MAX if high is None else high)
        else None
    )


def date_value(moment: object) -> datetime | None:
    """The instant in UTC (a timestamp without offset is read as UTC, as STIX does); None when
    it is not a datetime or has no UTC equivalent in years 1-9999."""
    if not isinstance(moment, datetime):
        return None
    if moment.tzinfo is UTC:
        return moment
    try:
        if moment.tzinfo is None or moment.utcoffset() is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def date_text_value(text: object) -> datetime | None:
    """An RFC 3339 / ISO 8601 timestamp text as a UTC instant, or None."""
    if not isinstance(text, str):
        return None
    try:
        return date_value(datetime.fromisoformat(text.strip()))
    except ValueError:
        return None
