"""The stand-in's ``indicators`` listing and filter evaluation, as the platform answers them.

What the platform does, and where it is written (OpenCTI-Platform/opencti, ``opencti-graphql``):

* ``indicators(first, after, orderBy, orderMode, filters, search, toStix)`` is the schema's
  field (``modules/indicator/indicator.graphql``); an argument it does not declare is a
  validation error. pycti 7 sends exactly these (``entities/opencti_indicator.py``, ``list``).
* Without ``orderBy`` the listing is ordered by ``standard_id`` ascending; with one,
  ``standard_id`` is added as a tie-breaker (``database/engine.js``, ``elPaginate``/
  ``elQueryBodyBuilder``): the cursor (``endCursor``, ``after``) is the last node's sort values,
  a ``search_after`` position, so items created or deleted meanwhile never shift a page.
* ``first`` is at most ``ES_MAX_PAGINATION`` (5000, ``database/engine.js``): a larger page is
  refused ("You cannot ask for more than 5000 results...").
* ``toStix`` is a String field of every STIX object: ``stixLoadByIdStringify``, the object
  converted by ``convertStoreToStix`` — the conversion the stream uses — or ``""`` when it
  cannot be loaded (``database/middleware.js``).
* ``filters`` is a FilterGroup on the stored attributes: ``entity_type``, ``objectLabel``
  (label ids), ``objectMarking`` (marking ids), ``createdBy`` (identity id), ``ids`` (any id),
  and plain properties. A live stream collection keeps the same FilterGroup as a JSON string
  (``streamCollection.filters``) and applies it to what it streams.

``filter_view`` gives those attributes for a STIX object, so a collection's stream and a
filtered listing always agree on what the collection holds.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Final

import msgspec

from elastic_connector.demo.graphql_lite import Field, UnsupportedFilter, matches_filters
from elastic_connector.demo.opencti_data import NAMESPACE, OPENCTI_EXTENSION, Json, internal_id

MAX_PAGINATION: Final = 5000
"""The platform's ``ES_MAX_PAGINATION``."""
DEFAULT_PAGINATION: Final = 500
"""The platform's ``ES_DEFAULT_PAGINATION``."""
ARGUMENTS: Final = frozenset(
    {"first", "after", "orderBy", "orderMode", "filters", "search", "toStix"}
)
"""The arguments ``Query.indicators`` declares."""

_decode_json: Final = msgspec.json.Decoder(Json)
_ENTITY_TYPES: Final = {
    "indicator": "Indicator",
    "marking-definition": "Marking-Definition",
    "identity": "Identity",
    "relationship": "stix-core-relationship",
    "sighting": "stix-sighting-relationship",
}


class ListingError(ValueError):
    """The platform refuses the listing (bad argument, cursor or page size)."""


def label_id(value: str) -> str:
    """The internal id the stand-in gives the label ``value`` (``objectLabel[].id``)."""
    return str(uuid.uuid5(NAMESPACE, "label:" + value))


def entity_type(stix_type: str) -> str:
    return _ENTITY_TYPES.get(stix_type, stix_type.title())


def _flag(value: object) -> object:
    # Filter values are strings; the platform compares booleans as "true"/"false".
    return ("true" if value else "false") if isinstance(value, bool) else value


def filter_view(
    stix: Mapping[str, object], internal_of: Callable[[str], str] = internal_id
) -> Json:
    """The stored attributes a FilterGroup is evaluated on, for a STIX object as streamed;
    ``internal_of`` gives the internal id of a referenced object (marking, author)."""
    extensions = stix.get("extensions")
    ext = extensions.get(OPENCTI_EXTENSION) if isinstance(extensions, Mapping) else None
    opencti: Mapping[str, object] = ext if isinstance(ext, Mapping) else {}
    stix_id = str(stix.get("id", ""))
    labels = stix.get("labels")
    markings = stix.get("object_marking_refs")
    author = stix.get("created_by_ref")
    view: Json = {
        "entity_type": entity_type(str(stix.get("type", ""))),
        "id": str(opencti.get("id") or internal_id(stix_id)),
        "standard_id": stix_id,
        "x_opencti_stix_ids": [],
        "objectLabel": [label_id(str(v)) for v in labels] if isinstance(labels, list) else [],
        "objectMarking": [internal_of(str(m)) for m in markings]
        if isinstance(markings, list)
        else [],
        "createdBy": internal_of(author) if isinstance(author, str) else None,
        "x_opencti_score": opencti.get("score"),
        "x_opencti_detection": _flag(opencti.get("detection")),
        "x_opencti_main_observable_type": opencti.get("main_observable_type"),
    }
    for name in ("name", "pattern_type", "confidence", "indicator_types", "revoked"):
        if name in stix:
            view[name] = _flag(stix[name])
    return view


def encode_cursor(sort_values: list[object]) -> str:
    """A cursor as the platform makes it: the sort values of the last node, base64 JSON."""
    return base64.b64encode(json.dumps(sort_values).encode()).decode()


def decode_cursor(cursor: str) -> list[object]:
    try:
        values = json.loads(base64.b64decode(cursor, validate=True))
    except (binascii.Error, ValueError):
        raise ListingError(f"Invalid cursor {cursor[:40]!r}") from None
    if not isinstance(values, list) or not values:
        raise ListingError(f"Invalid cursor {cursor[:40]!r}")
    return values


def check_arguments(field: Field) -> tuple[int, str | None, object]:
    """``(first, after standard id, filters)`` of an ``indicators`` field, as validated by the
    platform."""
    unknown = sorted(set(field.arguments) - ARGUMENTS)
    if unknown:
        raise ListingError(f'Unknown argument "{unknown[0]}" on field "Query.indicators".')
    first = field.arguments.get("first")
    if first is None:
        first = DEFAULT_PAGINATION
    if not isinstance(first, int) or isinstance(first, bool) or first < 0:
        raise ListingError(f"Int cannot represent non-integer value: {first!r}")
    if first > MAX_PAGINATION:
        raise ListingError(
            f"You cannot ask for more than {MAX_PAGINATION} results. If you need more, "
            "please use pagination"
        )
    if field.arguments.get("orderBy") not in (None, "standard_id"):
        raise UnsupportedFilter(f"orderBy {field.arguments.get('orderBy')!r}")
    if field.arguments.get("search"):
        raise UnsupportedFilter("search")
    after = field.arguments.get("after")
    start: str | None = None
    if after is not None:
        if not isinstance(after, str):
            raise ListingError(f"ID cannot represent value: {after!r}")
        start = str(decode_cursor(after)[-1])
    return first, start, field.arguments.get("filters")


class IndicatorOrder:
    """The standard ids of the stored indicators, sorted (the platform's default order);
    rebuilt only after an indicator was added or removed."""

    def __init__(self) -> None:
        self._sorted: list[str] | None = None

    def changed(self) -> None:
        self._sorted = None

    def after(self, ids: Callable[[], list[str]], start: str | None) -> Iterator[str]:
        """The ids strictly after ``start`` (all when None), in order."""
        if self._sorted is None:
            self._sorted = sorted(ids())
        order = self._sorted
        position = 0 if start is None else bisect.bisect_right(order, start)
        yield from order[position:]


def matches(view: Json, group: object) -> bool:
    return matches_filters(view, group)


def named_ids(group: object) -> list[str] | None:
    """The ids an ``and`` FilterGroup restricts a listing to (an ``ids`` filter, ``eq``), so
    the listing looks only at them, as the platform's index does; None when it names none."""
    if not isinstance(group, Mapping) or group.get("mode", "and") != "and":
        return None
    for spec in group.get("filters") or []:
        if not isinstance(spec, Mapping) or spec.get("operator", "eq") != "eq":
            continue
        key = spec.get("key")
        keys = key if isinstance(key, list) else [key]
        values = spec.get("values")
        if keys == ["ids"] and isinstance(values, list) and spec.get("mode", "or") == "or":
            return [str(value) for value in values]
    return None
