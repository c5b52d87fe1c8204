"""The connector state kept by OpenCTI: stream position and alert cursor, under one lock.

pycti holds the state in memory (a JSON string) and sends it to the platform with every ping
(40 s) — so a crash replays at most the last 40 s of the stream, which idempotent writes make
harmless, and a clean stop pings once more. The platform can also *replace* the state: a "reset"
in the OpenCTI UI comes back in a ping answer as an empty state. Once we have written a state,
finding it empty again means exactly that, and ``update`` refuses to overwrite it so that the
caller can restart from the configured beginning instead of silently undoing the reset.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Protocol

_log = logging.getLogger(__name__)


class StateStore(Protocol):
    """The part of pycti's ``OpenCTIConnectorHelper`` that keeps the state."""

    def get_state(self) -> dict[str, object] | None: ...

    def set_state(self, state: dict[str, object] | None) -> None: ...

    def force_ping(self) -> None: ...


class ConnectorState:
    """Thread-safe read-modify-write of the connector state."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._written = False

    def snapshot(self) -> dict[str, object] | None:
        with self._lock:
            return self._store.get_state()

    def update(self, entries: Mapping[str, object]) -> bool:
        """Merge ``entries`` into the state. False (and nothing written) when the state was
        reset from the platform since our last write."""
        with self._lock:
            current = self._store.get_state()
            if current is None and self._written:
                return False
            merged = dict(current or {})
            merged.update(entries)
            self._store.set_state(merged)
            self._written = True
            return True

    def acknowledge_reset(self) -> None:
        """The caller has restarted from scratch: the next ``update`` writes a fresh state."""
        with self._lock:
            self._written = False
