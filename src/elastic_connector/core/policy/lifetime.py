"""When an indicator stops being exported: its ``valid_until``, else a default lifetime.

OpenCTI gives most indicators a ``valid_until`` (its decay rules compute one from the score);
feeds that give none would otherwise keep matching forever. ``connector.indicator_ttl`` gives
those a lifetime counted from ``valid_from`` (else ``created``). The same rule is written twice,
once as a function of the indicator (the policy, at every write) and once as an Elasticsearch
query over the fields the documents carry (the expiry sweep, between writes), so the two cannot
disagree about which indicator has expired.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from elastic_connector.core.stix import Indicator

VALID_UNTIL_FIELD: Final = "opencti.indicator.valid_until"
VALID_FROM_FIELD: Final = "opencti.indicator.valid_from"
CREATED_FIELD: Final = "opencti.indicator.created"


def _aware(moment: datetime) -> datetime:
    # STIX timestamps are UTC; a timestamp without offset is read as UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def lifetime_start(indicator: Indicator) -> datetime | None:
    """Where a default lifetime counts from: ``valid_from``, else ``created``."""
    start = indicator.valid_from if indicator.valid_from is not None else indicator.created
    return None if start is None else _aware(start)


def expiry(indicator: Indicator, ttl: timedelta | None) -> datetime | None:
    """When ``indicator`` expires: ``valid_until`` when it has one; else, with a ``ttl``, its
    ``lifetime_start`` + ``ttl``; None when it never does (no date to count from, or an expiry
    beyond year 9999)."""
    if indicator.valid_until is not None:
        return _aware(indicator.valid_until)
    if ttl is None:
        return None
    start = lifetime_start(indicator)
    if start is None:
        return None
    try:
        return start + ttl
    except OverflowError:
        return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def expired_query(now: datetime, ttl: timedelta | None) -> dict[str, object]:
    """The documents whose indicator has expired at ``now`` (an aware datetime) under the same
    rule as ``expiry`` (expired once the expiry is not after ``now``): ``valid_until`` up to
    ``now``; with a ``ttl``, also those without ``valid_until`` whose ``valid_from`` (else
    ``created``) is up to ``now - ttl``.

    The ttl is the one configured now, not the one a document was written with: a shorter ttl
    applies to every document at the next sweep."""
    past_valid_until: dict[str, object] = {"range": {VALID_UNTIL_FIELD: {"lte": _iso(now)}}}
    if ttl is None:
        return past_valid_until
    try:
        born_before = _iso(now - ttl)
    except OverflowError:  # a ttl reaching before year 1: nothing is that old
        return past_valid_until
    no_valid_until = {"exists": {"field": VALID_UNTIL_FIELD}}
    return {
        "bool": {
            "should": [
                past_valid_until,
                {
                    "bool": {
                        "must_not": [no_valid_until],
                        "filter": [{"range": {VALID_FROM_FIELD: {"lte": born_before}}}],
                    }
                },
                {
                    "bool": {
                        "must_not": [no_valid_until, {"exists": {"field": VALID_FROM_FIELD}}],
                        "filter": [{"range": {CREATED_FIELD: {"lte": born_before}}}],
                    }
                },
            ],
            "minimum_should_match": 1,
        }
    }
