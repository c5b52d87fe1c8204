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
from elastic_connector.core.memo import Memo
from elastic_connector.core.pattern.tree import Pattern
from elastic_connector.core.policy.tlp import Tlp
from elastic_connector.core.stix import (
    Extensions,
    ExternalReference,
    Flag,
    Indicator,
    KillChainPhase,
    MitreExtension,
    OpenCTIExtension,
    truth,
)

__all__ = [
    "MappingContext",
    "Unmappable",
    "document_for",
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
_astuple: Final = msgspec.structs.astuple
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


class _Shared:
    """The indicator's fields as the document parts read them, read once. For compiled code,
    each read of a Struct's field is a generic attribute lookup (about 170 instructions);
    ``msgspec.structs.astuple`` gives them all in one call, and this class's attributes are
    members of a C struct (docs/performance.md §7f)."""

    id: str
    pattern: str
    pattern_type: str
    name: str | None
    description: str | None
    pattern_version: str | None
    indicator_types: tuple[str, ...]
    valid_from: datetime | None
    valid_until: datetime | None
    revoked: Flag
    confidence: int | None
    labels: tuple[str, ...]
    created: datetime | None
    modified: datetime | None
    created_by_ref: str | None
    kill_chain_phases: tuple[KillChainPhase, ...]
    external_references: tuple[ExternalReference, ...]
    x_opencti_score: int | None
    x_opencti_detection: Flag
    x_mitre_platforms: tuple[str, ...]
    extension: OpenCTIExtension | None
    mitre: MitreExtension | None
    main_type: str | None

    def __init__(self, indicator: Indicator) -> None:
        extensions: Extensions
        main_type: str | None
        # In ``Indicator``'s field order (``tests/core/indicators/test_document_fields.py``).
        (
            self.id,
            self.pattern,
            self.pattern_type,
            self.name,
            self.description,
            self.pattern_version,
            self.indicator_types,
            self.valid_from,
            self.valid_until,
            self.revoked,
            self.confidence,
            self.labels,
            self.created,
            self.modified,
            self.created_by_ref,
            _,  # object_marking_refs: resolved by the planner
            self.kill_chain_phases,
            self.external_references,
            extensions,
            self.x_opencti_score,
            self.x_opencti_detection,
            main_type,
            self.x_mitre_platforms,
        ) = _astuple(indicator)
        extension = extensions.opencti
        self.extension = extension
        self.mitre = extensions.mitre
        extension_type = extension.main_observable_type if extension is not None else None
        self.main_type = main_type if extension_type is None else extension_type
        self.created = _opt_date(self.created)
        self.valid_from = _opt_date(self.valid_from)
        self.modified = _opt_date(self.modified)


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
    shared: _Shared,
    found: FoundValues,
    groups: set[str],
    tlp: Tlp | None,
    opencti_url: str | None,
    provider: str | None,
) -> ecs.ThreatIndicator:
    extension = shared.extension
    internal_id = extension.id or None if extension is not None else None
    main_type = shared.main_type
    modified = shared.modified
    if modified is None and extension is not None:
        modified = _opt_date(extension.updated_at)
    # Only a type ECS allows, and only one the document carries a value of: OpenCTI's main
    # observable type when it is one of them, else the first the pattern gave (or none).
    indicator_type = _ecs_types.of(main_type) if isinstance(main_type, str) else None
    if indicator_type not in found.types:
        indicator_type = next(iter(found.types), None)
    reference = None
    if opencti_url:
        base = opencti_url.rstrip("/")
        if base:
            link = f"{base}/dashboard/observations/indicators/{internal_id or shared.id}"
            reference = _text(link)
    strs = found.strs
    document = _ThreatIndicator(
        confidence=confidence_level(shared.confidence),
        id=_ids(internal_id, shared.id),
        type=indicator_type,
        name=_opt_text(shared.name) or found.first_text,
        description=_opt_text(shared.description),
        provider=_opt_text(provider),
        reference=reference,
        first_seen=shared.created or shared.valid_from,
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


def _opencti_indicator(shared: _Shared, found: FoundValues) -> ecs.OpenCTIIndicator:
    extension = shared.extension
    mitre = shared.mitre
    if extension is not None:
        internal_id, is_inferred = extension.id, extension.is_inferred
        score = extension.score
        if score is None:
            score = shared.x_opencti_score
        detection = extension.detection
        if detection is None:
            detection = shared.x_opencti_detection
    else:
        internal_id, is_inferred = None, None
        score, detection = shared.x_opencti_score, shared.x_opencti_detection
    platforms = (mitre.platforms if mitre is not None else ()) or shared.x_mitre_platforms
    references: tuple[ecs.ExternalReference, ...] = ()
    if shared.external_references:
        kept = (_external_reference(ref) for ref in shared.external_references)
        references = tuple(ref for ref in kept if ref is not None)
    kill_chain: tuple[str, ...] = ()
    if shared.kill_chain_phases:
        kill_chain = _unique(
            f"[{phase.kill_chain_name}] {phase.phase_name}"
            for phase in shared.kill_chain_phases
            if phase.kill_chain_name and phase.phase_name
        )
    confidence = shared.confidence
    # Booleans may come spelled as strings; most are real booleans (or absent): skip the call.
    revoked = shared.revoked
    if revoked is not None and type(revoked) is not bool:
        revoked = truth(revoked)
    if detection is not None and type(detection) is not bool:
        detection = truth(detection)
    if is_inferred is not None and type(is_inferred) is not bool:
        is_inferred = truth(is_inferred)
    document = _OpenCTIIndicator(
        id=_opt_text(internal_id),
        standard_id=_opt_text(shared.id),
        pattern=_opt_text(shared.pattern),
        pattern_type=_opt_text(shared.pattern_type),
        score=None if score is None else _long(score),
        confidence=None if confidence is None else _long(confidence),
        detection=detection if detection is True or detection is False else None,
        revoked=revoked if revoked is True or revoked is False else None,
        is_inferred=is_inferred if is_inferred is True or is_inferred is False else None,
        valid_from=shared.valid_from,
        valid_until=_opt_date(shared.valid_until),
        created=shared.created,
        modified=shared.modified,
        created_by_ref=_opt_text(shared.created_by_ref),
        main_observable_type=_opt_text(shared.main_type),
    )
    # Properties most indicators do not have, only when they have a value.
    pattern_version = _opt_text(shared.pattern_version)
    if pattern_version is not None:
        _set(document, "pattern_version", pattern_version)
    if "opencti.indicator.ip_range" in found.strs:
        _set(document, "ip_range", found.s("opencti.indicator.ip_range"))
    if shared.indicator_types:
        _set(document, "indicator_types", _unique(shared.indicator_types))
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
    return document_for(
        indicator,
        pattern,
        now=context.now,
        tlp=context.tlp,
        feed_name=context.feed_name,
        opencti_url=context.opencti_url,
        provider=context.provider,
        expires_at=context.expires_at,
    )


def document_for(
    indicator: Indicator,
    pattern: Pattern,
    *,
    now: datetime,
    tlp: Tlp | None,
    feed_name: str,
    opencti_url: str | None = None,
    provider: str | None = None,
    expires_at: datetime | None = None,
) -> ecs.IndicatorDocument | Unmappable:
    """``document_of`` with the ``MappingContext``'s fields as arguments: the planner's call.
    A context built for every indicator, then read back field by field, was 2 % of the
    mapping's instructions (docs/performance.md §7e)."""
    found = exact_values(pattern)
    if found.empty:
        return Unmappable(no_value_reason(found))
    groups = field_groups(found)
    shared = _Shared(indicator)
    opencti = _opencti_indicator(shared, found)
    if expires_at is not None:
        _set(opencti, "expires_at", _opt_date(expires_at))
    return _IndicatorDocument(
        timestamp=_opt_date(now) or _EPOCH,
        ecs=_ECS_INFO,
        event=_INDICATOR_EVENT,
        threat=_Threat(
            indicator=_threat_indicator(shared, found, groups, tlp, opencti_url, provider),
            feed=_feeds.of((feed_name, opencti_url)),
        ),
        opencti=_OpenCTI(
            indicator=opencti,
            observable=observable(found, groups) if "opencti.observable" in groups else None,
        ),
        tags=_unique(shared.labels) if shared.labels else (),
    )


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _feed_of(source: tuple[str, str | None]) -> ecs.Feed:
    """``threat.feed`` of (feed name, OpenCTI URL): the same for every document of one
    connector."""
    name, opencti_url = source
    reference = (opencti_url or "").rstrip("/") or None
    return ecs.Feed(name=_text(name) or "OpenCTI", reference=_opt_text(reference))


_feeds: Final = Memo(_feed_of, 16)
