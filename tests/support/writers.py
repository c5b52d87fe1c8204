"""A ``BulkWriter`` for pipeline tests that need no server: every write acknowledged at once."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from elasticsearch import Elasticsearch

from elastic_connector.core.actions import Upsert
from elastic_connector.shell.bulk import BulkResult, BulkWriter, WriteAction

__all__ = ["InstantWriter"]


class InstantWriter(BulkWriter):
    """Acknowledges every write at once, recording the ids of each and the documents."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__(Elasticsearch("http://127.0.0.1:9"), require_alias=False, stop=stop)
        self.calls: list[list[str]] = []
        self.documents: list[bytes] = []

    def write(self, actions: Sequence[WriteAction]) -> BulkResult:
        self.calls.append([action.id for action in actions])
        self.documents.extend(a.document for a in actions if isinstance(a, Upsert))
        return BulkResult(written=sum(isinstance(a, Upsert) for a in actions))
