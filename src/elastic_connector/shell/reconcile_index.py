"""Reading the index for reconciliation: every document's id, content digest and version.

One point in time (``_pit``) is opened before anything else is read, and paged through with
``search_after`` on ``_shard_doc`` (Elasticsearch's recommended way to read a whole index): the
snapshot is consistent, and its ``_seq_no``/``_primary_term`` are what the repairs are guarded
with. Only the digest and the version of each document are kept (``IndexedDocument``), never
the documents. ``stix`` mode indexes every STIX type: only indicator documents are read.

Transient failures (connection errors, 429, 5xx, an expired point in time) start the read over
after a capped backoff, ``attempts`` times; what waiting cannot fix (401/403, a refused query)
fails at once. ``IndexReadError`` says which.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Final

import msgspec
from elastic_transport import ApiError, TransportError
from elasticsearch import Elasticsearch, NotFoundError

from elastic_connector.core.reconcile import IndexedDocument, content_digest
from elastic_connector.shell.elastic import ErrorClass, classify_error, describe_error
from elastic_connector.shell.opencti_indicators import Retry

KEEP_ALIVE: Final = "10m"
"""How long the point in time lives between two pages (each page renews it)."""
PAGE_SIZE: Final = 5000
_FILTER_PATH: Final = (
    "pit_id,hits.hits._id,hits.hits._seq_no,hits.hits._primary_term,hits.hits._source,"
    "hits.hits.sort"
)
_INDICATORS_ONLY: Final[dict[str, object]] = {"term": {"type": "indicator"}}


class IndexReadError(Exception):
    """The index could not be read; the message says why."""


class _Hit(msgspec.Struct):
    id: str = msgspec.field(name="_id")
    seq_no: int = msgspec.field(name="_seq_no")
    primary_term: int = msgspec.field(name="_primary_term")
    source: object = msgspec.field(default=None, name="_source")
    sort: list[object] | None = None


class _Hits(msgspec.Struct):
    hits: list[_Hit] = msgspec.field(default_factory=list)


class _Page(msgspec.Struct):
    hits: _Hits = msgspec.field(default_factory=_Hits)
    pit_id: str | None = None


class _Retryable(Exception):
    pass


def read_index(
    client: Elasticsearch,
    index: str,
    retry: Retry,
    *,
    indicators_only: bool = False,
    page_size: int = PAGE_SIZE,
    on_page: Callable[[int], None] | None = None,
) -> dict[str, IndexedDocument]:
    """``_id`` -> digest and version of every document of ``index`` (of every indicator
    document with ``indicators_only``); empty when the index does not exist."""
    query: dict[str, object] = _INDICATORS_ONLY if indicators_only else {"match_all": {}}
    attempt = 0
    while True:
        try:
            return _read_once(client, index, query, page_size, on_page, retry)
        except _Retryable as error:
            if attempt + 1 >= retry.attempts:
                raise IndexReadError(
                    f"reading {index}: {error} (gave up after {retry.attempts} attempts)"
                ) from None
            if not retry.wait(attempt):
                raise IndexReadError(f"reading {index}: stopped while retrying") from None
            attempt += 1


def _failure(error: ApiError | TransportError, index: str) -> Exception:
    text = describe_error(error)
    if classify_error(error) is ErrorClass.PERMANENT:
        status = error.meta.status if isinstance(error, ApiError) else None
        if status == 404 and "search_context_missing" in str(error):
            return _Retryable("the point in time expired")
        return IndexReadError(f"reading {index}: {text}")
    return _Retryable(text)


def _read_once(
    client: Elasticsearch,
    index: str,
    query: dict[str, object],
    page_size: int,
    on_page: Callable[[int], None] | None,
    retry: Retry,
) -> dict[str, IndexedDocument]:
    try:
        opened = client.open_point_in_time(index=index, keep_alive=KEEP_ALIVE)
    except NotFoundError as error:
        if "index_not_found" in str(error):
            return {}
        raise _failure(error, index) from None
    except (ApiError, TransportError) as error:
        raise _failure(error, index) from None
    pit_id = str(opened["id"])
    documents: dict[str, IndexedDocument] = {}
    try:
        after: list[object] | None = None
        while True:
            if retry.stop.is_set():
                raise IndexReadError(f"reading {index}: stopped")
            body: dict[str, object] = {
                "pit": {"id": pit_id, "keep_alive": KEEP_ALIVE},
                "sort": [{"_shard_doc": "asc"}],
                "size": page_size,
                "query": query,
                "seq_no_primary_term": True,
                "track_total_hits": False,
            }
            if after is not None:
                body["search_after"] = after
            try:
                answer = client.search(body=body, filter_path=_FILTER_PATH)
            except (ApiError, TransportError) as error:
                raise _failure(error, index) from None
            try:
                page = msgspec.convert(answer.body, _Page)
            except msgspec.ValidationError as error:
                raise IndexReadError(
                    f"reading {index}: unexpected search answer ({error})"
                ) from None
            pit_id = page.pit_id or pit_id
            hits = page.hits.hits
            for hit in hits:
                documents[hit.id] = IndexedDocument(
                    content_digest(hit.source), hit.seq_no, hit.primary_term
                )
            if on_page is not None:
                on_page(len(documents))
            if len(hits) < page_size or hits[-1].sort is None:
                return documents
            after = hits[-1].sort
    finally:
        with contextlib.suppress(ApiError, TransportError):
            client.close_point_in_time(id=pit_id)


class _Found(msgspec.Struct):
    id: str = msgspec.field(name="_id")
    found: bool = False
    seq_no: int | None = msgspec.field(default=None, name="_seq_no")
    primary_term: int | None = msgspec.field(default=None, name="_primary_term")
    source: object = msgspec.field(default=None, name="_source")
    error: object = None
    """A failed item (its shard refused or unavailable): neither found nor absent."""


class _Docs(msgspec.Struct):
    docs: list[_Found] = msgspec.field(default_factory=list)


def read_versions(
    client: Elasticsearch, index: str, ids: Sequence[str], retry: Retry
) -> dict[str, IndexedDocument]:
    """Digest and version of the documents among ``ids`` (absent ones are left out), read in
    real time (``_mget``): documents just written are seen before any refresh."""
    found: dict[str, IndexedDocument] = {}
    for chunk in _chunks(ids, 1000):
        attempt = 0
        while True:
            try:
                answer = client.mget(index=index, ids=list(chunk))
                docs = msgspec.convert(answer.body, _Docs)
            except NotFoundError as error:
                if "index_not_found" in str(error):
                    return {}
                raise IndexReadError(f"reading {index}: {describe_error(error)}") from None
            except (ApiError, TransportError) as error:
                failure = _failure(error, index)
                if not isinstance(failure, _Retryable):
                    raise failure from None
                if attempt + 1 >= retry.attempts or not retry.wait(attempt):
                    raise IndexReadError(f"reading {index}: {failure}") from None
                attempt += 1
                continue
            except msgspec.ValidationError as error:
                raise IndexReadError(f"reading {index}: unexpected mget answer ({error})") from None
            for doc in docs.docs:
                if doc.error is not None:
                    # Not knowing is not "absent": a create left unchecked could keep a
                    # document whose indicator is now withheld.
                    raise IndexReadError(
                        f"reading {index}: document {doc.id}: {_item_error(doc.error)}"
                    )
                if doc.found and doc.seq_no is not None and doc.primary_term is not None:
                    found[doc.id] = IndexedDocument(
                        content_digest(doc.source), doc.seq_no, doc.primary_term
                    )
            break
    return found


def _item_error(error: object) -> str:
    """``type: reason`` of an item's error object (Elasticsearch's own words)."""
    if isinstance(error, dict):
        kind, reason = error.get("type"), error.get("reason")
        if isinstance(kind, str) and isinstance(reason, str):
            return f"{kind}: {reason}"
    return str(error)


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
