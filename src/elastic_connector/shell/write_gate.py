"""One writer at a time between the stream and a reconciliation, inside the daemon.

A reconciliation plans its repairs from what it read, and the stream may write a newer state of
the same document in the meantime. Guards (``core.actions.Guard``: the version read) make
Elasticsearch refuse a repair of a document written since; a *create* has no version to check,
though: a document the stream created and deleted again after the reconciliation looked would be
created back from the older state. The gate closes that gap in the daemon: while a
reconciliation runs, every document the stream writes (deletes included) is noted under the
same lock the reconciliation's own writes take, and a repair of a noted document is dropped —
the stream's write is newer, by construction. Holding the lock while a bulk request is in flight
serialises the two writers, so "noted" and "written" cannot interleave.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

from elastic_connector.core.actions import Delete, Upsert

WriteAction = Upsert | Delete


class WriteGate:
    """Shared by the pipeline (``stream_write``) and a reconciliation (``open``,
    ``reconcile_write``, ``close``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._written: set[str] | None = None
        self._watchers = 0

    def open(self) -> None:
        """Start noting the stream's writes (before the reconciliation reads anything)."""
        with self._lock:
            self._watchers += 1
            if self._written is None:
                self._written = set()

    def close(self) -> None:
        """Stop noting them (the reconciliation ended)."""
        with self._lock:
            self._watchers = max(0, self._watchers - 1)
            if self._watchers == 0:
                self._written = None

    @contextlib.contextmanager
    def stream_write(self, actions: Sequence[WriteAction]) -> Iterator[None]:
        """Around one write of the stream: notes its documents, then holds the lock while
        they are written."""
        with self._lock:
            if self._written is not None:
                self._written.update(action.id for action in actions)
            yield

    @contextlib.contextmanager
    def reconcile_write(
        self, actions: Sequence[WriteAction]
    ) -> Iterator[tuple[list[WriteAction], int]]:
        """Around one write of a reconciliation: yields the actions the stream has not
        written since the gate was opened, and how many were dropped; holds the lock while
        they are written."""
        with self._lock:
            written = self._written or set()
            kept = [action for action in actions if action.id not in written]
            yield kept, len(actions) - len(kept)
