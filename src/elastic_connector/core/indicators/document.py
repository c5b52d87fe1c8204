"""An OpenCTI indicator and its parsed STIX pattern -> one ECS threat-indicator document.

The pattern gives the observable values (``exact_values``): only exact comparisons name a value
an indicator match rule can use, and the whole pattern stays in ``opencti.indicator.pattern``.
Every exact value goes to the field ``docs/ecs-mapping.md`` lists for its object path
(``path_rules``), after a check that it is valid for that field's Elasticsearch type
(``field_handlers``), so a document is never rejected by Elasticsearch. Values are written as
the pattern gives them except where ECS prescribes a normal form (``value_forms``). The
indicator's own properties fill ``threat.indicator`` and ``opencti.indicator``. When nothing
usable is left the indicator is ``Unmappable``, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final, cast

import msgspec
import msgspec.structs
from returns.result import Failure, Result, Success

from elastic_connector.core.indicators import ecs
from elastic_connector.core.indicators.confidence import confidence_level
from elastic_connector.core.indicators.exact_values import exact_values, no_value_reason
from elastic_connector.core.indicators.field_values import date_value as _utc
from elastic_connector.core.indicators.field_values import keyword_value as _text
from elastic_connector.core.indicators.field_values import long_value as _long
from elastic_connector.core.indicators.found_values import FoundValues, field_groups
from elastic_connector.core.indicators.mapping_context import MappingContext, Unmappable
from elastic_connector.core.indicators.observable_parts import observable, threat_indicator_parts
from elastic_connector.core.indicators.observable_types import ecs_indicator_type
from elastic_connector.core.memo import Memo
from elastic_connector.core.pattern.tree import Pattern
from elastic_connector.core.policy.tlp import Tlp
from elastic_connector.core.stix import ExternalReference, Indicator, IndicatorFields, truth

__all__ = [
    "MappingContext",
    "Unmappable",
    "document_from",
    "document_of",
    "indicator_document",
]

# Bound as ``Final``: compiled, a ``Final`` module name is a C variable, and any other global a
# dictionary lookup at every use (docs/performance.md §7d).
_DATETIME: Final = datetime
_UTC: Final = UTC
_IndicatorDocument: Final = ecs.IndicatorDocument
_Threat: Final = ecs.Threat
_ThreatIndicator: Final = ecs.ThreatIndicator
_OpenCTI: Final = ecs.OpenCTI
_OpenCTIIndicator: Final = ecs.OpenCTIIndicator
_ECS_INFO: Final = ecs.ECS_INFO
_INDICATOR_EVENT: Final = ecs.INDICATOR_EVENT
_set: Final = msgspec.structs.force_setattr
_ExternalReference: Final = ecs.ExternalReference
# The method itself: ``value.isascii()`` looks the method up on every call.
_isascii: Final = str.isascii

# --- indicator properties as their field types accept them -----------------------------------


_SCAN_MAX: Final = 8


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    if not values:
        return ()
    if isinstance(values, tuple) and len(values) <= _SCAN_MAX:
        # A few values (labels, types, platforms): scanning those kept costs less than hashing
        # each into a dict. Quadratic, so only up to _SCAN_MAX.
        if _all_kept(values):
            # Nearly always: each value usable as it is and written once.
            return cast(tuple[str, ...], values)  # every value is a str, as _text found
        kept: list[str] = []
        for value in values:
            checked = _text(value)
            if checked is not None and checked not in kept:
                kept.append(checked)
        return tuple(kept)
    out: dict[str, None] = {}
    for value in values:
        checked = _text(value)
        if checked is not None:
            out[checked] = None
    return tuple(out)


def _all_kept(values: tuple[str | None, ...]) -> bool:
    """Whether ``_unique`` keeps every one of ``values``, as it is: each a usable keyword,
    none a repeat."""
    for index, value in enumerate(values):
        if value is None or _text(value) is not value:
            return False
        for earlier in range(index):
            if values[earlier] == value:
                return False
    return True


def _opt_text(value: str | None) -> str | None:
    if value is None:
        return None
    # Fast path for what decoded JSON holds: a plain ASCII str (empty means absent).
    if type(value) is str and _isascii(value):
        return value or None
    return _text(value)


def _ids(internal_id: str | None, standard_id: str | None) -> tuple[str, ...]:
    """``_unique((internal_id, standard_id))`` for the two ids every document carries, without
    building a dict and a tuple from it."""
    first, second = _opt_text(internal_id), _opt_text(standard_id)
    if first is None:
        return () if second is None else (second,)
    return (first,) if second is None or second == first else (first, second)


def _opt_date(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    # Fast path for what msgspec decodes: an aware datetime already in UTC.
    if type(value) is _DATETIME and value.tzinfo is _UTC:
        return value
    return _utc(value)


class _Dates:
    """The indicator's dates as the document writes them (UTC), made once for both parts."""

    def __init__(self, fields: IndicatorFields) -> None:
        self.created: datetime | None = _opt_date(fields.created)
        self.valid_from: datetime | None = _opt_date(fields.valid_from)
        self.modified: datetime | None = _opt_date(fields.modified)


# --- threat.indicator -------------------------------------------------------------------------


_ecs_types: Final = Memo(ecs_indicator_type, 64)


# Shared, and keyed by member name (an Enum member's hash is a Python-level call).
_MARKINGS: Final[dict[str, ecs.Marking]] = {
    tlp.name: ecs.Marking(tlp=tlp.value, tlp_version="1.0" if tlp is Tlp.WHITE else "2.0")
    for tlp in Tlp
}


def _marking(tlp: Tlp) -> ecs.Marking:
    return _MARKINGS[tlp._name_]


# Document parts with many fields are built from the fields most indicators have, and the rest
# is set only when present: CPython 3.11 makes any call with 16 or more keyword arguments about
# four times slower, and that was a tenth of the mapping's cost. They are set on the new part
# before anything else sees it (``msgspec.structs.force_setattr``, meant for finishing a frozen
# Struct's construction): ``msgspec.structs.replace`` built a dict and a second part, a fifth
# of the time of building both parts (docs/performance.md §7f).


def _threat_indicator(
    fields: IndicatorFields,
    dates: _Dates,
    found: FoundValues,
    groups: set[str],
    tlp: Tlp | None,
    opencti_url: str | None,
    provider: str | None,
) -> ecs.ThreatIndicator:
    internal_id = fields.internal_id or None
    main_type = fields.main_type
    modified = dates.modified
    if modified is None:
        modified = _opt_date(fields.updated_at)
    # Only a type ECS allows, and only one the document carries a value of: OpenCTI's main
    # observable type when it is one of them, else the first the pattern gave (or none).
    indicator_type = _ecs_types.of(main_type) if isinstance(main_type, str) else None
    if indicator_type not in found.types:
        indicator_type = next(iter(found.types), None)
    reference = None
    if opencti_url:
        base = opencti_url.rstrip("/")
        if base:
            link = f"{base}/dashboard/observations/indicators/{internal_id or fields.id}"
            reference = _text(link)
    strs = found.strs
    document = _ThreatIndicator(
        confidence=confidence_level(fields.confidence),
        id=_ids(internal_id, fields.id),
        type=indicator_type,
        name=_opt_text(fields.name) or found.first_text,
        description=_opt_text(fields.description),
        provider=_opt_text(provider),
        reference=reference,
        first_seen=dates.created or dates.valid_from,
        modified_at=modified,
        marking=None if tlp is None else _marking(tlp),
        ip=tuple(strs["threat.indicator.ip"]) if "threat.indicator.ip" in strs else (),
        port=found.i("threat.indicator.port"),
    )
    # The parts named after observable types, only where the pattern gave them a value.
    for name, part in threat_indicator_parts(found, groups).items():
        _set(document, name, part)
    return document


# --- opencti.indicator ------------------------------------------------------------------------


def _external_reference(ref: ExternalReference) -> ecs.ExternalReference | None:
    source_name, url, external_id = (
        _opt_text(ref.source_name),
        _opt_text(ref.url),
        _opt_text(ref.external_id),
    )
    if source_name is None and url is None and external_id is None:
        return None
    return _ExternalReference(source_name=source_name, url=url, external_id=external_id)


def _opencti_indicator(
    fields: IndicatorFields, dates: _Dates, found: FoundValues
) -> ecs.OpenCTIIndicator:
    internal_id, is_inferred = fields.internal_id, fields.is_inferred
    score = fields.score
    if score is None:
        score = fields.x_opencti_score
    detection = fields.detection
    if detection is None:
        detection = fields.x_opencti_detection
    platforms = fields.mitre_platforms or fields.x_mitre_platforms
    references: tuple[ecs.ExternalReference, ...] = ()
    if fields.external_references:
        kept = (_external_reference(ref) for ref in fields.external_references)
        references = tuple(ref for ref in kept if ref is not None)
    kill_chain: tuple[str, ...] = ()
    if fields.kill_chain_phases:
        kill_chain = _unique(
            f"[{phase.kill_chain_name}] {phase.phase_name}"
            for phase in fields.kill_chain_phases
            if phase.kill_chain_name and phase.phase_name
        )
    confidence = fields.confidence
    # Booleans may come spelled as strings; most are real booleans (or absent): skip the call.
    revoked = fields.revoked
    if revoked is not None and type(revoked) is not bool:
        revoked = truth(revoked)
    if detection is not None and type(detection) is not bool:
        detection = truth(detection)
    if is_inferred is not None and type(is_inferred) is not bool:
        is_inferred = truth(is_inferred)
    document = _OpenCTIIndicator(
        id=_opt_text(internal_id),
        standard_id=_opt_text(fields.id),
        pattern=_opt_text(fields.pattern),
        pattern_type=_opt_text(fields.pattern_type),
        score=None if score is None else _long(score),
        confidence=None if confidence is None else _long(confidence),
        detection=detection if detection is True or detection is False else None,
        revoked=revoked if revoked is True or revoked is False else None,
        is_inferred=is_inferred if is_inferred is True or is_inferred is False else None,
        valid_from=dates.valid_from,
        valid_until=_opt_date(fields.valid_until),
        created=dates.created,
        modified=dates.modified,
        created_by_ref=_opt_text(fields.created_by_ref),
        main_observable_type=_opt_text(fields.main_type),
    )
    # Properties most indicators do not have, only when they have a value.
    pattern_version = _opt_text(fields.pattern_version)
    if pattern_version is not None:
        _set(document, "pattern_version", pattern_version)
    if "opencti.indicator.ip_range" in found.strs:
        _set(document, "ip_range", found.s("opencti.indicator.ip_range"))
    if fields.indicator_types:
        _set(document, "indicator_types", _unique(fields.indicator_types))
    if platforms:
        _set(document, "mitre_platforms", _unique(platforms))
    if kill_chain:
        _set(document, "kill_chain_phase", kill_chain)
    if references:
        _set(document, "external_reference", references)
    return document


def indicator_document(
    indicator: Indicator, pattern: Pattern, context: MappingContext
) -> Result[ecs.IndicatorDocument, Unmappable]:
    """The ECS document of ``indicator`` (whose parsed pattern is ``pattern``), or why there is
    none. Deterministic, never raises; the caller uses ``StixObject.opencti_id`` as ``_id``."""
    mapped = document_of(indicator, pattern, context)
    return Failure(mapped) if isinstance(mapped, Unmappable) else Success(mapped)


def document_of(
    indicator: Indicator, pattern: Pattern, context: MappingContext
) -> ecs.IndicatorDocument | Unmappable:
    """``indicator_document`` without the ``Result`` wrapper."""
    return document_from(
        IndicatorFields(indicator),
        pattern,
        now=context.now,
        tlp=context.tlp,
        feed_name=context.feed_name,
        opencti_url=context.opencti_url,
        provider=context.provider,
        expires_at=context.expires_at,
    )


def document_from(
    fields: IndicatorFields,
    pattern: Pattern,
    *,
    now: datetime,
    tlp: Tlp | None,
    feed_name: str,
    opencti_url: str | None = None,
    provider: str | None = None,
    expires_at: datetime | None = None,
) -> ecs.IndicatorDocument | Unmappable:
    """``document_of`` from the indicator's fields as the planner has read them, with the
    ``MappingContext``'s fields as arguments: a context built for every indicator, then read
    back field by field, was 2 % of the mapping's instructions (docs/performance.md §7e)."""
    found = exact_values(pattern)
    if found.empty:
        return Unmappable(no_value_reason(found))
    groups = field_groups(found)
    dates = _Dates(fields)
    opencti = _opencti_indicator(fields, dates, found)
    if expires_at is not None:
        _set(opencti, "expires_at", _opt_date(expires_at))
    return _IndicatorDocument(
        timestamp=_opt_date(now) or _EPOCH,
        ecs=_ECS_INFO,
        event=_INDICATOR_EVENT,
        threat=_Threat(
            indicator=_threat_indicator(fields, dates, found, groups, tlp, opencti_url, provider),
            feed=_feeds.of((feed_name, opencti_url)),
        ),
        opencti=_OpenCTI(
            indicator=opencti,
            observable=observable(found, groups) if "opencti.observable" in groups else None,
        ),
        tags=_unique(fields.labels) if fields.labels else (),
    )


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _feed_of(source: tuple[str, str | None]) -> ecs.Feed:
    """``threat.feed`` of (feed name, OpenCTI URL): the same for every document of one
    connector."""
    name, opencti_url = source
    reference = (opencti_url or "").rstrip("/") or None
    return ecs.Feed(name=_text(name) or "OpenCTI", reference=_opt_text(reference))


_feeds: Final = Memo(_feed_of, 16)
