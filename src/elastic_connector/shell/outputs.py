"""What follows the indicator index: ES|QL lookup rows and dead letters (both opt-in).

``OutputWriter.write`` replaces ``BulkWriter.write`` for a batch when either is configured:

1. **Lookup rows first.** The stored version of every indicator the batch writes or deletes is
   read back (``_mget`` through the indicator index: real-time, so a write acknowledged a moment
   ago is seen) and the row changes from it to the batch's final version are written
   (``core.elastic.lookup_rows.sync_rows``). Rows go first so that, at every moment, the rows of a
   value the indicator index no longer holds can still be named from a stored document: a crash
   after the rows and before the documents replays the batch from the same stored versions.
2. **The documents** (``BulkWriter.write``, unchanged).
3. **Undo rows of refused documents.** A document Elasticsearch refused keeps its stored
   version; its rows are brought back to that version.
4. **Dead letters** of the documents refused with a 4xx about the document itself
   (``core.elastic.dead_letters``), with the stream position of the event that produced each.

A permanent failure of any step raises ``PermanentElasticsearchError``, as the documents' own
would: the pipeline keeps the batch and tries it again, and every step is idempotent.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Final

import msgspec
from elastic_transport import ApiError, TransportError
from elasticsearch import Elasticsearch
from prometheus_client import Counter

from elastic_connector.core.actions import Upsert
from elastic_connector.core.elastic.dead_letters import dead_letter, dead_letter_status
from elastic_connector.core.elastic.lookup_rows import (
    KEY_FIELDS,
    PAYLOAD_FIELDS,
    sync_rows,
    union_of,
)
from elastic_connector.shell.bulk import BulkResult, BulkWriter, WriteAction, collapse
from elastic_connector.shell.elastic import PermanentElasticsearchError, describe_error
from elastic_connector.shell.metrics import Metrics

__all__ = ["Origins", "OutputWriter"]

log = logging.getLogger(__name__)

Origins = Mapping[tuple[str, str], str]
"""(index, document id) -> id of the stream event whose action it is."""

_MGET_CHUNK: Final = 1000
_STORED_FIELDS: Final = [*KEY_FIELDS, *PAYLOAD_FIELDS]
"""What is read back of a stored indicator: its rows' keys, and their payload for an undo."""
_json: Final = msgspec.json.Decoder(dict[str, object])


class _Doc(msgspec.Struct):
    id: str = msgspec.field(name="_id")
    found: bool = False
    source: dict[str, object] | None = msgspec.field(default=None, name="_source")
    error: object = None


class _Mget(msgspec.Struct):
    docs: list[_Doc] = msgspec.field(default_factory=list)


class _Alias(msgspec.Struct):
    name: str
    indices: list[str] = msgspec.field(default_factory=list)


class _Resolved(msgspec.Struct):
    aliases: list[_Alias] = msgspec.field(default_factory=list)


class OutputWriter:
    """Writes a batch to the indicator index and keeps the lookup rows and dead letters in step
    (see the module documentation). ``lookup``/``dead_letters`` are writers for those indices
    (None: not configured)."""

    def __init__(
        self,
        *,
        documents: BulkWriter,
        client: Elasticsearch,
        index: str,
        lookup: tuple[BulkWriter, str] | None,
        dead_letters: tuple[BulkWriter, str] | None,
        metrics: Metrics,
        clock: Callable[[], datetime],
        hosts: Sequence[str] = (),
    ) -> None:
        self._documents = documents
        self._client = client.options(max_retries=0, retry_on_timeout=False)
        self._index = index
        self._lookup = lookup
        self._dead_letters = dead_letters
        self._clock = clock
        self._hosts = hosts
        registry = metrics.registry
        self.rows_written = Counter(
            "lookup_rows_written",
            "ES|QL lookup rows indexed",
            namespace="elastic_connector",
            registry=registry,
        )
        self.rows_deleted = Counter(
            "lookup_rows_deleted",
            "ES|QL lookup rows deleted",
            namespace="elastic_connector",
            registry=registry,
        )
        self.dead_lettered = Counter(
            "dead_letters_written",
            "Refused documents written to the dead-letter index",
            namespace="elastic_connector",
            registry=registry,
        )

    def with_documents(self, documents: BulkWriter) -> OutputWriter:
        """The same outputs (indices, writers, counters) after another writer of the documents:
        a reconciliation's, which gives up where the stream's waits. Its writes must not run at
        the same time as this writer's (in the daemon, the write gate serialises them)."""
        twin = copy.copy(self)
        twin._documents = documents
        return twin

    def write(self, actions: Sequence[WriteAction], origins: Origins) -> BulkResult:
        """Apply ``actions`` and what follows from them; ``BulkWriter.write``'s result for the
        documents. Raises as ``BulkWriter.write`` does."""
        final = collapse(actions)
        before: dict[str, Mapping[str, object] | None] = {}
        if self._lookup is not None:
            before = self._stored([a.id for a in final if a.index == self._index])
            self._rows(self._lookup, final, before, undo=False)
        result = self._documents.write(final)
        if self._lookup is not None and (result.rejected or result.conflicted):
            # A refused document, or a guarded repair a newer write won over (409), keeps the
            # stored version the rows were moved away from.
            refused = {(r.index, r.id) for r in result.rejected} | set(result.conflicted)
            undone = [a for a in final if (a.index, a.id) in refused]
            self._rows(self._lookup, undone, before, undo=True)
        if self._dead_letters is not None and result.rejected:
            self._write_dead_letters(self._dead_letters, final, result, origins)
        return msgspec.structs.replace(result, superseded=len(actions) - len(final))

    # --- lookup rows ---------------------------------------------------------------------

    def _stored(self, ids: list[str]) -> dict[str, Mapping[str, object] | None]:
        """The stored key values of each indicator document (None: no document).

        Read with ``_mget`` (real-time: a write acknowledged a moment ago is seen) from every
        concrete index behind the indicator index: after a rollover an indicator may have a copy
        in an older index too, and the rows of every copy must be named (``union_of``).
        """
        try:
            concrete = self._concrete()
            copies: dict[str, list[Mapping[str, object]]] = {}
            per_request = max(1, _MGET_CHUNK // len(concrete))
            for start in range(0, len(ids), per_request):
                chunk = ids[start : start + per_request]
                docs = [{"_index": name, "_id": doc_id} for doc_id in chunk for name in concrete]
                answer = self._client.mget(
                    docs=docs, source_includes=[*KEY_FIELDS, *PAYLOAD_FIELDS]
                )
                for doc in msgspec.convert(answer.body, _Mget).docs:
                    if doc.error is not None:
                        raise PermanentElasticsearchError(
                            f"Elasticsearch could not read indicator {doc.id} back: {doc.error}"
                        )
                    if doc.found:
                        copies.setdefault(doc.id, []).append(doc.source or {})
        except (ApiError, TransportError) as exc:
            # The pipeline keeps the batch and tries again later, as for the documents.
            raise PermanentElasticsearchError(
                "cannot read the stored indicators back to update the ES|QL lookup rows: "
                f"{describe_error(exc, self._hosts)}",
                status=exc.meta.status if isinstance(exc, ApiError) else None,
            ) from exc
        except msgspec.ValidationError as exc:
            raise PermanentElasticsearchError(
                f"Elasticsearch answered _mget with an unexpected body ({exc})"
            ) from exc
        return {doc_id: union_of(copies[doc_id]) if doc_id in copies else None for doc_id in ids}

    def _concrete(self) -> list[str]:
        """The concrete indices behind the indicator index (itself when it is one)."""
        try:
            answer = self._client.indices.resolve_index(name=self._index)
        except ApiError as exc:
            if exc.meta.status == 400 and "no handler" in describe_error(exc):
                return [self._index]  # a server without _resolve/index: read through the name
            raise
        resolved = msgspec.convert(answer.body, _Resolved)
        for alias in resolved.aliases:
            if alias.name == self._index and alias.indices:
                return sorted(alias.indices)
        return [self._index]

    def _rows(
        self,
        lookup: tuple[BulkWriter, str],
        actions: Sequence[WriteAction],
        before: Mapping[str, Mapping[str, object] | None],
        *,
        undo: bool,
    ) -> None:
        writer, index = lookup
        changes: list[WriteAction] = []
        for action in actions:
            if action.index != self._index:
                continue
            stored = before.get(action.id)
            wanted = _json.decode(action.document) if isinstance(action, Upsert) else None
            if undo:
                # The document was refused: its stored version stands, so do its rows.
                stored, wanted = wanted, stored
            changes.extend(sync_rows(index, action.id, stored, wanted))
        if not changes:
            return
        result = writer.write(changes)
        self.rows_written.inc(result.written)
        self.rows_deleted.inc(result.deleted)

    # --- dead letters --------------------------------------------------------------------

    def _write_dead_letters(
        self,
        target: tuple[BulkWriter, str],
        final: Sequence[WriteAction],
        result: BulkResult,
        origins: Origins,
    ) -> None:
        writer, index = target
        documents = {(a.index, a.id): a.document for a in final if isinstance(a, Upsert)}
        now = self._clock()
        letters: list[WriteAction] = []
        for refusal in result.rejected:
            document = documents.get((refusal.index, refusal.id))
            if document is None or not dead_letter_status(refusal.status):
                continue
            letter_id, body = dead_letter(
                index=refusal.index,
                document_id=refusal.id,
                status=refusal.status,
                reason=refusal.reason,
                document=document,
                stream_position=origins.get((refusal.index, refusal.id)),
                now=now,
            )
            letters.append(Upsert(index, letter_id, body))
        if not letters:
            return
        written = writer.write(letters)
        self.dead_lettered.inc(written.written)
        for lost in written.rejected:
            log.error(
                "the dead-letter index %s refused the dead letter of a refused document too "
                "(HTTP %d): %s",
                index,
                lost.status,
                lost.reason,
            )
