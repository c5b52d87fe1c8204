"""Names of the authors of indicators (``created_by_ref`` -> ``threat.indicator.provider``).

The core maps with whatever names it is given and reports the identities each event carried and
the authors it lacked (``Plan.authors``, ``Plan.missing_authors``). This cache keeps the names,
bounded, and — in the daemon, where OpenCTI is reachable — reads a missing author once through
the API (``lookup``); the caller then plans the batch again. An author that could not be read
(not found, not visible to the connector's user, platform unreachable) is asked for again only
after ``retry_after`` seconds, so a feed of indicators by an invisible author costs one request
per author and interval, not one per event.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from elastic_connector.core.events import Plan

CAPACITY: Final = 10_000
"""Authors kept (least recently learnt dropped first); a name is a few dozen bytes."""
RETRY_AFTER: Final = 600.0
MAX_LOOKUPS: Final = 100
"""At most this many authors are read per batch (the rest at the next batches)."""


class AuthorNames:
    """Identity id -> name, bounded; see the module documentation."""

    def __init__(
        self,
        lookup: Callable[[str], str | None] | None = None,
        *,
        capacity: int = CAPACITY,
        retry_after: float = RETRY_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._names: OrderedDict[str, str] = OrderedDict()
        self._lookup = lookup
        self._capacity = capacity
        self._retry_after = retry_after
        self._clock = clock
        self._asked: OrderedDict[str, float] = OrderedDict()
        self._missing: dict[str, None] = {}

    @property
    def names(self) -> Mapping[str, str]:
        """What the core reads (learns the names of a batch's identities as it is planned)."""
        return self._names

    def learn(self, plan: Plan) -> None:
        """Keep the authors ``plan`` saw; note those it lacked (for ``fetch_missing``)."""
        self.learn_parts(plan.authors, plan.missing_authors)

    def learn_parts(
        self, authors: Iterable[tuple[str, str]], missing_authors: Iterable[str]
    ) -> None:
        """``learn`` for a plan made elsewhere (``shell.planning``): its authors and missing
        authors."""
        for identity_id, name in authors:
            self._remember(identity_id, name)
        if self._lookup is not None:
            for identity_id in missing_authors:
                if identity_id not in self._names:
                    self._missing[identity_id] = None

    def fetch_missing(self) -> bool:
        """Read the authors noted missing that were not asked for recently; True when a name
        was learnt (the batch is then worth planning again)."""
        if self._lookup is None or not self._missing:
            return False
        now = self._clock()
        learnt = False
        asked = 0
        for identity_id in list(self._missing):
            if asked >= MAX_LOOKUPS:
                break  # the rest stay noted for the next batch
            del self._missing[identity_id]
            last = self._asked.get(identity_id)
            if last is not None and now - last < self._retry_after:
                continue
            asked += 1
            name = self._lookup(identity_id)
            if name:
                self._asked.pop(identity_id, None)
                self._remember(identity_id, name)
                learnt = True
            else:
                self._asked[identity_id] = now
                self._asked.move_to_end(identity_id)
                while len(self._asked) > self._capacity:
                    self._asked.popitem(last=False)
        return learnt

    def _remember(self, identity_id: str, name: str) -> None:
        self._names[identity_id] = name
        self._names.move_to_end(identity_id)
        while len(self._names) > self._capacity:
            self._names.popitem(last=False)
