"""Rows of the ES|QL lookup index (``output.lookup.index``), derived from indicator documents.

``LOOKUP JOIN <index> ON <field>`` adds, to every event row, the columns of the lookup rows
whose ``<field>`` equals the event's (Elasticsearch 8.18+, ``index.mode: lookup``). The join
key must be single-valued (a multi-valued key matches nothing) and of a compatible type (``ip``
with ``ip``, ``keyword`` with ``keyword``/``text``/``wildcard``), and every non-key field of the
lookup index becomes a column that *replaces* an event column of the same name. Hence:

* one row per exact value: a row holds one key field, among ``KEY_FIELDS`` (the ECS indicator
  fields, which events do not carry: a query copies the event's field under that name with
  ``EVAL``, see docs/esql-lookup.md), with the indicator's id, name, type, TLP, score...;
* no ``@timestamp``, ``event.*`` or other event field names in a row;
* row ids are ``<OpenCTI id>:<digest of field and value>``: the rows of a document can be named
  from the document alone. The rows to delete after an update are those of the stored document
  that the new one no longer has (``sync_rows``), so a changed pattern, a deletion or a TLP
  retraction leaves no row behind, without searching the lookup index (which a recent write may
  not have reached yet).
* rows carry their indicator's lifetime fields (``valid_until``, ``valid_from``, ``created``)
  under the main index's names: the expiry sweep's query (``lifetime.expired_query``) removes
  expired rows as it removes expired documents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Final

import msgspec

from elastic_connector.core.actions import Delete, Upsert

KEY_FIELDS: Final[tuple[str, ...]] = (
    "threat.indicator.ip",
    "threat.indicator.url.full",
    "threat.indicator.url.domain",
    "threat.indicator.email.address",
    "threat.indicator.file.hash.md5",
    "threat.indicator.file.hash.sha1",
    "threat.indicator.file.hash.sha256",
    "threat.indicator.file.hash.sha384",
    "threat.indicator.file.hash.sha512",
)
"""The fields a row is keyed by: one per main observable kind a detection joins on."""

PAYLOAD_FIELDS: Final[tuple[str, ...]] = (
    "threat.indicator.name",
    "threat.indicator.type",
    "threat.indicator.confidence",
    "threat.indicator.provider",
    "threat.indicator.marking.tlp",
    "opencti.indicator.standard_id",
    "opencti.indicator.score",
    "opencti.indicator.main_observable_type",
    "opencti.indicator.valid_from",
    "opencti.indicator.valid_until",
    "opencti.indicator.created",
    "opencti.indicator.expires_at",
)
"""Copied from the indicator document into each of its rows (when present)."""

ID_FIELD: Final = "threat.indicator.id"
"""The OpenCTI internal id (the indicator document's ``_id``), single-valued in a row."""

MAX_KEY_CHARS: Final = 8191
"""Longer values get no row: a keyword term is at most 32,766 bytes (8,191 four-byte
characters); such a value could never be joined anyway."""

_KEYWORD: Final = {"type": "keyword"}
_KEY_KEYWORD: Final = {"type": "keyword", "ignore_above": MAX_KEY_CHARS}
_DATE: Final = {"type": "date"}
_FIELD_TYPES: Final[Mapping[str, Mapping[str, object]]] = {
    "threat.indicator.ip": {"type": "ip"},
    **{field: _KEY_KEYWORD for field in KEY_FIELDS if field != "threat.indicator.ip"},
    ID_FIELD: _KEYWORD,
    "threat.indicator.name": _KEYWORD,
    "threat.indicator.type": _KEYWORD,
    "threat.indicator.confidence": _KEYWORD,
    "threat.indicator.provider": _KEYWORD,
    "threat.indicator.marking.tlp": _KEYWORD,
    "opencti.indicator.standard_id": _KEYWORD,
    "opencti.indicator.score": {"type": "long"},
    "opencti.indicator.main_observable_type": _KEYWORD,
    "opencti.indicator.valid_from": _DATE,
    "opencti.indicator.valid_until": _DATE,
    "opencti.indicator.created": _DATE,
    "opencti.indicator.expires_at": _DATE,
}


def _nest(flat: Mapping[str, Mapping[str, object]]) -> dict[str, object]:
    properties: dict[str, object] = {}
    for path, spec in flat.items():
        *parents, leaf = path.split(".")
        node = properties
        for name in parents:
            child = node.setdefault(name, {"properties": {}})
            assert isinstance(child, dict)  # built here from dicts only
            node = child["properties"]
        node[leaf] = dict(spec)
    return properties


LOOKUP_MAPPINGS: Final[dict[str, object]] = {
    "dynamic": False,
    "properties": _nest(_FIELD_TYPES),
}
"""The mappings of the lookup index."""

LOOKUP_SETTINGS: Final[dict[str, object]] = {"index": {"mode": "lookup"}}
"""A lookup-mode index has one shard (Elasticsearch refuses more)."""


def _at(document: Mapping[str, object], path: str) -> object:
    node: object = document
    for name in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(name)
    return node


def key_values(document: Mapping[str, object]) -> list[tuple[str, str]]:
    """(key field, value) of every exact value of an indicator document, in ``KEY_FIELDS``
    order, without repeats; values that are not usable strings are left out (a stored document
    is read as it is, whoever wrote it)."""
    found: dict[tuple[str, str], None] = {}
    for field in KEY_FIELDS:
        value = _at(document, field)
        items: Iterable[object] = value if isinstance(value, list) else (value,)
        for item in items:
            if isinstance(item, str) and item and len(item) <= MAX_KEY_CHARS:
                found[(field, item)] = None
    return list(found)


def union_of(documents: Iterable[Mapping[str, object]]) -> dict[str, object]:
    """A document holding the key values of all of ``documents`` (copies of one indicator in
    several indices, after a rollover): its rows are the rows any of them has. Its payload
    (name, TLP, score...) is the last copy's that has each field: given in rollover order, the
    live copy's, so rows brought back to the stored state carry what they carried."""
    union: dict[str, object] = {}
    merged: dict[str, list[str]] = {}
    payload: dict[str, object] = {}
    for document in documents:
        for field, value in key_values(document):
            merged.setdefault(field, []).append(value)
        for path in PAYLOAD_FIELDS:
            item = _at(document, path)
            if item is not None:
                payload[path] = item
    for field, values in merged.items():
        _put(union, field, values)
    for path, item in payload.items():
        _put(union, path, item)
    return union


def row_id(opencti_id: str, field: str, value: str) -> str:
    """The row of ``value`` in ``field`` for the indicator ``opencti_id``."""
    digest = hashlib.blake2b(f"{field}\0{value}".encode(), digest_size=12).hexdigest()
    return f"{opencti_id}:{digest}"


def row_ids(opencti_id: str, document: Mapping[str, object] | None) -> list[str]:
    """The ids of the rows ``document`` has (none for no document)."""
    if document is None:
        return []
    return [row_id(opencti_id, field, value) for field, value in key_values(document)]


def _put(row: dict[str, object], path: str, value: object) -> None:
    *parents, leaf = path.split(".")
    node = row
    for name in parents:
        child = node.setdefault(name, {})
        assert isinstance(child, dict)  # built here from dicts only
        node = child
    node[leaf] = value


_encoder: Final = msgspec.json.Encoder()


def rows(opencti_id: str, document: Mapping[str, object]) -> dict[str, bytes]:
    """Row id -> row JSON, for every exact value of ``document`` (an indicator document as the
    mapping writes it)."""
    payload: list[tuple[str, object]] = [(ID_FIELD, opencti_id)]
    for path in PAYLOAD_FIELDS:
        value = _at(document, path)
        if isinstance(value, str | int) and not isinstance(value, bool):
            payload.append((path, value))
    built: dict[str, bytes] = {}
    for field, value in key_values(document):
        row: dict[str, object] = {}
        _put(row, field, value)
        for path, item in payload:
            _put(row, path, item)
        built[row_id(opencti_id, field, value)] = _encoder.encode(row)
    return built


def sync_rows(
    index: str,
    opencti_id: str,
    before: Mapping[str, object] | None,
    after: Mapping[str, object] | None,
    reason: str = "the indicator no longer has this value",
) -> list[Upsert | Delete]:
    """What brings the rows of ``opencti_id`` from those of ``before`` (the stored indicator
    document, None when there is none) to those of ``after`` (None: no document any more):
    deletes of the rows only ``before`` has, then an upsert of every row of ``after`` (rows also
    carry the indicator's name, TLP, score... which may have changed)."""
    wanted = rows(opencti_id, after) if after is not None else {}
    actions: list[Upsert | Delete] = [
        Delete(index, stale, "lookup", reason)
        for stale in dict.fromkeys(row_ids(opencti_id, before))
        if stale not in wanted
    ]
    actions.extend(Upsert(index, new, row) for new, row in wanted.items())
    return actions
