"""Seeded streams of OpenCTI events: what analysts do to indicators over time.

``generate(seed, count, tag=...)`` returns ``count`` events over a population of indicators:
creates, updates (confidence, labels, markings up to TLP:RED, revocation, a new pattern), deletes
and merges, in an order a platform could emit them (nothing is updated before it is created or
after it is deleted). The same seed gives the same events, so a failure is reproducible.

Times are fixed (not the clock) and no indicator has a ``valid_until``: the expected index state
(``tests/reliability/expected_index.py``) then depends only on the events, never on when the
daemon processes them.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import msgspec

from elastic_connector.demo.opencti_data import (
    DEFAULT_MARKINGS,
    OPENCTI_EXTENSION,
    Json,
    iso_ms,
    make_indicator,
)

__all__ = ["TLP", "Event", "envelope", "generate", "updated"]

TLP: Final = {marking.definition: marking.standard_id for marking in DEFAULT_MARKINGS}
"""``TLP:GREEN`` -> the platform's marking definition id."""

_BASE_MS: Final = 1_735_689_600_000  # 2025-01-01T00:00:00Z
_VALID_FROM: Final = "2024-01-01T00:00:00.000Z"
_MARKING_CHOICES: Final = (
    (),
    (TLP["TLP:CLEAR"],),
    (TLP["TLP:GREEN"],),
    (TLP["TLP:AMBER"],),
    (TLP["TLP:AMBER+STRICT"],),
    (TLP["TLP:RED"],),
    (TLP["TLP:GREEN"], TLP["TLP:RED"]),
)
_LABELS: Final = ("c2", "botnet", "phishing", "apt", "scanner", "tor")


@dataclass(frozen=True)
class Event:
    """One stream event: ``kind`` (create/update/delete/merge), the STIX object, the context."""

    kind: str
    stix: Json
    context: Json | None = None


def envelope(event: Event) -> bytes:
    """The ``data`` of the SSE frame as the platform sends it (what ``plan_frame`` reads)."""
    payload: Json = {"version": "4", "type": event.kind, "scope": "external", "data": event.stix}
    if event.context is not None:
        payload["context"] = event.context
    return msgspec.json.encode(payload)


def updated(stix: Mapping[str, object], stamp_ms: int, **changes: object) -> Json:
    """The object after an update in OpenCTI: same ids, new values, a newer ``modified``."""
    result: Json = copy.deepcopy(dict(stix))
    result.update(changes)
    stamp = iso_ms(stamp_ms)
    result["modified"] = stamp
    extensions = result["extensions"]
    assert isinstance(extensions, dict)
    extensions[OPENCTI_EXTENSION]["updated_at"] = stamp
    return result


def _pattern(tag: str, number: int, version: int) -> str:
    prefix = f"v{version}." if version else ""
    return f"[domain-name:value = '{prefix}i{number}.{tag}.example.org']"


def generate(
    seed: int,
    count: int,
    *,
    tag: str,
    population: int | None = None,
    deletes: float = 0.05,
    merges: float = 0.01,
) -> list[Event]:
    """``count`` events over at most ``population`` indicators (default ``count // 4``).

    ``tag`` (lower-case letters and digits) goes into every pattern, so two workloads never
    share an indicator. Roughly: a new indicator while the population is not reached, else an
    update, a delete (``deletes``) or a merge (``merges``) of live indicators.
    """
    rng = random.Random(seed)
    size = population if population is not None else max(1, count // 4)
    live: dict[int, Json] = {}
    versions: dict[int, int] = {}
    created = 0
    events: list[Event] = []
    for step in range(count):
        stamp = _BASE_MS + step
        if created < size and (not live or rng.random() < 0.3):
            number = created
            created += 1
            stix = make_indicator(
                _pattern(tag, number, 0),
                markings=rng.choice(_MARKING_CHOICES),
                confidence=rng.randrange(0, 101),
                labels=rng.sample(_LABELS, rng.randrange(0, 3)),
                valid_from=_VALID_FROM,
                updated_at=iso_ms(stamp),
            )
            live[number] = stix
            versions[number] = 0
            events.append(Event("create", stix))
            continue
        numbers = sorted(live)
        roll = rng.random()
        if len(numbers) >= 3 and roll < merges:
            target, *sources = rng.sample(numbers, rng.randrange(2, 4))
            merged = updated(live[target], stamp, labels=["merged"])
            live[target] = merged
            context: Json = {"sources": [live.pop(source) for source in sources]}
            events.append(Event("merge", merged, context))
            continue
        number = rng.choice(numbers)
        if roll < merges + deletes:
            events.append(Event("delete", live.pop(number)))
            continue
        events.append(Event("update", _change(rng, live, versions, number, stamp, tag)))
    return events


def _change(
    rng: random.Random,
    live: dict[int, Json],
    versions: dict[int, int],
    number: int,
    stamp: int,
    tag: str,
) -> Json:
    """One update of indicator ``number``: a new version of one or two properties."""
    current = live[number]
    changes: dict[str, object] = {}
    for _ in range(rng.randrange(1, 3)):
        what = rng.randrange(5)
        if what == 0:
            changes["confidence"] = rng.randrange(0, 101)
        elif what == 1:
            changes["labels"] = rng.sample(_LABELS, rng.randrange(0, 4))
        elif what == 2:
            changes["object_marking_refs"] = list(rng.choice(_MARKING_CHOICES))
        elif what == 3:
            changes["revoked"] = rng.random() < 0.5
        else:
            versions[number] += 1
            pattern = _pattern(tag, number, versions[number])
            changes["pattern"] = pattern
            changes["name"] = pattern
    live[number] = updated(current, stamp, **changes)
    return live[number]
