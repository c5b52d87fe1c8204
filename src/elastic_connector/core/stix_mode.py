"""``stix`` mode: any STIX object as one Elasticsearch document, and the index mapping.

Different STIX types give the same property name different shapes (``name`` is text in most
objects, ``value`` is text or a number...), so a mapping that types every property would reject
documents as soon as two types disagree. The document therefore has:

- a few typed fields every STIX object shares (``id``, ``type``, ``created``, ``labels``...),
  each written only when the object's value is valid for the field's type;
- OpenCTI's extension properties under ``opencti.*`` (internal id, entity type, score...);
- the whole object under ``stix``, a ``flattened`` field: every leaf is searchable as a keyword
  and no property can clash with another. An object ``flattened`` cannot hold (nested deeper
  than ``FLATTENED_DEPTH_LIMIT``, an empty or huge property name) goes to ``stix_unindexed``
  instead, which is kept in ``_source`` but not indexed: nothing is ever rejected.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec

from elastic_connector.core.indicators.ecs import (
    Bool,
    Date,
    Keyword,
    Long,
    mapping_of,
)
from elastic_connector.core.indicators.field_values import (
    date_text_value,
    date_value,
    keyword_value,
    long_value,
)
from elastic_connector.core.stix import OPENCTI_EXTENSION, StixObject, truth

FLATTENED_DEPTH_LIMIT: Final = 20
"""Elasticsearch's default ``depth_limit`` of a ``flattened`` field, set explicitly."""
FLATTENED_IGNORE_ABOVE: Final = 1024
_MAX_PROPERTY_PATH: Final = 1024
"""Longest dotted property path indexed (a flattened term is path + value: stay well under
Lucene's 32766-byte term limit)."""

Flattened = Annotated[
    dict[str, object],
    msgspec.Meta(
        extra={
            "es": {
                "type": "flattened",
                "depth_limit": FLATTENED_DEPTH_LIMIT,
                "ignore_above": FLATTENED_IGNORE_ABOVE,
            }
        }
    ),
]
Unindexed = Annotated[
    dict[str, object], msgspec.Meta(extra={"es": {"type": "object", "enabled": False}})
]


class OpenCTIProperties(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: Keyword | None = None
    """OpenCTI internal id."""
    type: Keyword | None = None
    """OpenCTI entity type (``Indicator``, ``IPv4-Addr``, ``Malware``...)."""
    created_at: Date | None = None
    updated_at: Date | None = None
    score: Long | None = None
    detection: Bool | None = None
    is_inferred: Bool | None = None
    main_observable_type: Keyword | None = None


class StixDocument(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One STIX object as indexed in ``stix`` mode (``_source``)."""

    timestamp: Date = msgspec.field(name="@timestamp")
    id: Keyword
    type: Keyword
    spec_version: Keyword | None = None
    created: Date | None = None
    modified: Date | None = None
    name: Keyword | None = None
    value: Keyword | None = None
    labels: tuple[Keyword, ...] = ()
    revoked: Bool | None = None
    confidence: Long | None = None
    object_marking_refs: tuple[Keyword, ...] = ()
    created_by_ref: Keyword | None = None
    opencti: OpenCTIProperties | None = None
    stix: Flattened | None = None
    """The whole object as received (when ``flattened`` can index it)."""
    stix_unindexed: Unindexed | None = None
    """The whole object, when it is too deep or has property names ``flattened`` refuses."""


STIX_MAPPINGS: Final[dict[str, object]] = {
    # Same reasoning as the indicator index: unknown fields are kept, never typed by guess.
    "dynamic": False,
    "properties": mapping_of(StixDocument),
}
"""The ``mappings`` body of the ``stix``-mode index template."""

_raw: Final = msgspec.json.Decoder(dict[str, object])
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_encoder: Final = msgspec.json.Encoder()


def _flattenable(value: object, depth: int, path_length: int) -> bool:
    """Whether ``flattened`` indexes ``value`` as it is (depth counts objects, root = 1)."""
    if isinstance(value, dict):
        if depth > FLATTENED_DEPTH_LIMIT:
            return False
        for key, item in value.items():
            if not key or not key.strip(". ") or path_length + len(key) > _MAX_PROPERTY_PATH:
                return False
            if not _flattenable(item, depth + 1, path_length + len(key) + 1):
                return False
        return True
    if isinstance(value, list):
        return all(_flattenable(item, depth, path_length) for item in value)
    return True


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    out: dict[str, None] = {}
    for item in value:
        text = keyword_value(item)
        if text is not None:
            out[text] = None
    return tuple(out)


def _bool(value: object) -> bool | None:
    """A boolean, or one of its usual string spellings (``"False"``, ``"yes"``...)."""
    return truth(value) if isinstance(value, (bool, str)) else None


def _opencti(raw: dict[str, object]) -> OpenCTIProperties | None:
    extensions = raw.get("extensions")
    if not isinstance(extensions, dict):
        return None
    ext = extensions.get(OPENCTI_EXTENSION)
    if not isinstance(ext, dict):
        return None
    properties = OpenCTIProperties(
        id=keyword_value(ext.get("id")),
        type=keyword_value(ext.get("type")),
        created_at=date_text_value(ext.get("created_at")),
        updated_at=date_text_value(ext.get("updated_at")),
        score=long_value(ext.get("score")),
        detection=_bool(ext.get("detection")),
        is_inferred=_bool(ext.get("is_inferred")),
        main_observable_type=keyword_value(ext.get("main_observable_type")),
    )
    return None if properties == OpenCTIProperties() else properties


def stix_document_of(obj: StixObject, now: datetime) -> StixDocument:
    """The ``stix``-mode document of ``obj`` (``now`` becomes ``@timestamp``). Never raises."""
    try:
        raw = _raw.decode(obj.json)
    except (msgspec.DecodeError, msgspec.ValidationError):  # pragma: no cover - decoded before
        raw = {"id": obj.id, "type": obj.type}
    flat = _flattenable(raw, 1, 0)
    return StixDocument(
        timestamp=date_value(now) or _EPOCH,
        id=keyword_value(obj.id) or "",
        type=keyword_value(obj.type) or "",
        spec_version=keyword_value(raw.get("spec_version")),
        created=date_text_value(raw.get("created")),
        modified=date_text_value(raw.get("modified")),
        name=keyword_value(raw.get("name")),
        value=keyword_value(raw.get("value")),
        labels=_strings(raw.get("labels")),
        revoked=_bool(raw.get("revoked")),
        confidence=long_value(raw.get("confidence")),
        object_marking_refs=_strings(raw.get("object_marking_refs")),
        created_by_ref=keyword_value(raw.get("created_by_ref")),
        opencti=_opencti(raw),
        stix=raw if flat else None,
        stix_unindexed=None if flat else raw,
    )


def stix_document(obj: StixObject, now: datetime) -> bytes:
    """The JSON ``_source`` of ``obj`` in ``stix`` mode; the caller uses ``obj.opencti_id`` as
    ``_id``. Never raises."""
    return _encoder.encode(stix_document_of(obj, now))
