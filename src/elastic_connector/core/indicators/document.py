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

import functools
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

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
from elastic_connector.core.pattern.tree import Pattern
from elastic_connector.core.policy.tlp import Tlp
from elastic_connector.core.stix import ExternalReference, Indicator, truth

__all__ = [
    "MappingContext",
    "Unmappable",
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

# --- indicator properties as their field types accept them -----------------------------------


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    if not values:
        return ()
    out: dict[str, None] = {}
    for value in values:
        checked = _text(value)
        if checked is not None:
            out[checked] = None
    return tuple(out)


def _opt_text(value: str | None) -> str | None:
    if value is None:
        return None
    # Fast path for what decoded JSON holds: a plain ASCII str (empty means absent).
    if type(value) is str and value.isascii():
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


# --- threat.indicator -------------------------------------------------------------------------


_ecs_type_of: Final = functools.lru_cache(maxsize=64)(ecs_indicator_type)


# Shared, and keyed by member name (an Enum member's hash is a Python-level call).
_MARKINGS: Final[dict[str, ecs.Marking]] = {
    tlp.name: ecs.Marking(tlp=tlp.value, tlp_version="1.0" if tlp is Tlp.WHITE else "2.0")
    for tlp in Tlp
}


def _marking(tlp: Tlp) -> ecs.Marking:
    return _MARKINGS[tlp._name_]


# Document parts with many fields are built from the fields most indicators have, and the rest
# is added only when present (``msgspec.structs.replace``): CPython 3.11 makes any call with 16
# or more keyword arguments about four times slower, and that was a tenth of the mapping's cost.


def _threat_indicator(
    indicator: Indicator, found: FoundValues, groups: set[str], context: MappingContext
) -> ecs.ThreatIndicator:
    extension = indicator.extensions.opencti
    if extension is not None:
        internal_id = extension.id or None
        main_type = extension.main_observable_type
        if main_type is None:
            main_type = indicator.x_opencti_main_observable_type
        modified = _opt_date(indicator.modified)
        if modified is None:
            modified = _opt_date(extension.updated_at)
    else:
        internal_id = None
        main_type = indicator.x_opencti_main_observable_type
        modified = _opt_date(indicator.modified)
    # Only a type ECS allows, and only one the document carries a value of: OpenCTI's main
    # observable type when it is one of them, else the first the pattern gave (or none).
    indicator_type = _ecs_type_of(main_type) if isinstance(main_type, str) else None
    if indicator_type not in found.types:
        indicator_type = next(iter(found.types), None)
    reference = None
    if context.opencti_url:
        base = context.opencti_url.rstrip("/")
        if base:
            link = f"{base}/dashboard/observations/indicators/{internal_id or indicator.id}"
            reference = _text(link)
    strs = found.strs
    document = _ThreatIndicator(
        confidence=confidence_level(indicator.confidence),
        id=_ids(internal_id, indicator.id),
        type=indicator_type,
        name=_opt_text(indicator.name) or found.first_text,
        description=_opt_text(indicator.description),
        provider=_opt_text(context.provider),
        reference=reference,
        first_seen=_opt_date(indicator.created) or _opt_date(indicator.valid_from),
        modified_at=modified,
        marking=None if context.tlp is None else _marking(context.tlp),
        ip=tuple(strs["threat.indicator.ip"]) if "threat.indicator.ip" in strs else (),
        port=found.i("threat.indicator.port"),
    )
    # The parts named after observable types, only where the pattern gave them a value.
    parts = threat_indicator_parts(found, groups)
    return msgspec.structs.replace(document, **parts) if parts else document


# --- opencti.indicator ------------------------------------------------------------------------


def _external_reference(ref: ExternalReference) -> ecs.ExternalReference | None:
    source_name, url, external_id = (
        _opt_text(ref.source_name),
        _opt_text(ref.url),
        _opt_text(ref.external_id),
    )
    if source_name is None and url is None and external_id is None:
        return None
    return ecs.ExternalReference(source_name=source_name, url=url, external_id=external_id)


def _opencti_indicator(indicator: Indicator, found: FoundValues) -> ecs.OpenCTIIndicator:
    extension = indicator.extensions.opencti
    mitre = indicator.extensions.mitre
    if extension is not None:
        internal_id, is_inferred = extension.id, extension.is_inferred
        score = extension.score
        if score is None:
            score = indicator.x_opencti_score
        detection = extension.detection
        if detection is None:
            detection = indicator.x_opencti_detection
        main_type = extension.main_observable_type
        if main_type is None:
            main_type = indicator.x_opencti_main_observable_type
    else:
        internal_id, is_inferred = None, None
        score, detection = indicator.x_opencti_score, indicator.x_opencti_detection
        main_type = indicator.x_opencti_main_observable_type
    platforms = (mitre.platforms if mitre is not None else ()) or indicator.x_mitre_platforms
    references: tuple[ecs.ExternalReference, ...] = ()
    if indicator.external_references:
        kept = (_external_reference(ref) for ref in indicator.external_references)
        references = tuple(ref for ref in kept if ref is not None)
    kill_chain: tuple[str, ...] = ()
    if indicator.kill_chain_phases:
        kill_chain = _unique(
            f"[{phase.kill_chain_name}] {phase.phase_name}"
            for phase in indicator.kill_chain_phases
            if phase.kill_chain_name and phase.phase_name
        )
    confidence = indicator.confidence
    # Booleans may come spelled as strings; most are real booleans (or absent): skip the call.
    revoked = indicator.revoked
    if revoked is not None and type(revoked) is not bool:
        revoked = truth(revoked)
    if detection is not None and type(detection) is not bool:
        detection = truth(detection)
    if is_inferred is not None and type(is_inferred) is not bool:
        is_inferred = truth(is_inferred)
    document = _OpenCTIIndicator(
        id=_opt_text(internal_id),
        standard_id=_opt_text(indicator.id),
        pattern=_opt_text(indicator.pattern),
        pattern_type=_opt_text(indicator.pattern_type),
        score=None if score is None else _long(score),
        confidence=None if confidence is None else _long(confidence),
        detection=detection if detection is True or detection is False else None,
        revoked=revoked if revoked is True or revoked is False else None,
        is_inferred=is_inferred if is_inferred is True or is_inferred is False else None,
        valid_from=_opt_date(indicator.valid_from),
        valid_until=_opt_date(indicator.valid_until),
        created=_opt_date(indicator.created),
        modified=_opt_date(indicator.modified),
        created_by_ref=_opt_text(indicator.created_by_ref),
        main_observable_type=_opt_text(main_type),
    )
    # Properties most indicators do not have, only when they have a value.
    extras: dict[str, object] = {}
    pattern_version = _opt_text(indicator.pattern_version)
    if pattern_version is not None:
        extras["pattern_version"] = pattern_version
    if "opencti.indicator.ip_range" in found.strs:
        extras["ip_range"] = found.s("opencti.indicator.ip_range")
    if indicator.indicator_types:
        extras["indicator_types"] = _unique(indicator.indicator_types)
    if platforms:
        extras["mitre_platforms"] = _unique(platforms)
    if kill_chain:
        extras["kill_chain_phase"] = kill_chain
    if references:
        extras["external_reference"] = references
    return msgspec.structs.replace(document, **extras) if extras else document


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
    """``indicator_document`` without the ``Result`` wrapper (the per-event hot path)."""
    found = exact_values(pattern)
    if found.empty:
        return Unmappable(no_value_reason(found))
    groups = field_groups(found)
    return _IndicatorDocument(
        timestamp=_opt_date(context.now) or _EPOCH,
        ecs=_ECS_INFO,
        event=_INDICATOR_EVENT,
        threat=_Threat(
            indicator=_threat_indicator(indicator, found, groups, context),
            feed=_feed(context.feed_name, context.opencti_url),
        ),
        opencti=_OpenCTI(
            indicator=_opencti_indicator(indicator, found)
            if context.expires_at is None
            else msgspec.structs.replace(
                _opencti_indicator(indicator, found), expires_at=_opt_date(context.expires_at)
            ),
            observable=observable(found, groups) if "opencti.observable" in groups else None,
        ),
        tags=_unique(indicator.labels) if indicator.labels else (),
    )


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _feed_of(name: str, opencti_url: str | None) -> ecs.Feed:
    """``threat.feed``: the same for every document of one connector."""
    reference = (opencti_url or "").rstrip("/") or None
    return ecs.Feed(name=_text(name) or "OpenCTI", reference=_opt_text(reference))


_feed: Final = functools.lru_cache(maxsize=16)(_feed_of)
