"""Reading every indicator the connector's OpenCTI user can see, for reconciliation.

The queries are pycti's (``entities/opencti_indicator.py``, ``list(toStix=True)``: the same
arguments, ``toStix: true``, the same ``pageInfo``), with ``id``, ``standard_id`` and the
author's name selected next to ``toStix`` so a node names itself even when its STIX form is
unusable, and authors need no extra request. The live stream collection's filters come from
``streamCollection(id:) { filters }`` (pycti's ``get_stream_collection`` query, plus the schema's
``filters`` field) and are passed as they are: a listing never shows more than the stream.

Failures: connection errors, timeouts and platform errors are retried with capped exponential
backoff, ``attempts`` times; what a retry cannot fix (authentication, rights, a query the
platform refuses) fails at once. Either way ``OpenCTIReadError`` says what failed.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

from returns.result import Failure

from elastic_connector.core.backoff import backoff_delay
from elastic_connector.core.policy.markings import MarkingLevel
from elastic_connector.core.reconcile import Page, collection_filters, read_page
from elastic_connector.shell.opencti import load_marking_levels

if TYPE_CHECKING:
    from pycti import OpenCTIApiClient

INDICATORS_QUERY: Final = """
query Indicators($filters: FilterGroup, $search: String, $first: Int, $after: ID, $orderBy: IndicatorsOrdering, $orderMode: OrderingMode, $toStix: Boolean) {
  indicators(filters: $filters, search: $search, first: $first, after: $after, orderBy: $orderBy, orderMode: $orderMode, toStix: $toStix) {
    edges {
      node {
        id
        standard_id
        toStix
        createdBy { ... on Identity { id standard_id name } }
      }
    }
    pageInfo { startCursor endCursor hasNextPage hasPreviousPage globalCount }
  }
}"""  # noqa: E501  (one line per GraphQL field list, as pycti writes it)
COLLECTION_QUERY: Final = """
query StreamCollection($id: String!) {
  streamCollection(id: $id) { id name filters stream_live }
}"""
PAGE_SIZE: Final = 500
"""Indicators per request: pycti's default and the platform's default page
(``ES_DEFAULT_PAGINATION``); the platform refuses more than 5000."""
WHOLE_KNOWLEDGE: Final = frozenset({"live", "raw"})
"""``connector.live_stream_id`` values that are not collections (no filters)."""
IDS_PER_REQUEST: Final = 500
_PERMANENT_ERRORS: Final = frozenset(
    {
        "AUTH_REQUIRED",
        "FORBIDDEN_ACCESS",
        "BAD_USER_INPUT",
        "GRAPHQL_VALIDATION_FAILED",
        "GRAPHQL_PARSE_FAILED",
        "UNSUPPORTED_ERROR",
        "FUNCTIONAL_ERROR",
        "VALIDATION_ERROR",
    }
)

T = TypeVar("T")


class OpenCTIReadError(Exception):
    """OpenCTI could not be read; the message says what failed and why."""


class GraphQLClient(Protocol):
    """The part of pycti's ``OpenCTIApiClient`` used here."""

    def query(
        self,
        query: str,
        variables: Mapping[str, object] | None = None,
        disable_impersonate: bool = False,
    ) -> dict[str, object]: ...


class Retry:
    """Capped exponential backoff with jitter for ``attempts`` tries; ``stop`` ends a wait."""

    def __init__(
        self,
        *,
        attempts: int,
        max_backoff: float,
        stop: threading.Event,
        base: float = 1.0,
        unit: Callable[[], float] = random.random,
    ) -> None:
        self.attempts = max(1, attempts)
        self.max_backoff = max_backoff
        self.stop = stop
        self.base = base
        self._unit = unit

    def wait(self, attempt: int) -> bool:
        """Wait before retry ``attempt`` (0 first); False when stopped meanwhile."""
        delay = backoff_delay(attempt, self._unit(), base=self.base, cap=self.max_backoff)
        return not self.stop.wait(delay)


def describe(error: BaseException) -> str:
    """One line for a pycti failure (its ValueError holds the platform's error as a dict)."""
    argument = error.args[0] if error.args else None
    if isinstance(argument, dict):
        name = argument.get("name") or "error"
        message = argument.get("error_message") or argument.get("message") or ""
        return f"{name}: {message}".strip().rstrip(":")[:300]
    text = str(error).strip()
    if "<html" in text.lower():
        return "the platform answered with an HTML error page (a proxy or the API is down)"
    return text.splitlines()[0][:300] if text else type(error).__name__


def _permanent(error: BaseException) -> bool:
    argument = error.args[0] if error.args else None
    return isinstance(argument, dict) and argument.get("name") in _PERMANENT_ERRORS


def with_retries(what: str, call: Callable[[], T], retry: Retry) -> T:
    """``call()``, retried on transient failures; ``OpenCTIReadError`` naming ``what``."""
    attempt = 0
    while True:
        try:
            return call()
        except (ValueError, OSError) as error:
            if _permanent(error):
                raise OpenCTIReadError(f"{what}: OpenCTI refused: {describe(error)}") from None
            if attempt + 1 >= retry.attempts:
                raise OpenCTIReadError(
                    f"{what}: {describe(error)} (gave up after {retry.attempts} attempts)"
                ) from None
            if not retry.wait(attempt):
                raise OpenCTIReadError(f"{what}: stopped while retrying") from None
            attempt += 1


def read_marking_levels(api: OpenCTIApiClient, retry: Retry) -> Mapping[str, MarkingLevel]:
    """Every marking definition beyond the standard TLP ones, as the stream's planner knows
    them (``shell.opencti.load_marking_levels``): a reconciliation plans nothing without it."""

    def load() -> Mapping[str, MarkingLevel]:
        levels = load_marking_levels(api)
        if levels is None:
            raise ValueError("the marking definitions could not be read")
        return levels

    return with_retries("reading the marking definitions", load, retry)


def read_collection_filters(
    api: GraphQLClient, live_stream_id: str | None, retry: Retry
) -> dict[str, object] | None:
    """The FilterGroup of the configured live stream (None for the whole knowledge)."""
    if not live_stream_id or live_stream_id in WHOLE_KNOWLEDGE:
        return None
    what = f"reading live stream {live_stream_id!r} (connector.live_stream_id)"
    answer = with_retries(what, lambda: api.query(COLLECTION_QUERY, {"id": live_stream_id}), retry)
    data = answer.get("data")
    collection = data.get("streamCollection") if isinstance(data, dict) else None
    if not isinstance(collection, dict):
        raise OpenCTIReadError(
            f"{what}: OpenCTI knows no such live stream, or it is not visible to the "
            "connector's user"
        )
    filters = collection_filters(collection.get("filters"))
    if isinstance(filters, Failure):
        raise OpenCTIReadError(f"{what}: {filters.failure()}")
    return filters.unwrap()


def _variables(
    filters: Mapping[str, object] | None, first: int, after: str | None
) -> dict[str, object]:
    return {
        "filters": filters,
        "search": None,
        "first": first,
        "after": after,
        "orderBy": None,
        "orderMode": None,
        "toStix": True,
    }


def _query(api: GraphQLClient, variables: Mapping[str, object]) -> Callable[[], dict[str, object]]:
    return lambda: api.query(INDICATORS_QUERY, variables)


def indicator_pages(
    api: GraphQLClient,
    filters: Mapping[str, object] | None,
    retry: Retry,
    *,
    page_size: int = PAGE_SIZE,
) -> Iterator[Page]:
    """Every page of indicators, in the platform's order, until one says none follows.
    Raises ``OpenCTIReadError`` when a page cannot be read (after retries) or is malformed."""
    after: str | None = None
    number = 0
    while True:
        number += 1
        what = f"reading indicators (page {number})"
        answer = with_retries(what, _query(api, _variables(filters, page_size, after)), retry)
        page = read_page(answer, "indicators")
        if isinstance(page, str):
            raise OpenCTIReadError(f"{what}: {page}")
        yield page
        if not page.has_next_page:
            return
        if page.end_cursor == after:
            raise OpenCTIReadError(f"{what}: the platform gave the same cursor twice")
        after = page.end_cursor


def indicators_by_ids(
    api: GraphQLClient,
    ids: Sequence[str],
    filters: Mapping[str, object] | None,
    retry: Retry,
) -> Iterator[Page]:
    """The indicators among ``ids`` (any of their ids) still visible through ``filters``."""
    for start in range(0, len(ids), IDS_PER_REQUEST):
        chunk = list(ids[start : start + IDS_PER_REQUEST])
        by_ids: dict[str, object] = {
            "mode": "and",
            "filters": [{"key": "ids", "values": chunk}],
            "filterGroups": [filters] if filters is not None else [],
        }
        yield from indicator_pages(api, by_ids, retry, page_size=len(chunk))
